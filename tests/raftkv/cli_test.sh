#!/usr/bin/env bash
# cli_test.sh RAFTKV — raftkv's command line, line protocol and membership, end to end on a
# three-node cluster on 127.0.0.1 (and a standalone node):
#   - one-shot commands (put, get, del, scan, sget, txn, status, digest) and exit codes;
#   - bad input on the wire (`raw`): every malformed command answers ERR and applies nothing
#     (the digests before and after are equal), the session goes on; an overlong line closes
#     the connection after its ERR; an incomplete txn at end of input applies nothing;
#   - writes and linearizable reads on a follower answer NOTLEADER with the leader's id;
#   - exactly once: a write resent with the same SEQ is answered with the first result and
#     applied once; a lower SEQ is stale;
#   - bad command lines: exit 2 with a message;
#   - membership: a fourth node added at run time catches up (equal digest), becomes a voter,
#     and is removed again;
#   - a standalone node (no raft) serves the same protocol.
# Election timeout 1 s under sanitizers (PBOX_SANITIZE), 500 ms otherwise.
set -uo pipefail
rk=$1
et=500
case ${PBOX_SANITIZE:-none} in none) ;; *) et=1000 ;; esac
work=$(mktemp -d "${TMPDIR:-/tmp}/rkvcli.XXXXXX")
cl=$work/c log=$work/log
port=$((22000 + ($$ % 2000) * 10))
n4pid="" spid=""
cleanup() {
  [ -n "$n4pid" ] && kill -9 "$n4pid" 2>/dev/null
  [ -n "$spid" ] && kill -9 "$spid" 2>/dev/null
  "$rk" cluster stop --dir "$cl" --timeout 5 >/dev/null 2>&1
  if [ "${keep:-0}" = 1 ]; then echo "raftkv_cli: kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
fail() {
  echo "raftkv_cli: FAILED: $*"; keep=1
  for f in "$cl"/n*/log; do echo "--- $f"; tail -10 "$f"; done
  echo "0 passed, 1 failed"; exit 1
}
expect() { # expect WHAT EXPECTED ACTUAL
  [ "$2" = "$3" ] || fail "$1: expected [$2], got [$3]"
}
rkc() { "$rk" -c "$cl" "$@"; }
leader() { rkc status 2>/dev/null | sed -n 's/^n\([0-9]*\): STATUS .*state=leader.*/\1/p' | head -1; }
digest() { printf 'digest\n' | rkc raw --node "$1" | sed 's/ hash=/ h=/'; }

"$rk" cluster start --dir "$cl" --port $port --election-timeout $et >"$log" 2>&1 \
  || fail "cluster start: $(cat "$log")"
L=$(leader); [ -n "$L" ] || fail "no leader"
F=$(( L % 3 + 1 ))

# ---- one-shot commands ----------------------------------------------------------------------
rkc put apple red >/dev/null || fail "put"
expect "get" "red" "$(rkc get apple)"
rkc put 'a%20b' 'x%00y' >/dev/null || fail "put %HH"
expect "get %HH" "x%00y" "$(rkc get 'a%20b')"
rkc get nope >/dev/null 2>&1; expect "get absent exit" 1 $?
rkc del nope >/dev/null 2>&1; expect "del absent exit" 1 $?
printf 'put t1 1\nput t2 2\ndel apple\n' | rkc txn >/dev/null || fail "txn"
rkc get apple >/dev/null 2>&1; expect "txn's del" 1 $?
expect "scan" "$(printf 'a%%20b\tx%%00y\nt1\t1\nt2\t2')" "$(rkc scan)"
rkc barrier >/dev/null || fail "barrier"
for i in 1 2 3; do
  v=$(rkc sget --node $i t2 2>/dev/null)
  for w in $(seq 1 50); do [ "$v" = 2 ] && break; sleep 0.1; v=$(rkc sget --node $i t2 2>/dev/null); done
  expect "sget on n$i" 2 "$v"
done
rkc status > "$work/status" || fail "status"
[ "$(grep -c ': STATUS ' "$work/status")" = 3 ] || fail "status: $(cat "$work/status")"
rkc digest > "$work/dig" || fail "digest"
[ "$(awk '{print $3, $4, $5}' "$work/dig" | sort -u | wc -l)" = 1 ] || fail "digests differ: $(cat "$work/dig")"

# ---- bad command lines ----------------------------------------------------------------------
for args in "put onlykey" "get" "frobnicate" "scan a b c d" "add x y" "remove" "put a%zz v"; do
  rkc $args >/dev/null 2>"$work/err"; rc=$?
  expect "usage error [$args] exit" 2 $rc
  [ -s "$work/err" ] || fail "usage error [$args] printed nothing"
done
"$rk" node --dir "$work/x" >/dev/null 2>&1; expect "node without --id" 2 $?
"$rk" node --dir "$work/x" --id 0 --address 127.0.0.1:1 >/dev/null 2>&1; expect "node --id 0" 2 $?
"$rk" cluster start >/dev/null 2>&1; expect "cluster start without --dir" 2 $?
"$rk" cluster frob >/dev/null 2>&1; expect "cluster frob" 2 $?
"$rk" -c "$work/none" get k >/dev/null 2>&1; expect "no cluster" 3 $?

# ---- the wire: malformed commands apply nothing ---------------------------------------------
before=$(digest $L)
out=$(printf '%s\n' 'hello' 'hello xyz' 'hello 0' 'hello 00112233445566778' 'hello 1f' \
  'put' 'put 0 k v' 'put x k v' 'put 1 k' 'put 1 k v extra' 'put 1 k%zz v' 'del 1' \
  'txn 1 0' 'txn 1 10001' 'txn x 1' 'put k v' 'get' 'scan - -' 'scan - - x' 'scan - - 100001' \
  'sget' 'add 0 127.0.0.1:1' 'remove x' 'status extra' 'bogus' '' \
  | rkc raw --node $L)
expect "malformed commands: answers" 25 "$(echo "$out" | wc -l)"
expect "malformed commands: ERR" 24 "$(echo "$out" | grep -c '^ERR ')"
expect "hello 1f" OK "$(echo "$out" | sed -n 5p)"
out=$(printf 'hello 2a\ntxn 1 2\nput k1 v\nfrob k2\nget k1\n' | rkc raw --node $L)
expect "txn with a bad op" "$(printf 'OK\nERR usage: put K V | del K (in a txn)\nNOTFOUND')" "$out"
out=$(printf 'hello 2b\ntxn 1 3\nput k1 v\nput k2 v\n' | rkc raw --node $L)
expect "incomplete txn" "$(printf 'OK\nERR incomplete request at end of input')" "$out"
out=$( (printf 'put 1 '; head -c $((4 * 1024 * 1024)) /dev/zero | tr '\0' 'a'; printf '\nstatus\n') \
  | rkc raw --node $L)
echo "$out" | grep -q '^ERR line longer than' || fail "overlong line: $(echo "$out" | cut -c1-80)"
[ "$(echo "$out" | wc -l)" = 1 ] || fail "the connection went on after an overlong line"
out=$(printf 'put 1 %s v\n' "$(head -c 5000 /dev/zero | tr '\0' 'k')" | rkc raw --node $L)
expect "key over the limit" "ERR key longer than 4096 bytes" "$out"
expect "digest after bad input" "$before" "$(digest $L)"

# ---- NOTLEADER, exactly once, stale -----------------------------------------------------------
out=$(printf 'put 1 k v\nget k\nscan - - 1\nbarrier\nsget t1\n' | rkc raw --node $F)
expect "follower answers" "$(printf 'NOTLEADER %s\nNOTLEADER %s\nNOTLEADER %s\nNOTLEADER %s\nVALUE 1' $L $L $L $L)" "$out"
out=$(printf 'hello abc\nput 7 once 1\nput 7 once 2\ndel 8 nothere\ndel 8 nothere\nput 6 once 3\nget once\n' \
  | rkc raw --node $L)
expect "exactly once" "$(printf 'OK\nOK\nOK\nNOTFOUND\nNOTFOUND\nERR stale sequence\nVALUE 1')" "$out"

# ---- membership: add a fourth node, then remove it --------------------------------------------
setsid "$rk" node --dir "$cl/n4" --id 4 --address 127.0.0.1:$((port + 4)) \
  --election-timeout $et >"$work/n4.log" 2>&1 &
n4pid=$!
for i in $(seq 1 100); do [ -S "$cl/n4/sock" ] && break; sleep 0.1; done
rkc add 4 127.0.0.1:$((port + 4)) >/dev/null 2>"$work/err" || fail "add 4: $(cat "$work/err")"
rkc status | grep "^n$L:" | grep -q 'voters=.*4' || fail "n4 is not a voter: $(rkc status)"
rkc put after-add yes >/dev/null || fail "put after add"
rkc barrier >/dev/null
ld=$(digest $L)
for i in $(seq 1 100); do [ "$(digest 4)" = "$ld" ] && break; sleep 0.1; done
expect "n4 caught up" "$ld" "$(digest 4)"
rkc add 4 127.0.0.1:$((port + 4)) >/dev/null 2>&1; expect "add of a member" 3 $?
rkc remove 4 >/dev/null 2>"$work/err" || fail "remove 4: $(cat "$work/err")"
rkc status | grep "^n$L:" | grep -q 'voters=.*4' && fail "n4 is still a voter"
rkc remove 9 >/dev/null 2>&1; expect "remove of a stranger" 3 $?
kill "$n4pid"; wait "$n4pid" 2>/dev/null; n4pid=""
rkc put after-remove yes >/dev/null || fail "put after remove"

# ---- leadership transfer ----------------------------------------------------------------------
rkc transfer "$F" >/dev/null 2>"$work/err" || fail "transfer to n$F: $(cat "$work/err")"
expect "leader after transfer" "$F" "$(leader)"
rkc transfer 0x >/dev/null 2>&1; expect "transfer with a bad id" 2 $?
rkc put after-transfer yes >/dev/null || fail "put after transfer"

# ---- a standalone node ------------------------------------------------------------------------
setsid "$rk" node --dir "$work/sa" --standalone >"$work/sa.log" 2>&1 &
spid=$!
for i in $(seq 1 100); do [ -S "$work/sa/sock" ] && break; sleep 0.1; done
out=$(printf 'hello 9\nput 1 k v\nput 1 k w\nget k\ntxn 2 2\nput a 1\ndel k\nstatus\nadd 2 127.0.0.1:1\n' \
  | "$rk" -s "$work/sa/sock" raw | sed 's/applied=.*/applied=/')
expect "standalone" "$(printf 'OK\nOK\nOK\nVALUE v\nOK\nSTATUS id=0 state=standalone applied=\nERR a standalone node has no membership')" "$out"
kill "$spid"; wait "$spid" 2>/dev/null; spid=""

echo "raftkv_cli: 1 passed, 0 failed"
