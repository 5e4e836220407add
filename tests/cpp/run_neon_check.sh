#!/usr/bin/env bash
# Cross-compiles the NEON checks (tests/cpp/neon_check.cpp, tests/cpp/neon_check_k.cpp for the
# K-quants) with the kernel sources for aarch64 and runs them under qemu user-mode emulation.
# Needs: apt-get install g++-aarch64-linux-gnu qemu-user.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
out=${NEON_CHECK_OUT:-$root/build/neon_check}
objs=$out.objs
mkdir -p "$(dirname "$out")" "$objs"
flags=(-O2 -fopenmp -std=c++17 -Wall -Wextra -Wno-unused-parameter -I"$root/cpp" -DNINESTEP_HAVE_NEON=1)
# Every core and kernel source except the x86 variants, as CMake selects them on aarch64; compiled
# once and linked into each check.
srcs=$(ls "$root"/cpp/core/*.cpp "$root"/cpp/kernels/*.cpp | grep -v -E '_avx(2|512)\.cpp$')
rm -f "$objs"/*.o
for s in $srcs; do
  aarch64-linux-gnu-g++ "${flags[@]}" -c "$s" -o "$objs/$(basename "$(dirname "$s")")_$(basename "$s" .cpp).o"
done
status=0
for check in neon_check neon_check_k; do
  aarch64-linux-gnu-g++ "${flags[@]}" "$root/tests/cpp/$check.cpp" "$objs"/*.o -o "$out.$check"
  qemu-aarch64 -L /usr/aarch64-linux-gnu "$out.$check" || status=1
done
exit $status
