#!/usr/bin/env bash
# Builds ninestep._core with AddressSanitizer + UndefinedBehaviorSanitizer into build/asan (its own
# copy of the Python package, so the normal dev build's module is untouched) and runs the whole
# test suite against it. Extra arguments go to pytest (e.g. tests/test_forward.py -x).
# Any ASan or UBSan finding aborts the run (non-zero exit).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build=$root/build/asan
pkg=$build/pkg  # PYTHONPATH root: pkg/ninestep = the Python sources + the sanitized _core
python=${PYTHON:-python3}
cxx=${CXX:-c++}  # the compiler CMake picks by default; its libasan is preloaded

rm -rf "$pkg/ninestep"
mkdir -p "$pkg"
cp -r "$root/python/ninestep" "$pkg/"
find "$pkg/ninestep" \( -name '_core*.so' -o -name '__pycache__' \) -prune -exec rm -rf {} +

# RelWithDebInfo: symbols kept (pybind11 strips Release modules) for readable reports.
cmake -S "$root" -B "$build" -G Ninja -DNINESTEP_SANITIZE=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DNINESTEP_OUTPUT_DIR="$pkg/ninestep" \
  -Dpybind11_DIR="$("$python" -m pybind11 --cmakedir)" -DPython_EXECUTABLE="$(command -v "$python")"
cmake --build "$build"

# The interpreter is not instrumented, so the ASan runtime must be loaded first, by preload. libstdc++
# is preloaded with it: ASan intercepts __cxa_throw and must find the real one at startup, or the
# first C++ exception (any ArgError -> ValueError) aborts with "CHECK failed: real___cxa_throw".
libasan=$("$cxx" -print-file-name=libasan.so)
libstdcxx=$("$cxx" -print-file-name=libstdc++.so)
for lib in "$libasan" "$libstdcxx"; do
  [ -f "$lib" ] || { echo "$lib not found for $cxx" >&2; exit 1; }
done
export LD_PRELOAD="$libasan $libstdcxx"
# detect_leaks=0: CPython keeps many allocations alive until exit by design, which LeakSanitizer
# would report; leaks are covered by tests/test_memory.py instead.
# allocator_may_return_null=1: an impossible allocation throws std::bad_alloc (MemoryError) as in
# a normal build instead of ASan aborting.
# Reports also go to files: pytest captures stderr, and a run that aborts loses it.
reports=$build/reports
rm -rf "$reports" && mkdir -p "$reports"
export ASAN_OPTIONS=detect_leaks=0:allocator_may_return_null=1:abort_on_error=1:strict_string_checks=1:log_path=$reports/asan
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1:log_path=$reports/ubsan
# Tests that measure RSS skip themselves: ASan's shadow memory and quarantine inflate it.
export NINESTEP_SANITIZED=1

cd "$root"
PYTHONPATH="$pkg" "$python" -c 'import ninestep, sys; print("testing", ninestep._core.__file__, file=sys.stderr)'
status=0
PYTHONPATH="$pkg" "$python" -m pytest -q -p no:cacheprovider tests "$@" || status=$?
if compgen -G "$reports/*" > /dev/null; then
  echo "sanitizer reports:" >&2
  cat "$reports"/* >&2
  status=1
fi
exit $status
