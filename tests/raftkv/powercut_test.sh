#!/usr/bin/env bash
# powercut_test.sh RAFTKV KVSTORE — a power cut of one raftkv node's file system (issue 18),
# with the loop-device method of tests/kvstore/powercut_test.sh: node 3's whole directory
# (raft's log and metadata, its pagebox store) is an XFS image (ext4 where mkfs.xfs is
# missing) on a loop device. Under a durable write load through the leader, CYCLES times
# (4 x PBOX_STRESS_SCALE) at a random moment node 3 is frozen (SIGSTOP), its file system is
# shut down without flushing its log (`xfs_io -x -c shutdown`: what was not on the device is
# lost, as in a power cut), the node is killed, the file system unmounted and mounted again
# (XFS log recovery) and the node restarted: raft must find its log and vote intact as far as
# it synced them, the store must recover to a prefix of the entries, and the node must catch
# up. Every other cut, node 3 is first made the leader (`transfer 3`). Then `raftkv check`
# (all nodes identical, every acknowledged write everywhere) and, with the cluster stopped,
# `kvstore check-acks` and `verify` on each store. A count, not a rate, is required (the run
# fails if nothing was acknowledged).
# Skips (77) without root, losetup, loop devices, mkfs.xfs/ext4 or xfs_io. Release build only.
set -uo pipefail
rk=$1 kv=$2
skip() { echo "raftkv_powercut: SKIPPED: $*"; exit 77; }
[ "$(id -u)" -eq 0 ] || skip "needs root (loop devices, mount)"
for c in losetup mount umount xfs_io; do command -v $c >/dev/null || skip "no $c (xfsprogs)"; done
if command -v mkfs.xfs >/dev/null; then mkfs=(mkfs.xfs -q -f)
elif command -v mkfs.ext4 >/dev/null; then mkfs=(mkfs.ext4 -q -F)
else skip "no mkfs.xfs or mkfs.ext4"; fi
scale=${PBOX_STRESS_SCALE:-1}
cycles=$((4 * scale))
seed=${PBOX_SEED:-$(( $(date +%s%N) % 1000000007 ))}
RANDOM=$((seed % 32768))
et=500
work=$(mktemp -d "${TMPDIR:-/tmp}/rkvcut.XXXXXX")
cl=$work/c acks=$work/acks log=$work/log img=$work/fs.img mnt=$work/c/n3 dev=""
port=$((24000 + ($$ % 2000) * 10))
echo "raftkv_powercut: seed $seed (rerun with PBOX_SEED=$seed), $cycles cuts of n3, dir $work"
spid=""
is_mounted() { grep -q " $mnt " /proc/mounts; }
cleanup() {
  [ -n "$spid" ] && kill -9 "$spid" 2>/dev/null
  "$rk" cluster stop --dir "$cl" --timeout 5 >/dev/null 2>&1
  is_mounted && { umount "$mnt" 2>/dev/null || umount -l "$mnt"; }
  [ -n "$dev" ] && losetup -d "$dev" 2>/dev/null
  if [ "${keep:-0}" = 1 ]; then echo "raftkv_powercut: kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
fail() {
  echo "raftkv_powercut: FAILED at cut ${cyc:-0}: $*"; keep=1
  for f in "$cl"/n*/log; do echo "--- $f"; tail -12 "$f"; done
  echo "--- $log"; tail -20 "$log"; echo "0 passed, 1 failed"; exit 1
}
mkdir -p "$mnt"
truncate -s 1G "$img"
"${mkfs[@]}" "$img" >/dev/null 2>&1 || skip "mkfs failed"
dev=$(losetup -f --show "$img" 2>/dev/null) || skip "no free loop device"
mount "$dev" "$mnt" 2>/dev/null || skip "cannot mount a loop device here"

acks_now() { local n; n=$(grep -vc '^#' "$acks" 2>/dev/null); echo "${n:-0}"; }
wait_acks() {
  local i
  for i in $(seq 1 300); do [ "$(acks_now)" -gt "$1" ] && return 0; sleep 0.1; done
  fail "no acknowledgement in 30 s (had $1)"
}
"$rk" cluster start --dir "$cl" --port $port --election-timeout $et --snapshot-every 3000 \
  --snapshot-trailing 300 >>"$log" 2>&1 || fail "cluster start"
: > "$acks"
"$rk" -c "$cl" stress --threads 3 --seconds 100000 --ack-file "$acks" --batch 4 --value-size 200 \
  --timeout 60 >>"$log" 2>&1 &
spid=$!
wait_acks 0
leaders=0
for cyc in $(seq 1 "$cycles"); do
  # every other cut, n3 is made the leader first (the protocol's `transfer`)
  if [ $((cyc % 2)) = 0 ]; then
    l=$("$rk" -c "$cl" status 2>/dev/null | sed -n 's/^n\([0-9]*\): STATUS .*state=leader.*/\1/p' | head -1)
    [ -n "$l" ] && [ "$l" != 3 ] && echo "raftkv_powercut: transfer from n$l to n3: $(printf 'transfer 3\n' | "$rk" -c "$cl" raw --node "$l" 2>&1)"
  fi
  sleep "$((RANDOM % 3)).$((RANDOM % 10))"
  "$rk" -c "$cl" status 2>/dev/null | grep -q '^n3: .*state=leader' && leaders=$((leaders + 1))
  pid=$(cat "$mnt/pid" 2>/dev/null) || fail "n3 has no pid file"
  kill -STOP "$pid"
  xfs_io -x -c shutdown "$mnt" || fail "xfs_io shutdown"
  kill -9 "$pid"
  while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
  umount "$mnt" || fail "umount"
  mount "$dev" "$mnt" || fail "mount after the cut"
  before=$(acks_now)
  "$rk" cluster start --dir "$cl" >>"$log" 2>&1 || fail "restart of n3 after the cut"
  wait_acks "$before"
done
kill -TERM "$spid"; wait "$spid"; rc=$?; spid=""
[ $rc -eq 0 ] || fail "stress exited with $rc"
"$rk" -c "$cl" check --ack-file "$acks" --wait 60 >>"$log" 2>&1 || fail "check"
"$rk" cluster stop --dir "$cl" >>"$log" 2>&1 || fail "cluster stop"
for i in 1 2 3; do
  "$kv" -d "$cl/n$i/store" check-acks "$acks" >>"$log" 2>&1 || fail "kvstore check-acks on n$i"
  "$kv" -d "$cl/n$i/store" verify >>"$log" 2>&1 || fail "kvstore verify on n$i"
done
[ "$(acks_now)" -gt 0 ] || fail "nothing was acknowledged"
echo "raftkv_powercut: $cycles cuts of n3 ($leaders while it led), $(acks_now) acknowledged keys on all three stores; 1 passed, 0 failed"
