#!/usr/bin/env bash
# recovery_time.sh KVSTORE [MIB] — how long reopening takes after MIB (default 256) of log
# written without a checkpoint.
#
# A `kvstore --durability fast batch` session puts MIB worth of 4000-byte values, sends
# `sync`, and is killed with SIGKILL once the sync's OK arrives — no checkpoint, no clean
# close, so the whole log must be replayed. Then `kvstore stats` reopens the store (running
# recovery) and reports what recovery did and how long it took; the whole command's wall
# time is measured too (it also writes every recovered page back at its clean close). The
# recovered data is checked (first and last key, verify). The figure is printed; the test
# fails only if recovery or the data is wrong, never on timing. Under sanitizers 32 MiB.
set -uo pipefail
kv=$1
mib=${2:-256}
case ${PBOX_SANITIZE:-none} in none) ;; *) mib=32 ;; esac
work=$(mktemp -d "${TMPDIR:-/tmp}/kvrecovery.XXXXXX")
trap 'exec 3>&- 2>/dev/null; [ -n "${bpid:-}" ] && kill -9 $bpid 2>/dev/null; rm -rf "$work"' EXIT
store=$work/store
fail() { echo "kvstore_recovery_time: FAILED: $*"; cat "$work/err" 2>/dev/null; echo "0 passed, 1 failed"; exit 1; }
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

vsize=4000
n=$(( mib * 1048576 / (vsize + 300) ))   # the log also carries headers and page images
mkfifo "$work/in"
"$kv" -d "$store" --durability fast --budget 1G --checkpoint-log 0 batch < "$work/in" > "$work/out" 2>"$work/err" &
bpid=$!
exec 3>"$work/in"
t0=$(now_ms)
awk -v n="$n" -v vs="$vsize" 'BEGIN {
  pad = sprintf("%*s", vs - 20, ""); gsub(/ /, "x", pad)
  for (i = 0; i < n; i++) printf("put r%08d %08d-%s-%08d\n", i, i, pad, i)
  print "sync"
}' >&3
while [ "$(wc -l < "$work/out")" -lt $((n + 1)) ]; do
  kill -0 $bpid 2>/dev/null || fail "the batch writer died"
  sleep 0.2
done
t1=$(now_ms)
[ "$(tail -1 "$work/out")" = OK ] || fail "sync did not answer OK"
[ "$(grep -vc '^OK$' "$work/out")" -eq 0 ] || fail "a put did not answer OK"
kill -9 $bpid; wait $bpid 2>/dev/null; bpid=""
exec 3>&-

t2=$(now_ms)
"$kv" -d "$store" stats > "$work/stats" 2>"$work/err" || fail "reopen (stats) failed"
t3=$(now_ms)
get() { awk -v k="$1" '$1 == k { print $2 }' "$work/stats"; }
walms=$(get wal_open_time) redoms=$(get redo_time) redob=$(get redo_bytes) groups=$(get redo_groups)
validated=$(get wal_bytes_validated)
want=$(printf '%08d-%s-%08d' $((n - 1)) "$(head -c $((vsize - 20)) /dev/zero | tr '\0' x)" $((n - 1)))
[ "$("$kv" -d "$store" get r00000000 | cut -c1-8)" = 00000000 ] || fail "first key lost"
[ "$("$kv" -d "$store" get "$(printf 'r%08d' $((n - 1)))")" = "$want" ] || fail "last key lost or wrong"
"$kv" -d "$store" verify > "$work/verify" || fail "verify: $(cat "$work/verify")"
echo "kvstore_recovery_time: $n puts of $vsize-byte values (fast durability, one sync) in $((t1 - t0)) ms, then kill -9"
echo "kvstore_recovery_time: log to recover: $((validated / 1048576)) MiB in $groups groups ($((redob / 1048576)) MiB of redo records)"
echo "kvstore_recovery_time: recovery at reopen: WAL validation $walms ms + redo $redoms ms"
echo "kvstore_recovery_time: whole 'kvstore stats' command (open + recovery + clean close writing the recovered pages back): $((t3 - t2)) ms"
echo "1 passed, 0 failed"
