#!/usr/bin/env bash
# powercut_test.sh KVSTORE — a power cut that also loses unsynced data.
#
# The store lives on an XFS image (ext4 where mkfs.xfs is missing) on a loop device; the ack
# file lives outside it. Each cycle runs `kvstore stress` on it, then at a random moment
# freezes the writer (SIGSTOP: it can neither write more nor acknowledge more), shuts the
# file system down without flushing its log (`xfs_io -x -c shutdown`: everything not yet on
# the device is lost, as in a power cut), kills the writer, unmounts, mounts again (the file
# system's own log recovery), and requires `kvstore check-acks` and `kvstore verify` to pass.
# One cycle in five runs `stress --transfers 50` (conflicting transactions; check-acks then
# also requires the balances to add up). Every other cycle first kills a writer with kill -9 (the kernel keeps what it wrote,
# unsynced), then starts a new one — which reopens the store and writes more — and cuts that
# one: an open that trusted a name or superblock the killed writer left unsynced loses
# acknowledged writes here. The run fails if no key was acknowledged at all (a count, not a
# rate: no timing gate). The cut's random delay counts from the cut writer's first
# acknowledgement (a slow start — a sanitizer build on a loaded machine — would otherwise cut
# before anything was written); the kill -9 delay counts from the start, so some kills land
# inside an open.
#
# Skips (exit 77) when not root or without losetup, loop devices, mkfs.xfs/mkfs.ext4 or
# xfs_io. Cycles: 20 x PBOX_STRESS_SCALE (6 under sanitizers). PBOX_SEED reproduces the
# choices (not the timing).
set -uo pipefail
kv=$1
skip() { echo "kvstore_powercut: SKIPPED: $*"; exit 77; }
[ "$(id -u)" -eq 0 ] || skip "needs root (loop devices, mount)"
for c in losetup mount umount xfs_io; do command -v $c >/dev/null || skip "no $c (xfsprogs)"; done
if command -v mkfs.xfs >/dev/null; then fstype=xfs; mkfs=(mkfs.xfs -q -f)
elif command -v mkfs.ext4 >/dev/null; then fstype=ext4; mkfs=(mkfs.ext4 -q -F)
else skip "no mkfs.xfs or mkfs.ext4"; fi

scale=${PBOX_STRESS_SCALE:-1}
cycles=$((20 * scale))
case ${PBOX_SANITIZE:-none} in none) ;; *) cycles=$((6 * scale)) ;; esac
seed=${PBOX_SEED:-$(( $(date +%s%N) % 1000000007 ))}
RANDOM=$((seed % 32768))
echo "kvstore_powercut: seed $seed (rerun with PBOX_SEED=$seed), $cycles cycles on $fstype"

work=$(mktemp -d "${TMPDIR:-/tmp}/kvpowercut.XXXXXX")
img=$work/fs.img mnt=$work/mnt dev=""
# (not mountpoint(1): on a file system that was shut down, stat fails with EIO)
is_mounted() { grep -q " $mnt " /proc/mounts; }
cleanup() {
  [ -n "${wpid:-}" ] && kill -9 "$wpid" 2>/dev/null
  is_mounted && { umount "$mnt" 2>/dev/null || umount -l "$mnt"; }
  [ -n "$dev" ] && losetup -d "$dev" 2>/dev/null
  if [ "${keep:-0}" = 1 ]; then echo "kvstore_powercut: kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
mkdir -p "$mnt"
# sparse; XFS wants at least 300 MiB. 20 cycles grow the data file to ~150 MiB and the log
# to --checkpoint-log (64 MiB) plus the segments in flight: 1 GiB leaves room for both.
truncate -s 1G "$img"
"${mkfs[@]}" "$img" >/dev/null 2>&1 || skip "$fstype mkfs failed"
dev=$(losetup -f --show "$img" 2>/dev/null) || skip "no free loop device"
mount "$dev" "$mnt" 2>/dev/null || skip "cannot mount a $fstype loop device here"

store=$mnt/store acks=$work/acks log=$work/log
acks_now() { grep -vc '^#' "$acks"; }
# wait (at most 60 s) until the file holds more than $1 acknowledgements or writer $2 exits
wait_first_ack() {
  local _
  for _ in $(seq 1 1200); do
    [ "$(acks_now)" -gt "$1" ] && return 0
    kill -0 "$2" 2>/dev/null || return 0
    sleep 0.05
  done
}
fail() { echo "kvstore_powercut: FAILED at cycle $cyc: $*"; keep=1; tail -40 "$log"; echo "0 passed, 1 failed"; exit 1; }
"$kv" -d "$store" put created yes >>"$log" 2>&1 || fail "cannot create the store"
: > "$acks"
t0=$(date +%s)
total=0 kills=0
for cyc in $(seq 1 "$cycles"); do
  threads=$((1 + RANDOM % 3))
  case $((RANDOM % 5)) in
    0) mode=(--batch $((1 + RANDOM % 64)) --value-size 40) ;;
    1) mode=(--batch 1 --value-size 100) ;;
    2) mode=(--batch $((1 + RANDOM % 16)) --value-size 300) ;;
    3) mode=(--batch $((1 + RANDOM % 8)) --value-size 3000) ;;
    4) mode=(--transfers 50) ;;  # conflicting transfer transactions (a store keeps its count)
  esac
  delay=$(printf '0.%03d' $((50 + RANDOM % 500)))
  before=$(acks_now)
  stress=("$kv" -d "$store" --budget 16M --checkpoint-log 64M stress --threads $threads --seconds 60
          --ack-file "$acks" "${mode[@]}")
  if [ $((cyc % 2)) = 0 ]; then
    # kill -9 first (what the kernel holds stays unsynced), then a new writer reopens the
    # store — its open must make durable whatever it trusts — and writes more before the cut
    kdelay=$(printf '0.%03d' $((50 + RANDOM % 300)))
    echo "--- cycle $cyc: stress --threads $threads ${mode[*]}, kill -9 after ${kdelay}s, reopen, cut after ${delay}s" >>"$log"
    "${stress[@]}" >>"$log" 2>&1 &
    wpid=$!
    sleep "$kdelay"
    kill -9 $wpid 2>/dev/null || fail "the first writer died early"
    wait $wpid 2>/dev/null
    [ -s "$acks" ] && [ "$(tail -c1 "$acks" | od -An -c | tr -d ' ')" != '\n' ] && sed -i '$d' "$acks"
    kills=$((kills + 1))
  else
    echo "--- cycle $cyc: stress --threads $threads ${mode[*]}, cut after ${delay}s" >>"$log"
  fi
  cut_from=$(acks_now)
  "${stress[@]}" >>"$log" 2>&1 &
  wpid=$!
  wait_first_ack "$cut_from" "$wpid"
  sleep "$delay"
  kill -STOP $wpid || fail "the writer died early"
  xfs_io -x -c shutdown "$mnt" >>"$log" 2>&1 || fail "xfs_io shutdown failed"
  kill -9 $wpid
  wait $wpid 2>/dev/null
  wpid=""
  # the killed writer's last references (io_uring workers finishing cancelled requests)
  # can keep the mount busy for a moment after wait returns
  for _ in $(seq 1 150); do umount "$mnt" 2>/dev/null && break; sleep 0.2; done
  is_mounted && fail "umount failed (still busy after 30 s: $(fuser -vm "$mnt" 2>&1 | tr '\n' ' '))"
  mount "$dev" "$mnt" || fail "mount after the cut failed"
  # a torn last ack line is tolerated by check-acks; keep the file line-aligned anyway
  [ -s "$acks" ] && [ "$(tail -c1 "$acks" | od -An -c | tr -d ' ')" != '\n' ] && sed -i '$d' "$acks"
  n=$(( $(acks_now) - before )); total=$((total + n))
  echo "cycle $cyc: $n keys or transfers acknowledged before the cut" >>"$log"
  "$kv" -d "$store" check-acks "$acks" >>"$log" 2>&1 || fail "check-acks (exit $?)"
  "$kv" -d "$store" verify >>"$log" 2>&1 || fail "verify (exit $?)"
done
# a store that never acknowledged anything would pass every check above: require writes
[ "$total" -gt 0 ] || fail "no key acknowledged in $cycles cycles: nothing was tested"
echo "kvstore_powercut: $cycles power cuts on $fstype ($kills after a kill -9 and a reopen), $total keys or transfers acknowledged, $(( $(date +%s) - t0 )) s: no acknowledged write lost, every open succeeded"
echo "1 passed, 0 failed"
