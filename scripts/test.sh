#!/usr/bin/env bash
# The whole test suite: builds and runs every CTest test (Check suites, stress, crash and
# install tests) in four builds — release, address+undefined sanitizers, thread sanitizer,
# and "minimal" (metrics and jemalloc compiled out).
# Installs missing Debian packages first. Idempotent; build trees live in build/.
#
#   scripts/test.sh                 all three builds
#   PBOX_BUILDS="release" scripts/test.sh    a subset (release, asan, tsan, minimal)
#   PBOX_STRESS_SCALE=20 scripts/test.sh     longer randomized/stress runs (nightly)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/deps.sh"

jobs=$(nproc)
builds=${PBOX_BUILDS:-"release asan tsan minimal"}
scale=${PBOX_STRESS_SCALE:-1}
werror=ON   # warnings are errors in the test command, and so in CI

export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:strict_string_checks=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1"

status=0
for b in $builds; do
  case $b in
    release) opts=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DPBOX_SANITIZE=none) ;;
    asan)    opts=(-DCMAKE_BUILD_TYPE=Debug -DPBOX_SANITIZE=address -DPBOX_DIAGNOSTIC=ON) ;;
    tsan)    opts=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DPBOX_SANITIZE=thread -DPBOX_DIAGNOSTIC=ON) ;;
    minimal) opts=(-DCMAKE_BUILD_TYPE=Release -DPBOX_METRICS=OFF -DPBOX_JEMALLOC=OFF) ;;
    *) echo "unknown build '$b' (release, asan, tsan, minimal)" >&2; exit 2 ;;
  esac
  dir="$root/build/test-$b"
  echo "=== pagebox: $b build ($dir) ==="
  cmake -S "$root" -B "$dir" "${opts[@]}" -DPBOX_WERROR=$werror \
        -DPBOX_STRESS_SCALE="$scale" >/dev/null
  cmake --build "$dir" -j "$jobs"
  echo "=== pagebox: $b tests ==="
  if ! (cd "$dir" && ctest --output-on-failure --verbose --timeout 900); then
    status=1
    echo "=== pagebox: $b tests FAILED ===" >&2
  fi
done
exit $status
