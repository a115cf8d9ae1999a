#!/usr/bin/env bash
# The whole test suite: builds and runs the CTest tests (Check suites, stress, crash and
# install tests, fuzz corpus replays) in four builds —
#   release    every test;
#   asan       address+undefined sanitizers, every test;
#   tsan       thread sanitizer: every test but the single-threaded fault and corruption
#              sweeps (faults, corruption, errpaths_*: they run in release and asan; under
#              TSan they took 4 of the run's minutes and exercise no concurrency of their own);
#   minimal    metrics and jemalloc compiled out: every test but the long kvstore end-to-end
#              runs (torture, power cut, recovery time, transactions, backup: the same code paths as
#              release, which runs them) —
# then
#   fuzz       clang + libFuzzer + ASan/UBSan: replays the corpora (fuzz/corpus, fuzz/regress)
#              and fuzzes each target for PBOX_FUZZ_SECONDS (default 30); a crash fails the
#              run and leaves its input in build/fuzz/artifacts/ (copy it to
#              fuzz/regress/<target>/ to make it a regression test);
#   coverage   gcc --coverage, Debug: the Check suites and corpus replays, then gcovr over the
#              libraries and the gate in scripts/coverage-gate.txt (scripts/coverage.sh).
# Installs missing Debian packages first. Idempotent; build trees live in build/.
#
#   scripts/test.sh                 all six builds
#   PBOX_BUILDS="release" scripts/test.sh    a subset (release, asan, tsan, minimal, fuzz, coverage)
#   PBOX_STRESS_SCALE=20 scripts/test.sh     longer randomized/stress runs (nightly)
#   PBOX_FUZZ_SECONDS=3600 scripts/test.sh   an hour of fuzzing per target (nightly)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/deps.sh"

jobs=$(nproc)
builds=${PBOX_BUILDS:-"release asan tsan minimal fuzz coverage"}
fuzz_seconds=${PBOX_FUZZ_SECONDS:-30}
scale=${PBOX_STRESS_SCALE:-1}
werror=ON   # warnings are errors in the test command, and so in CI

export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:strict_string_checks=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1"

status=0
# The fuzz build: libFuzzer binaries only (no Check suites); corpus replays, then fuzzing.
fuzz_build() {
  local dir="$root/build/fuzz"
  echo "=== pagebox: fuzz build ($dir) ==="
  # -Werror off: clang has warnings gcc lacks; the gcc builds keep -Werror
  CC=clang cmake -S "$root" -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPBOX_SANITIZE=address \
        -DPBOX_FUZZ=ON -DPBOX_BUILD_TESTS=OFF -DPBOX_BUILD_BENCH=OFF -DPBOX_WERROR=OFF >/dev/null
  local targets=(fuzz_node fuzz_wal fuzz_store fuzz_ops fuzz_dump fuzz_ship fuzz_raftcmd fuzz_raftsnap)
  cmake --build "$dir" -j "$jobs" --target "${targets[@]}"
  echo "=== pagebox: fuzz corpus replays ==="
  (cd "$dir" && ctest --output-on-failure --timeout 900) || return 1
  local rc=0
  mkdir -p "$dir/artifacts"
  for t in "${targets[@]}"; do
    local name=${t#fuzz_} work="$dir/work/${t#fuzz_}"
    mkdir -p "$work"
    echo "=== pagebox: fuzzing $name for ${fuzz_seconds} s ==="
    if ! "$dir/fuzz/$t" -max_total_time="$fuzz_seconds" -timeout=60 -rss_limit_mb=2048 \
         -print_final_stats=1 -artifact_prefix="$dir/artifacts/$name-" \
         "$work" "$root/fuzz/corpus/$name" >"$dir/$name.log" 2>&1; then
      rc=1
      tail -n 60 "$dir/$name.log" >&2
      echo "=== pagebox: fuzz_$name found a crash: $(ls -t "$dir/artifacts/$name-"* 2>/dev/null | head -1) ===" >&2
    fi
    grep -E "^stat::number_of_executed_units|^Done" "$dir/$name.log" || true
  done
  return $rc
}

# The coverage build: Debug with --coverage; the Check suites and corpus replays (not the
# kvstore end-to-end scripts, the benchmarks or the install test), then the report and gate.
coverage_build() {
  local dir="$root/build/coverage"
  echo "=== pagebox: coverage build ($dir) ==="
  cmake -S "$root" -B "$dir" -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_FLAGS="--coverage -fprofile-update=atomic" \
        -DCMAKE_EXE_LINKER_FLAGS=--coverage -DPBOX_BUILD_BENCH=OFF -DPBOX_WERROR=$werror \
        -DPBOX_STRESS_SCALE="$scale" >/dev/null
  cmake --build "$dir" -j "$jobs"
  find "$dir" -name '*.gcda' -delete
  echo "=== pagebox: coverage tests ==="
  local rc=0
  (cd "$dir" && PBOX_CORRUPTION_STRIDE=8 ctest --output-on-failure --timeout 900 \
     -E '^(kvstore_|raftkv_(cli|failover|powercut)|install_consumer)') || rc=1
  "$root/scripts/coverage.sh" "$dir" || rc=1
  return $rc
}

for b in $builds; do
  if [ "$b" = fuzz ] || [ "$b" = coverage ]; then
    if ! ${b}_build; then
      status=1
      echo "=== pagebox: $b build FAILED ===" >&2
    fi
    continue
  fi
  skip=()   # ctest -E: see the header
  case $b in
    release) opts=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DPBOX_SANITIZE=none) ;;
    asan)    opts=(-DCMAKE_BUILD_TYPE=Debug -DPBOX_SANITIZE=address -DPBOX_DIAGNOSTIC=ON) ;;
    tsan)    opts=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DPBOX_SANITIZE=thread -DPBOX_DIAGNOSTIC=ON)
             skip=(-E '^(faults|corruption|errpaths_.*)$') ;;
    minimal) opts=(-DCMAKE_BUILD_TYPE=Release -DPBOX_METRICS=OFF -DPBOX_JEMALLOC=OFF)
             skip=(-E '^kvstore_(torture|powercut|recovery_time|txn|backup)$') ;;
    *) echo "unknown build '$b' (release, asan, tsan, minimal, fuzz, coverage)" >&2; exit 2 ;;
  esac
  dir="$root/build/test-$b"
  echo "=== pagebox: $b build ($dir) ==="
  cmake -S "$root" -B "$dir" "${opts[@]}" -DPBOX_WERROR=$werror \
        -DPBOX_STRESS_SCALE="$scale" >/dev/null
  cmake --build "$dir" -j "$jobs"
  echo "=== pagebox: $b tests ==="
  if ! (cd "$dir" && ctest --output-on-failure --verbose --timeout 900 "${skip[@]}"); then
    status=1
    echo "=== pagebox: $b tests FAILED ===" >&2
  fi
done
exit $status
