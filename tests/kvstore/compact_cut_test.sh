#!/usr/bin/env bash
# compact_cut_test.sh KVSTORE — a power cut at every step of `kvstore compact` (issue 17).
#
# The store lives on an XFS image (ext4 where mkfs.xfs is missing) on a loop device. It is
# filled (puts, then half of them deleted, so the compact really rewrites), dumped, and then,
# for each step boundary N of compact (1 before the copy, 2 after the copy is durable, 3 just
# before the renameat2 swap, 4 after the swap, 5 after the swap is made durable, 6 after the
# old store is removed), compact runs with KVSTORE_COMPACT_PAUSE=N (backup_cmd.c's test hook:
# it stops itself there), the file system is shut down without flushing its log (`xfs_io -x
# -c shutdown`: what was not on the device is lost), the process is killed, the file system
# unmounted and mounted again. Each time the store must open, `verify` and dump exactly as
# before (it is either the old store or the compacted one, never neither, never a mix); the
# next compact removes a leftover DIR.compact. Then CUTS (3 x PBOX_STRESS_SCALE) cuts at a
# random moment of a compact, and one clean compact that must leave no DIR.compact.
# Skips (77) without root, losetup, loop devices, mkfs.xfs/ext4 or xfs_io.
set -uo pipefail
kv=$1
skip() { echo "kvstore_compact_cut: SKIPPED: $*"; exit 77; }
[ "$(id -u)" -eq 0 ] || skip "needs root (loop devices, mount)"
for c in losetup mount umount xfs_io; do command -v $c >/dev/null || skip "no $c (xfsprogs)"; done
if command -v mkfs.xfs >/dev/null; then mkfs=(mkfs.xfs -q -f)
elif command -v mkfs.ext4 >/dev/null; then mkfs=(mkfs.ext4 -q -F)
else skip "no mkfs.xfs or mkfs.ext4"; fi
scale=${PBOX_STRESS_SCALE:-1}
cuts=$((3 * scale))
seed=${PBOX_SEED:-$(( $(date +%s%N) % 1000000007 ))}
RANDOM=$((seed % 32768))
work=$(mktemp -d "${TMPDIR:-/tmp}/kvcompactcut.XXXXXX")
img=$work/fs.img mnt=$work/mnt dev="" pid=""
store=$mnt/s
echo "kvstore_compact_cut: seed $seed (rerun with PBOX_SEED=$seed), 6 steps + $cuts random cuts"
is_mounted() { grep -q " $mnt " /proc/mounts; }
cleanup() {
  [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null
  is_mounted && { umount "$mnt" 2>/dev/null || umount -l "$mnt"; }
  [ -n "$dev" ] && losetup -d "$dev" 2>/dev/null
  if [ "${keep:-0}" = 1 ]; then echo "kvstore_compact_cut: kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
fail() { echo "kvstore_compact_cut: FAILED at $what: $*"; keep=1; echo "0 passed, 1 failed"; exit 1; }
mkdir -p "$mnt"
truncate -s 1G "$img"
"${mkfs[@]}" "$img" >/dev/null 2>&1 || skip "mkfs failed"
dev=$(losetup -f --show "$img" 2>/dev/null) || skip "no free loop device"
mount "$dev" "$mnt" 2>/dev/null || skip "cannot mount a loop device here"

what="the fill"
awk 'BEGIN { srand(7); for (i = 0; i < 30000; i++) printf "put k%06d-%08x v%0200d\n", i, int(rand() * 4294967296), i }' > "$work/puts"
awk 'NR % 2 == 0 { print "del " $2 }' "$work/puts" > "$work/dels"
bad=$( (cat "$work/puts" "$work/dels"; echo sync) | "$kv" --durability fast -d "$store" batch \
  | grep -vc '^OK$')
[ "$bad" = 0 ] || fail "the fill answered $bad lines other than OK"
"$kv" -d "$store" create-tree second >/dev/null || fail "create-tree"
"$kv" -d "$store" --tree second put x y >/dev/null || fail "put in the second tree"
"$kv" -d "$store" dump > "$work/dump0" || fail "dump"

cut() { # the compact process $pid is stopped or running: cut the power under it
  xfs_io -x -c shutdown "$mnt" || fail "xfs_io shutdown"
  kill -9 "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; pid=""
  umount "$mnt" || fail "umount"
  mount "$dev" "$mnt" || fail "mount after the cut"
}
check_same() {
  "$kv" -d "$store" verify >"$work/verify" 2>&1 || { cat "$work/verify"; fail "verify"; }
  "$kv" -d "$store" dump > "$work/dump1" 2>"$work/err" || fail "dump: $(cat "$work/err")"
  cmp -s "$work/dump0" "$work/dump1" || fail "the store's content changed"
}
stopped() { [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" = T ]; }
for step in 1 2 3 4 5 6; do
  what="step $step"
  KVSTORE_COMPACT_PAUSE=$step "$kv" -d "$store" compact >"$work/out" 2>&1 &
  pid=$!
  for _ in $(seq 1 600); do stopped "$pid" && break; kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
  stopped "$pid" || fail "compact did not stop at step $step: $(cat "$work/out")"
  cut
  check_same
done
for c in $(seq 1 "$cuts"); do
  what="random cut $c"
  "$kv" -d "$store" compact >"$work/out" 2>&1 &
  pid=$!
  sleep "0.$((RANDOM % 30))"
  kill -STOP "$pid" 2>/dev/null
  cut
  check_same
done
what="the clean compact"
"$kv" -d "$store" compact >"$work/out" 2>&1 || fail "$(cat "$work/out")"
[ -e "$mnt/s.compact" ] && fail "a clean compact left s.compact"
check_same
echo "kvstore_compact_cut: the store held its content through cuts at 6 steps and $cuts random moments; 1 passed, 0 failed"
