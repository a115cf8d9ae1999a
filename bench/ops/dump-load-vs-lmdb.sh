#!/usr/bin/env bash
# dump-load-vs-lmdb.sh KVSTORE — issue 17's dump/load benchmark: `kvstore dump` / `kvstore
# load` against `mdb_dump` / `mdb_load` (Debian's lmdb-utils) of the same keys, in the same
# run. KEYS (default 1 M) random 16-byte keys with 100-byte values are put into a pagebox
# store (kvstore batch, fast, then a checkpoint) and loaded into an LMDB environment
# (mdb_load from a generated dump) once; then RUNS rounds (default 5), each timing the four
# operations in random order after dropping the page cache (when root):
#   kv-dump   kvstore -d S dump > F          (one read-only snapshot, the dump format)
#   mdb-dump  mdb_dump -n L.mdb > F          (LMDB's hex "bytevalue" format)
#   kv-load   kvstore -d NEW load F          (one transaction, durable at its commit)
#   mdb-load  mdb_load -n -f F NEW.mdb       (one write transaction, synced at its commit)
# Prints CSV: round,engine,op,seconds,keys,file_bytes,keys_per_s.
set -euo pipefail
. "$(dirname "$0")/common.sh"
ops_init dumpbench "$1"
command -v mdb_dump >/dev/null && command -v mdb_load >/dev/null \
  || { echo "dump-load-vs-lmdb: needs mdb_dump and mdb_load (apt install lmdb-utils)" >&2; exit 2; }
runs=${RUNS:-5}
n=${KEYS:-1000000}
# the same pairs for both: key k<8 hex><8 hex> (16 bytes), value 100 digits
awk -v n="$n" 'BEGIN { srand(29); v = sprintf("%0100d", 0);
  for (i = 0; i < n; i++) printf "k%08x%08x %s\n", int(rand() * 4294967296), i, v }' > "$work/pairs"
awk '{ print "put " $1 " " $2 }' "$work/pairs" > "$work/puts"
{
  printf 'VERSION=3\nformat=bytevalue\ntype=btree\nmapsize=8589934592\nHEADER=END\n'
  # mdb_load's bytevalue lines: a space, then the bytes in hex
  LC_ALL=C awk 'BEGIN { for (i = 0; i < 256; i++) hex[sprintf("%c", i)] = sprintf("%02x", i) }
    function h(s,   o, i) { o = ""; for (i = 1; i <= length(s); i++) o = o hex[substr(s, i, 1)]; return o }
    { print " " h($1); print " " h($2) }' "$work/pairs"
  printf 'DATA=END\n'
} > "$work/lmdb-in"
bad=$( (cat "$work/puts"; echo sync) | "$kv" --durability fast -d "$work/s" batch | grep -vc '^OK$' || true)
[ "$bad" = 0 ] || { echo "dump-load-vs-lmdb: the pagebox load failed" >&2; exit 1; }
"$kv" -d "$work/s" checkpoint
mdb_load -n -f "$work/lmdb-in" "$work/l.mdb"
keys=$(mdb_stat -n "$work/l.mdb" | sed -n 's/^ *Entries: //p')
[ "$keys" = "$("$kv" -d "$work/s" dump | grep -c '^k')" ] \
  || { echo "dump-load-vs-lmdb: the two stores hold different key counts" >&2; exit 1; }
# the dumps the loads read, made once
"$kv" -d "$work/s" dump > "$work/d.kv"
mdb_dump -n "$work/l.mdb" > "$work/d.mdb"
echo "round,engine,op,seconds,keys,file_bytes,keys_per_s"
for r in $(seq 1 "$runs"); do
  ops=(kv-dump mdb-dump kv-load mdb-load)
  for i in 3 2 1; do j=$((RANDOM % (i + 1))); t=${ops[$i]}; ops[$i]=${ops[$j]}; ops[$j]=$t; done
  for op in "${ops[@]}"; do
    rm -rf "$work/t" "$work/t.mdb" "$work/out"
    drop
    t0=$(now)
    case $op in
      kv-dump)  "$kv" -d "$work/s" dump > "$work/out"; f=$work/out ;;
      mdb-dump) mdb_dump -n "$work/l.mdb" > "$work/out"; f=$work/out ;;
      kv-load)  "$kv" -d "$work/t" load "$work/d.kv" >/dev/null; f=$work/d.kv ;;
      mdb-load) mdb_load -n -f "$work/d.mdb" "$work/t.mdb"; f=$work/d.mdb ;;
    esac
    t1=$(now)
    engine=pagebox; case $op in mdb-*) engine=lmdb ;; esac
    awk -v r="$r" -v e="$engine" -v o="${op#*-}" -v t0="$t0" -v t1="$t1" -v k="$keys" \
      -v b="$(stat -c %s "$f")" 'BEGIN { printf "%d,%s,%s,%.3f,%d,%d,%.0f\n", r, e, o, t1 - t0, k, b, k / (t1 - t0) }'
  done
done
