#!/usr/bin/env bash
# load-vs-upserts.sh KVSTORE — issue 17's load goal: `kvstore load` of a sorted dump against
# the same keys put one by one (stress-style single-key upserts, `kvstore batch` put lines
# in the dump's order, fast, then one sync), in the same run. KEYS (default 1 M) random
# 16-byte keys with 100-byte values; the dump is made once. Then RUNS rounds (default 5),
# each timing both in random order on fresh stores after dropping the page cache (when
# root):
#   load     kvstore -d NEW load F               (one transaction, durable at its commit)
#   upserts  kvstore --durability fast -d NEW batch < P   (one upsert per line; `sync` last)
# Both parse text (the dump's %HH lines / batch lines) and end durable.
# Prints CSV: round,op,seconds,keys,keys_per_s.
set -euo pipefail
. "$(dirname "$0")/common.sh"
ops_init loadbench "$1"
runs=${RUNS:-5}
n=${KEYS:-1000000}
awk -v n="$n" 'BEGIN { srand(29); v = sprintf("%0100d", 0);
  for (i = 0; i < n; i++) printf "k%08x%08x %s\n", int(rand() * 4294967296), i, v }' \
  | LC_ALL=C sort > "$work/pairs"
{ awk '{ print "put " $1 " " $2 }' "$work/pairs"; echo sync; } > "$work/puts"
# the dump: through a store, so it is kvstore's own format and order
bad=$("$kv" --durability fast -d "$work/s" batch < "$work/puts" | grep -vc '^OK$' || true)
[ "$bad" = 0 ] || { echo "load-vs-upserts: the first store failed" >&2; exit 1; }
"$kv" -d "$work/s" dump > "$work/d.kv"
keys=$(grep -c '^k' "$work/d.kv")
[ "$keys" = "$n" ] || { echo "load-vs-upserts: the dump holds $keys keys, not $n" >&2; exit 1; }
rm -rf "$work/s"
echo "round,op,seconds,keys,keys_per_s"
for r in $(seq 1 "$runs"); do
  ops=(load upserts)
  [ $((RANDOM % 2)) = 1 ] && ops=(upserts load)
  for op in "${ops[@]}"; do
    rm -rf "$work/t"
    drop
    t0=$(now)
    case $op in
      load)    "$kv" -d "$work/t" load "$work/d.kv" >/dev/null ;;
      upserts) bad=$("$kv" --durability fast -d "$work/t" batch < "$work/puts" | grep -vc '^OK$' || true)
               [ "$bad" = 0 ] || { echo "load-vs-upserts: upserts failed" >&2; exit 1; } ;;
    esac
    t1=$(now)
    got=$("$kv" -d "$work/t" dump | grep -c '^k')
    [ "$got" = "$n" ] || { echo "load-vs-upserts: $op left $got keys" >&2; exit 1; }
    awk -v r="$r" -v o="$op" -v t0="$t0" -v t1="$t1" -v k="$n" \
      'BEGIN { printf "%d,%s,%.3f,%d,%.0f\n", r, o, t1 - t0, k, k / (t1 - t0) }'
  done
done
