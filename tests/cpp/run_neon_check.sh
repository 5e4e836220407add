#!/usr/bin/env bash
# Cross-compiles tests/cpp/neon_check.cpp with the kernel sources for aarch64 and runs it under
# qemu user-mode emulation. Needs: apt-get install g++-aarch64-linux-gnu qemu-user.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
out=${NEON_CHECK_OUT:-$root/build/neon_check}
mkdir -p "$(dirname "$out")"
# Every core and kernel source except the x86 variants, as CMake selects them on aarch64.
srcs=$(ls "$root"/cpp/core/*.cpp "$root"/cpp/kernels/*.cpp | grep -v -E '_avx(2|512)\.cpp$')
aarch64-linux-gnu-g++ -O2 -fopenmp -std=c++17 -Wall -Wextra -Wno-unused-parameter -I"$root/cpp" \
  -DNINESTEP_HAVE_NEON=1 "$root/tests/cpp/neon_check.cpp" $srcs -o "$out"
qemu-aarch64 -L /usr/aarch64-linux-gnu "$out"
