#!/usr/bin/env bash
# crash_test.sh TPCC [CYCLES] — kill -9 of `tpcc run` at random moments: load a scaled-down
# database, then CYCLES times (default 6) start a run (durability alternating durable and
# fast), kill it with SIGKILL after a random 0.4..2.0 s, and require `tpcc check` (which
# reopens the store and so recovers it) to pass: no half a new-order (conditions 2-7), no
# lost or partial payment (1, 8, 9, 12). The order count must never shrink from one check
# to the next (a check closes the store, so what it saw is durable), and at the end more
# orders must exist than were loaded: the runs really committed work. RANDOM is seeded from
# $PBOX_SEED when set (printed).
set -uo pipefail
tpcc=$1
cycles=${2:-6}
work=$(mktemp -d "${TMPDIR:-/tmp}/tpcck.XXXXXX")
trap 'kill -9 $(jobs -p) 2>/dev/null; [ "${fail:-1}" -eq 0 ] && rm -rf "$work"' EXIT
seed=${PBOX_SEED:-$(( $(date +%s) % 100000 ))}
RANDOM=$seed
echo "tpcc_crash: seed $seed, $cycles cycles, scratch $work"
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }
orders_of() { echo "$1" | grep -o '[0-9]* orders' | head -1 | cut -d' ' -f1; }

D="$work/db"
if ! $tpcc load --dir "$D" --warehouses 2 --items 1000 --customers 100 --threads 2 --seed $seed > "$work/load.out" 2>&1; then
  bad "load failed: $(cat "$work/load.out")"; exit 1
fi
out=$($tpcc check --dir "$D" 2>&1) && ok || bad "check after load: $out"
loaded=$(orders_of "$out")
prev=$loaded
echo "  loaded: $out"
for ((i = 1; i <= cycles; i++)); do
  mode=durable; [ $((i % 2)) -eq 0 ] && mode=fast
  $tpcc run --dir "$D" --threads 2 --seconds 60 --durability $mode --seed $((seed + i)) > "$work/run$i.out" 2>&1 &
  pid=$!
  ms=$(( 400 + RANDOM % 1600 ))
  sleep "$(printf '%d.%03d' $((ms / 1000)) $((ms % 1000)))"
  if ! kill -0 $pid 2>/dev/null; then
    bad "cycle $i: the run ended before the kill: $(cat "$work/run$i.out")"
  fi
  kill -9 $pid 2>/dev/null
  wait $pid 2>/dev/null
  out=$($tpcc check --dir "$D" 2>&1); rc=$?
  n=$(orders_of "$out")
  echo "  cycle $i ($mode, killed after ${ms} ms): $out"
  [ $rc -eq 0 ] && ok || bad "cycle $i: check exit $rc: $out"
  if [ -n "$n" ] && [ "$n" -ge "${prev:-0}" ]; then ok; else bad "cycle $i: orders went from $prev to ${n:-?}"; fi
  prev=${n:-$prev}
done
if [ -n "$prev" ] && [ -n "$loaded" ] && [ "$prev" -gt "$loaded" ]; then
  ok; echo "  $((prev - loaded)) new orders committed and recovered across $cycles kills"
else
  bad "no new order survived: $loaded orders loaded, ${prev:-?} at the end"
fi
echo "tpcc_crash: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
