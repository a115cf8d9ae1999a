#!/usr/bin/env bash
# backup-vs-cp.sh KVSTORE [SECONDS_OF_LOAD] — backup throughput with no writers against a raw
# copy of the same files, side by side (issue 17's benchmark).
#
# Builds a store with `kvstore --durability fast stress` (1 thread, transactions of 100 keys,
# 1000-byte values, for SECONDS_OF_LOAD, default 5) and a checkpoint, then RUNS (default 5)
# rounds; each round runs, in random order:
#   backup  `kvstore -d S backup D` (its own open, log flush, copy, every file synced, close)
#   cp      `cp -r --sparse=always S D` then `sync -f D/data` and `sync` of the log files
# after `sync; echo 3 > /proc/sys/vm/drop_caches` when root (cold page cache for both; else
# both read a warm cache). Prints CSV: round,engine,seconds,bytes,mib_per_s.
set -euo pipefail
. "$(dirname "$0")/common.sh"
ops_init bkbench "$1"
load=${2:-5}
runs=${RUNS:-5}
"$kv" --durability fast -d "$work/s" stress --threads 1 --seconds "$load" \
  --ack-file "$work/acks" --batch 100 --value-size 1000 >&2
"$kv" -d "$work/s" checkpoint
rm -f "$work/s/kvstore-last-recovery"
bytes=$(du -B1 -s "$work/s" | cut -f1)
echo "round,engine,seconds,bytes,mib_per_s"
for r in $(seq 1 "$runs"); do
  order=(backup cp); [ $((RANDOM % 2)) = 0 ] && order=(cp backup)
  for e in "${order[@]}"; do
    rm -rf "$work/d"; drop
    t0=$(now)
    if [ "$e" = backup ]; then
      "$kv" -d "$work/s" backup "$work/d" >/dev/null
    else
      cp -r --sparse=always "$work/s" "$work/d"
      sync -f "$work/d/data"; sync
    fi
    t1=$(now)
    awk -v r="$r" -v e="$e" -v a="$t0" -v b="$t1" -v n="$bytes" \
      'BEGIN { s = b - a; printf "%d,%s,%.3f,%d,%.1f\n", r, e, s, n, n / s / 1048576 }'
  done
done
