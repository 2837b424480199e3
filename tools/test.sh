#!/usr/bin/env bash
# The whole test suite, as CI runs it: install what is missing, then build and test twice,
# once with -Werror optimised, once with ASan+UBSan, plus cppcheck.
set -euo pipefail
cd "$(dirname "$0")/.."
. tools/deps.sh
kpi_install_deps

jobs=$(nproc)
echo "== cppcheck"
cppcheck --enable=warning,style,performance,portability --inline-suppr --error-exitcode=1 -q \
    --std=c11 -Idaemon --suppress=missingIncludeSystem daemon tools

echo "== build (release, -Werror)"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DKPID_WERROR=ON >/dev/null
cmake --build build -j"$jobs"
echo "== build (ASan+UBSan)"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DKPID_SANITIZE=ON >/dev/null
cmake --build build-asan -j"$jobs"

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
# Each run's record of the faults it injected (tools/reliability.py sums them).
rm -rf build/reliability build-asan/reliability
status=0
echo "== tests (release)"
(cd build && ctest --output-on-failure -j"$jobs") || status=1
echo "== tests (ASan+UBSan)"
(cd build-asan && ctest --output-on-failure -j"$jobs") || status=1
/usr/bin/python3 tools/reliability.py build build-asan || true
exit $status
