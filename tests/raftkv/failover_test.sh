#!/usr/bin/env bash
# failover_test.sh RAFTKV KVSTORE — raftkv's failure tests (issue 18): a three-node cluster on
# 127.0.0.1 under a durable write load (`raftkv stress`: writes through whichever node leads,
# retried with the same SEQ after a leader change, acknowledgements logged in kvstore's ack
# format with `# at MS` stamps), through
#   1. kill -9 of the leader at random moments, KILLS times (5 x PBOX_STRESS_SCALE), each
#      killed node restarted by `raftkv cluster start`; the failover time of each kill is the
#      time from the kill to the first acknowledgement after it from another node (stress
#      stamps `# at MS nID`; printed: p50, p99, all);
#   2. SIGSTOP of a node (the leader, then a follower) for three election timeouts, then
#      SIGCONT: it steps down or catches up;
#   3. a follower wiped (its directory removed) and restarted after the others took
#      snapshots and truncated their logs: it must be installed from a snapshot (its status
#      counts restores);
# after each phase `raftkv check` (every node reachable, all applied the same entries, equal
# digests, every acknowledged write present on every node, no partial transaction), and at
# the end, with the cluster stopped, `kvstore check-acks` and `kvstore verify` on each node's
# store. A count, not a rate, is required of the load (no timing gate): the run fails if a
# phase acknowledged nothing.
# Release build only (CMake registers it there): sanitizer builds miss election timeouts.
# PBOX_SEED reproduces the choices (not the timing).
set -uo pipefail
rk=$1 kv=$2
scale=${PBOX_STRESS_SCALE:-1}
kills=$((5 * scale))
seed=${PBOX_SEED:-$(( $(date +%s%N) % 1000000007 ))}
RANDOM=$((seed % 32768))
et=500   # election timeout (ms)
work=$(mktemp -d "${TMPDIR:-/tmp}/rkvfail.XXXXXX")
cl=$work/c acks=$work/acks log=$work/log
port=$((20000 + ($$ % 2000) * 10))
echo "raftkv_failover: seed $seed (rerun with PBOX_SEED=$seed), $kills kills, ports $((port+1))..$((port+3)), dir $work"
spid=""
cleanup() {
  [ -n "$spid" ] && kill -9 "$spid" 2>/dev/null
  "$rk" cluster stop --dir "$cl" --timeout 5 >/dev/null 2>&1
  if [ "${keep:-0}" = 1 ]; then echo "raftkv_failover: kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
fail() {
  echo "raftkv_failover: FAILED: $*"; keep=1
  for f in "$cl"/n*/log; do echo "--- $f"; tail -15 "$f"; done
  echo "--- $log"; tail -30 "$log"; echo "0 passed, 1 failed"; exit 1
}
acks_now() { local n; n=$(grep -vc '^#' "$acks" 2>/dev/null); echo "${n:-0}"; }
leader() { "$rk" -c "$cl" status 2>/dev/null | sed -n 's/^n\([0-9]*\): STATUS .*state=leader.*/\1/p' | head -1; }
wait_leader() { # prints the leader's id; fails after 30 s
  local i l
  for i in $(seq 1 300); do l=$(leader); [ -n "$l" ] && { echo "$l"; return 0; }; sleep 0.1; done
  fail "no leader after 30 s"
}
start_stress() {
  "$rk" -c "$cl" stress --threads 3 --seconds 100000 --ack-file "$acks" --batch "$1" \
    --value-size 120 --stamp --timeout 60 >>"$log" 2>&1 &
  spid=$!
}
stop_stress() {
  kill -TERM "$spid" 2>/dev/null; wait "$spid"; local rc=$?; spid=""
  [ $rc -eq 0 ] || fail "stress exited with $rc"
}
# wait (at most 30 s) until the ack file grows past $1
wait_acks() {
  local i
  for i in $(seq 1 300); do [ "$(acks_now)" -gt "$1" ] && return 0; sleep 0.1; done
  fail "no acknowledgement in 30 s (had $1)"
}
check() {
  "$rk" -c "$cl" check --ack-file "$acks" --wait 60 >>"$log" 2>&1 || fail "check after $1"
  echo "raftkv_failover: $1: check passed ($(acks_now) acknowledged keys; $(tail -1 "$log"))"
}

"$rk" cluster start --dir "$cl" --port $port --election-timeout $et --snapshot-every 2000 \
  --snapshot-trailing 200 >>"$log" 2>&1 || fail "cluster start"
: > "$acks"

# ---- 1. kill -9 the leader, repeatedly ------------------------------------------------------
start_stress $((1 + RANDOM % 8))
wait_acks 0
: > "$work/kills"
for k in $(seq 1 $kills); do
  sleep "$((1 + RANDOM % 2)).$((RANDOM % 10))"
  l=$(wait_leader)
  pid=$(cat "$cl/n$l/pid")
  before=$(acks_now)
  echo "$(date +%s%3N) $l" >> "$work/kills"
  kill -9 "$pid"
  wait_acks "$before"    # a new leader took over and acknowledged
  "$rk" cluster start --dir "$cl" >>"$log" 2>&1 || fail "restart of n$l after kill $k"
done
sleep 1
stop_stress
# failover times: kill -> the first acknowledgement stamped after it by another node (an
# OK the killed leader sent just before dying may be written after the kill)
fo=()
while read -r t l; do
  f=$(awk -v t="$t" -v l="n$l" '$1 == "#" && $2 == "at" && $3 > t && $4 != l { print $3 - t; exit }' "$acks")
  [ -n "$f" ] && fo+=("$f")
done < "$work/kills"
[ ${#fo[@]} -eq "$kills" ] || fail "found an acknowledgement after ${#fo[@]} of $kills kills"
sorted=$(printf '%s\n' "${fo[@]}" | sort -n)
n=${#fo[@]}
p50=$(echo "$sorted" | sed -n "$(( (n + 1) / 2 ))p")
p99=$(echo "$sorted" | sed -n "$(( (n * 99 + 99) / 100 ))p")
echo "raftkv_failover: failover (kill -9 of the leader -> first acknowledged write), $n kills," \
     "election timeout $et ms: p50 $p50 ms, p99 $p99 ms, all: $(echo $sorted)"
check "the kills"

# ---- 2. SIGSTOP a node longer than the election timeout ------------------------------------
for who in leader follower; do
  start_stress $((1 + RANDOM % 4))
  wait_acks "$(acks_now)"
  l=$(wait_leader)
  if [ $who = leader ]; then v=$l; else v=$(( l % 3 + 1 )); fi
  pid=$(cat "$cl/n$v/pid")
  kill -STOP "$pid"
  sleep $(( 3 * et / 1000 + 1 ))
  before=$(acks_now)
  wait_acks "$before"    # the two others go on
  kill -CONT "$pid"
  sleep 1
  wait_acks "$(acks_now)"
  stop_stress
  check "SIGSTOP of the $who (n$v)"
done

# ---- 3. a wiped follower catches up from a snapshot ----------------------------------------
l=$(wait_leader)
v=$(( l % 3 + 1 ))
kill -9 "$(cat "$cl/n$v/pid")"
rm -rf "${cl:?}/n$v"
start_stress 20   # transactions of 20 keys: past --snapshot-every quickly
target=$(( $(acks_now) + 3 * 2000 * 20 / 2 ))
for i in $(seq 1 600); do [ "$(acks_now)" -gt "$target" ] && break; sleep 0.1; done
"$rk" cluster start --dir "$cl" >>"$log" 2>&1 || fail "restart of the wiped n$v"
sleep 2
stop_stress
check "the wipe of n$v"
"$rk" -c "$cl" status | grep "^n$v:" | grep -q 'restores=[1-9]' \
  || fail "the wiped n$v was not installed from a snapshot: $("$rk" -c "$cl" status | grep "^n$v:")"
echo "raftkv_failover: n$v was installed from a snapshot"

# ---- at rest: each node's store checked by kvstore ------------------------------------------
"$rk" cluster stop --dir "$cl" >>"$log" 2>&1 || fail "cluster stop"
for i in 1 2 3; do
  "$kv" -d "$cl/n$i/store" check-acks "$acks" >>"$log" 2>&1 || fail "kvstore check-acks on n$i"
  "$kv" -d "$cl/n$i/store" verify >>"$log" 2>&1 || fail "kvstore verify on n$i"
done
[ "$(acks_now)" -gt 0 ] || fail "nothing was acknowledged"
echo "raftkv_failover: $(acks_now) acknowledged keys on all three stores; 1 passed, 0 failed"
