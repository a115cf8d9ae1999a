#!/usr/bin/env bash
# oneshot_test.sh TPCC [KVSTORE] — tpcc end to end, quickly: the one-shot form on a scaled-down
# warehouse with --check (exit 0, transactions committed, no violation, CSV and JSON
# written), separate load/run/check steps, and the command line's errors (exit 2 for bad
# arguments, 3 for a directory without a database), and a tampered store failing check
# (KVSTORE, optional, edits a tree). A few seconds in a release build.
set -uo pipefail
tpcc=$1
kv=${2:-}
work=$(mktemp -d "${TMPDIR:-/tmp}/tpcc1.XXXXXX")
trap '[ "${fail:-1}" -eq 0 ] && rm -rf "$work"' EXIT
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }
expect() { # expect CODE DESCRIPTION -- command...: stdout in $out, stderr in $err
  local code=$1 what=$2; shift 3
  out=$("$@" 2>"$work/stderr"); local rc=$?
  err=$(cat "$work/stderr")
  if [ "$rc" -eq "$code" ]; then ok; else bad "$what: exit $rc, wanted $code (stdout: $out; stderr: $err)"; fi
}
secs=2
[ "${PBOX_SANITIZE:-none}" != none ] && secs=3

# ---- the one-shot form ------------------------------------------------------------------
expect 0 "one-shot --check" -- $tpcc --warehouses 1 --scale-down --threads 2 --seconds $secs \
  --durability fast --check --csv "$work/r.csv" --json "$work/r.json" --seed 7
echo "$out"
n=$(echo "$out" | grep -o '[0-9]* transactions committed' | head -1 | cut -d' ' -f1)
[ "${n:-0}" -gt 0 ] && ok || bad "no transaction committed"
[[ $out == *": 0 violations"* ]] && ok || bad "check did not report 0 violations"
for t in new-order payment order-status delivery stock-level; do
  c=$(echo "$out" | awk -v t=$t '$1 == t {print $2}')
  [ "${c:-0}" -gt 0 ] && ok || bad "no $t committed"
done
[ "$(wc -l < "$work/r.csv")" -eq 2 ] && ok || bad "CSV: expected a header and one row"
head -1 "$work/r.csv" | grep -q '^run,warehouses,threads' && ok || bad "CSV header"
if command -v python3 >/dev/null; then
  python3 -c "import json,sys; d=json.load(open(sys.argv[1])); assert d['runs'][0]['committed'] > 0" "$work/r.json" \
    && ok || bad "JSON does not parse or lacks committed"
fi

# ---- load, run (two runs), check as separate steps -------------------------------------------
D="$work/db"
expect 0 "load" -- $tpcc load --dir "$D" --warehouses 2 --items 500 --customers 50 --threads 2
expect 3 "second load into the same store" -- $tpcc load --dir "$D" --warehouses 1 --scale-down
[[ $err == *"already holds"* ]] && ok || bad "second load message: $err"
expect 0 "check after load" -- $tpcc check --dir "$D"
[[ $out == *"2 warehouses, 1000 orders"* ]] && ok || bad "check after load: $out"
cp -r "$D" "$work/t" # the freshly loaded store, for the damage test below
expect 0 "run x2" -- $tpcc run --dir "$D" --threads 3 --seconds 0.5 --runs 2 --durability durable
[ "$(echo "$out" | grep -c '^run [12]:')" -eq 2 ] && ok || bad "two run lines: $out"
expect 0 "check after run" -- $tpcc check --dir "$D" --verbose
[[ $out == *": 0 violations"* ]] && ok || bad "check after run: $out"

# ---- check catches damage (with kvstore, which opens any tree of a store) --------------------
if [ -n "${kv:-}" ] && [ -x "$kv" ]; then
  # the loaded new-order of warehouse 1, district 1, order 40 (of 36..50 undelivered)
  expect 0 "tamper: delete a new-order row" -- $kv -d "$work/t" --tree new_order del %00%01%01%00%00%00%28
  expect 1 "check finds the missing new-order" -- $tpcc check --dir "$work/t"
  [[ $out == *"VIOLATION condition 3, warehouse 1 district 1"* ]] && ok || bad "no condition 3: $out"
  [[ $out == *"VIOLATION condition 5, warehouse 1 district 1: order 40"* ]] && ok || bad "no condition 5: $out"
  [[ $out == *": 2 violations"* ]] && ok || bad "violation count: $out"
else
  echo "  (no kvstore binary: the damage test is skipped)"
fi

# ---- errors -------------------------------------------------------------------------------------
expect 0 "--help" -- $tpcc --help
for w in "tpcc load" "tpcc run" "tpcc check" "--durability" "--scale-down" "exit status"; do
  [[ $out == *"$w"* ]] && ok || bad "--help lacks '$w'"
done
expect 2 "no arguments" -- $tpcc
expect 2 "unknown command" -- $tpcc frobnicate
expect 2 "run without --dir" -- $tpcc run
expect 2 "load without --warehouses" -- $tpcc load --dir "$work/x"
expect 2 "--warehouses 0" -- $tpcc --warehouses 0
expect 2 "--seconds -1" -- $tpcc run --dir "$D" --seconds -1
expect 2 "--seconds abc" -- $tpcc run --dir "$D" --seconds abc
expect 2 "--threads 0" -- $tpcc run --dir "$D" --threads 0
expect 2 "--durability maybe" -- $tpcc run --dir "$D" --durability maybe
expect 2 "--budget 1x" -- $tpcc run --dir "$D" --budget 1x
expect 2 "--pin sideways" -- $tpcc run --dir "$D" --pin sideways
expect 2 "--items 5" -- $tpcc load --dir "$work/x" --warehouses 1 --items 5
expect 2 "option of another command" -- $tpcc check --dir "$D" --seconds 3
expect 2 "missing value" -- $tpcc run --dir
[[ $err == *"needs a value"* ]] && ok || bad "missing value message: $err"
expect 3 "run on a directory without a store" -- $tpcc run --dir "$work/empty" --seconds 0.1
expect 3 "check on a directory without a store" -- $tpcc check --dir "$work/empty"
[ ! -e "$work/empty" ] && ok || bad "run/check created a store"

echo "tpcc_oneshot: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
