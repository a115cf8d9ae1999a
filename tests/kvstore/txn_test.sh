#!/usr/bin/env bash
# txn_test.sh KVSTORE — kvstore's transactions end to end:
#   1. `stress --batch 10000`: transactions of 10 000 keys (no batch limit), check-acks;
#   2. `stress --transfers 50`: concurrent conflicting transfer transactions, a clean run
#      (conflicts retried, snapshot audits, check-acks), the account count kept per store;
#   3. check-acks catching a tampered balance (TOTAL, LEDGER), a lost transfer record
#      (MISSING) and a changed one (WRONG), and skipping '#' lines;
#   4. kill -9 of `stress --transfers 50` at a random moment, CYCLES times (default 4, or
#      $KV_TXN_CYCLES), each followed by check-acks and verify, then a check of the cumulative
#      ack file.
# Bounded to a few seconds per step. RANDOM is seeded from $PBOX_SEED when set (printed).
set -uo pipefail
kv=$1
work=$(mktemp -d "${TMPDIR:-/tmp}/kvtxn.XXXXXX")
trap 'kill -9 $(jobs -p) 2>/dev/null; [ "${fail:-1}" -eq 0 ] && rm -rf "$work"' EXIT
pass=0 fail=0
seed=${PBOX_SEED:-$(( $(date +%s) % 100000 ))}
RANDOM=$seed
echo "kvstore_txn: seed $seed, scratch $work"
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }
expect() { # expect CODE DESCRIPTION -- command...: stdout in $out, stderr in $err
  local code=$1 what=$2; shift 3
  out=$("$@" 2>"$work/stderr"); local rc=$?
  err=$(cat "$work/stderr")
  if [ "$rc" -eq "$code" ]; then ok; else bad "$what: exit $rc, wanted $code (stdout: $out; stderr: $err)"; fi
}
# the number in "... N <word>" of a summary line
num_before() { echo "$1" | grep -o "[0-9]* $2" | head -1 | cut -d' ' -f1; }

# ---- 1. transactions of 10 000 keys ----------------------------------------------------------
B="-d $work/b"
expect 0 "stress --batch 10000" -- $kv $B stress --threads 2 --seconds 1 --batch 10000 --ack-file "$work/b.acks"
echo "  $out"
keys=$(num_before "$out" "keys acknowledged")
[ "${keys:-0}" -ge 10000 ] && ok || bad "stress --batch 10000 acknowledged ${keys:-0} keys"
[ $(( ${keys:-1} % 10000 )) -eq 0 ] && ok || bad "keys acknowledged not whole transactions: $keys"
same_lines=$(wc -l < "$work/b.acks")
[ "$same_lines" -eq "${keys:-0}" ] && ok || bad "ack file has $same_lines lines, summary says $keys keys"
expect 0 "check-acks after --batch 10000" -- $kv $B check-acks "$work/b.acks"; echo "  $out"
expect 0 "verify after --batch 10000" -- $kv $B verify

# ---- 2. transfers: a clean run ----------------------------------------------------------------
X="-d $work/x"
expect 2 "--transfers with --batch" -- $kv $X stress --threads 1 --seconds 1 --transfers 50 --batch 2 --ack-file "$work/x.acks"
expect 2 "--transfers 1" -- $kv $X stress --threads 1 --seconds 1 --transfers 1 --ack-file "$work/x.acks"
expect 0 "stress --transfers 50" -- $kv $X stress --threads 4 --seconds 1.5 --transfers 50 --ack-file "$work/x.acks"
echo "  $out"
n=$(num_before "$out" "transfers committed")
retries=$(num_before "$out" "conflict retries")
[ "${n:-0}" -gt 0 ] && ok || bad "no transfer committed"
[ -n "$retries" ] && ok || bad "summary lacks the conflict retries"
[[ $out == *"sum to 50000 (expected 50000)"* ]] && ok || bad "summary: balances"
[ "$(grep -c '^T ' "$work/x.acks")" -eq "${n:-0}" ] && ok || bad "ack file T lines != transfers committed"
[ "$(grep -c '^#' "$work/x.acks")" -ge 1 ] && ok || bad "no comment line in the ack file"
expect 0 "get acct/total" -- $kv $X get acct/total; [ "$out" == "50000%2050%201000" ] && ok || bad "acct/total: $out"
expect 0 "check-acks after transfers" -- $kv $X check-acks "$work/x.acks"; echo "  $out"
[[ $out == *"${n:-?} acknowledged transfers, ${n:-?} transfer records and 50 accounts in the store summing to 50000 (total 50000): 0 violations" ]] && ok || bad "check-acks summary: $out"
expect 2 "a store of 50 accounts refuses --transfers 40" -- $kv $X stress --threads 1 --seconds 1 --transfers 40 --ack-file "$work/x.acks"
[[ $err == *"use --transfers 50"* ]] && ok || bad "account-count message: $err"
# a second run continues the sequences (no record rewritten)
expect 0 "second transfers run" -- $kv $X stress --threads 2 --seconds 0.5 --transfers 50 --ack-file "$work/x.acks"
expect 0 "check-acks after two runs" -- $kv $X check-acks "$work/x.acks"
dups=$(grep '^T ' "$work/x.acks" | cut -d' ' -f2,3 | sort | uniq -d | wc -l)
[ "$dups" -eq 0 ] && ok || bad "$dups transfer sequence numbers reused"

# ---- 3. check-acks catches damage -------------------------------------------------------------
cp -r "$work/x" "$work/y"; Y="-d $work/y"
printf '# a comment the checker skips\n' >> "$work/x.acks"
expect 0 "comment lines skipped" -- $kv $X check-acks "$work/x.acks"
bal=$($kv $Y get acct/00000007)
expect 0 "tamper a balance" -- $kv $Y put acct/00000007 $((bal + 5))
expect 1 "check-acks: tampered balance" -- $kv $Y check-acks "$work/x.acks"
[[ $out == *"TOTAL:"* ]] && ok || bad "no TOTAL violation: $out"
[[ $out == *"LEDGER acct/00000007"* ]] && ok || bad "no LEDGER violation: $out"
$kv $Y put acct/00000007 "$bal" || bad "restore the balance"
first=$(grep -m1 '^T ' "$work/x.acks")
rk=$(printf 'xfer/%s/%012d' $(echo "$first" | cut -d' ' -f2) $(echo "$first" | cut -d' ' -f3))
expect 0 "the first transfer's record" -- $kv $Y get "$rk"
rec=$(echo "$first" | cut -d' ' -f4-6)
[ "$out" == "${rec// /%20}" ] && ok || bad "record $rk: [$out] vs [$first]"
changed="$(echo "$first" | cut -d' ' -f4-5) 999999"
expect 0 "change a record" -- $kv $Y put "$rk" "${changed// /%20}"
expect 1 "check-acks: changed record" -- $kv $Y check-acks "$work/x.acks"
[[ $out == *"WRONG $rk"* ]] && ok || bad "no WRONG violation: $out"
expect 0 "delete a record" -- $kv $Y del "$rk"
expect 1 "check-acks: lost record" -- $kv $Y check-acks "$work/x.acks"
[[ $out == *"MISSING $rk"* ]] && ok || bad "no MISSING violation: $out"
printf 'T 1 2 3\n' > "$work/bad.acks"
expect 1 "check-acks: malformed T line" -- $kv $X check-acks "$work/bad.acks"
[[ $out == *MALFORMED* ]] && ok || bad "no MALFORMED: $out"
printf 'T 0 999999 1 2 3\n' > "$work/bad.acks"
expect 1 "check-acks: unknown transfer" -- $kv $X check-acks "$work/bad.acks"
expect 1 "check-acks: transfers but no accounts" -- $kv $B check-acks "$work/bad.acks"
[[ $out == *"MISSING acct/total"* ]] && ok || bad "no MISSING acct/total: $out"

# ---- 4. kill -9 in the middle of conflicting transfers ---------------------------------------
K="-d $work/k"
cycles=${KV_TXN_CYCLES:-4}
: > "$work/k.all"
# create the store and its accounts first, so an early kill is one during open and recovery
# (a killed creation leaves no store, which the torture test covers)
expect 0 "create the accounts" -- $kv $K stress --threads 1 --seconds 0 --transfers 50 --ack-file "$work/k.all"
for c in $(seq 1 "$cycles"); do
  failed_before=$fail
  : > "$work/k.acks"
  threads=$((1 + RANDOM % 4))
  $kv $K stress --threads $threads --seconds 60 --transfers 50 --ack-file "$work/k.acks" \
    > "$work/k.out" 2>&1 &
  pid=$!
  ms=$((RANDOM % 1500))   # 0..1.5 s: sometimes during the open (and its recovery)
  sleep "$(printf '%d.%03d' $((ms / 1000)) $((ms % 1000)))"
  if ! kill -0 $pid 2>/dev/null; then bad "cycle $c: stress exited by itself: $(cat "$work/k.out")"; break; fi
  kill -9 $pid; wait $pid 2>/dev/null
  t=$(grep -c '^T ' "$work/k.acks")
  echo "  cycle $c: $threads threads killed after ${ms} ms, $t transfers acknowledged"
  expect 0 "cycle $c: check-acks after kill -9" -- $kv $K check-acks "$work/k.acks"
  [ $fail -eq $failed_before ] || { echo "$out"; break; }
  expect 0 "cycle $c: verify after kill -9" -- $kv $K verify
  # the cumulative file must stay line-aligned: drop a torn last line
  if [ -s "$work/k.acks" ] && [ "$(tail -c1 "$work/k.acks" | od -An -c | tr -d ' ')" != '\n' ]; then
    sed -i '$d' "$work/k.acks"
  fi
  cat "$work/k.acks" >> "$work/k.all"
done
expect 0 "check-acks of every cycle's acknowledgements" -- $kv $K check-acks "$work/k.all"; echo "  $out"
[ "$(grep -c '^T ' "$work/k.all")" -gt 0 ] && ok || bad "no transfer acknowledged in $cycles cycles: nothing was tested"

echo "kvstore_txn: $pass checks passed, $fail failed (seed $seed)"
[ $fail -eq 0 ] || echo "kvstore_txn: scratch kept in $work"
echo "$((fail == 0 ? 1 : 0)) passed, $((fail == 0 ? 0 : 1)) failed"
[ $fail -eq 0 ]
