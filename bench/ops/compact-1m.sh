#!/usr/bin/env bash
# compact-1m.sh KVSTORE — issue 17's compaction case: 1 M random keys (100-byte values) put in
# random order, 90 % of them deleted, then `kvstore compact`; against a fresh load of the
# remaining 100 k keys in random order into a new store. RUNS rounds (default 5), each on a
# fresh store (the same keys every round). Prints CSV:
#   round,data_bytes_full,data_bytes_after_delete,compact_seconds,data_bytes_compacted,
#   data_bytes_fresh_load,ratio_compacted_to_fresh
# (data file bytes: allocated blocks, `du -B1`, of DIR/data). Goal: ratio <= 1.3.
set -euo pipefail
. "$(dirname "$0")/common.sh"
ops_init compactbench "$1"
runs=${RUNS:-5}
n=${KEYS:-1000000}
# the keys, random order (fixed seed): k<16 hex>; the value: 100 bytes
awk -v n="$n" 'BEGIN { srand(17); v = sprintf("%0100d", 0);
  for (i = 0; i < n; i++) printf "put k%08x%08x %s\n", int(rand() * 4294967296), i, v }' > "$work/puts"
head -n $((n * 9 / 10)) "$work/puts" | awk '{ print "del " $2 }' > "$work/dels"
tail -n $((n - n * 9 / 10)) "$work/puts" > "$work/keep"
bytes() { du -B1 "$1/data" | cut -f1; }
run_batch() { # DIR FILE: fast puts/dels, then sync; every line must answer OK
  local bad
  bad=$( (cat "$2"; echo sync) | "$kv" --durability fast -d "$1" batch | grep -vc '^OK$' || true)
  [ "$bad" = 0 ] || { echo "compact-1m: $bad answers other than OK" >&2; exit 1; }
}
echo "round,data_bytes_full,data_bytes_after_delete,compact_seconds,data_bytes_compacted,data_bytes_fresh_load,ratio_compacted_to_fresh"
for r in $(seq 1 "$runs"); do
  rm -rf "$work/s" "$work/f"
  run_batch "$work/s" "$work/puts"
  "$kv" -d "$work/s" checkpoint
  full=$(bytes "$work/s")
  run_batch "$work/s" "$work/dels"
  "$kv" -d "$work/s" checkpoint
  deleted=$(bytes "$work/s")
  sync
  t0=$(now)
  "$kv" -d "$work/s" compact >&2
  t1=$(now)
  compacted=$(bytes "$work/s")
  run_batch "$work/f" "$work/keep"
  "$kv" -d "$work/f" checkpoint
  fresh=$(bytes "$work/f")
  awk -v r="$r" -v a="$full" -v b="$deleted" -v t0="$t0" -v t1="$t1" -v c="$compacted" -v f="$fresh" \
    'BEGIN { printf "%d,%d,%d,%.2f,%d,%d,%.3f\n", r, a, b, t1 - t0, c, f, c / f }'
done
