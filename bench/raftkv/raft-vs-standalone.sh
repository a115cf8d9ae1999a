#!/usr/bin/env bash
# raft-vs-standalone.sh RAFTKV — durable writes through a three-node raftkv cluster against one
# raftkv node without raft serving the same protocol (`node --standalone`: durable pagebox
# commits, group commit across clients), side by side (issue 18's benchmark).
#
# For each thread count in THREADS (default "1 8"), RUNS rounds (default 5); each round runs
# both engines in random order, each on fresh directories:
#   raftkv-3node       `raftkv cluster start` (3 nodes, 127.0.0.1, election timeout 1000 ms,
#                      snapshots every 4096 entries), then `raftkv stress`
#   raftkv-standalone  `raftkv node --standalone`, then `raftkv -s SOCK stress`
# stress: T client threads, single puts (`--batch 1`) of 100-byte values, each acknowledged
# when durable (3 nodes: committed by a quorum — raft's log synced on two of three — and
# applied on the leader; standalone: the store's log synced); a 2 s settle run first (not
# measured), then SECONDS (default 10) measured. Same store budget (64 MiB per node).
# All three nodes share this machine's cores and disk, and every node syncs both raft's log
# and (at snapshots) its store: the cluster does at least 3x the disk work of the denominator.
# CSV on stdout (bench/README conventions): program,engine,workload,threads,keys,value_size,
# budget_bytes,run,ops,seconds,ops_per_sec,p50_us,p99_us,cpu_us_per_op,peak_rss_bytes.
set -euo pipefail
rk=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
runs=${RUNS:-5}
secs=${SECONDS_PER_RUN:-10}
threads_list=${THREADS:-"1 8"}
work=$(mktemp -d "${TMPDIR:-/var/tmp}/rkvbench.XXXXXX")
port=$((26000 + ($$ % 1000) * 10))
cleanup() {
  "$rk" cluster stop --dir "$work/c" >/dev/null 2>&1 || true
  [ -n "${sapid:-}" ] && kill "$sapid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
echo "program,engine,workload,threads,keys,value_size,budget_bytes,run,ops,seconds,ops_per_sec,p50_us,p99_us,cpu_us_per_op,peak_rss_bytes"
# one stress run: prints "ops seconds ops_per_sec p50_us p99_us" from its summary line
measure() { # TARGET-ARGS... -- THREADS SECONDS
  local out
  out=$("$rk" "$@" --ack-file "$work/acks" --batch 1 --value-size 100 --timeout 60)
  echo "$out" >&2
  echo "$out" | sed -n 's/^stress: [0-9]* threads, \([0-9.]*\) s: [0-9]* keys acknowledged in \([0-9]*\) requests (\([0-9]*\) req\/s).*latency p50 \([0-9.]*\) ms p99 \([0-9.]*\) ms.*/\2 \1 \3 \4 \5/p' \
    | awk '{printf "%s,%s,%s,%.0f,%.0f\n", $1, $2, $3, $4 * 1000, $5 * 1000}'
}
for t in $threads_list; do
  for r in $(seq 1 "$runs"); do
    order=(raftkv-3node raftkv-standalone)
    [ $((RANDOM % 2)) = 0 ] && order=(raftkv-standalone raftkv-3node)
    for e in "${order[@]}"; do
      rm -rf "$work/c" "$work/sa" "$work/acks"
      sync
      if [ "$e" = raftkv-3node ]; then
        "$rk" cluster start --dir "$work/c" --port $port --budget 64M >/dev/null
        tgt=(-c "$work/c")
      else
        "$rk" node --dir "$work/sa" --standalone --budget 64M 2>"$work/sa.log" &
        sapid=$!
        for _ in $(seq 1 100); do [ -S "$work/sa/sock" ] && break; sleep 0.05; done
        tgt=(-s "$work/sa/sock")
      fi
      "$rk" "${tgt[@]}" stress --threads "$t" --seconds 2 --ack-file "$work/settle" \
        --batch 1 --value-size 100 --timeout 60 >/dev/null
      row=$(measure "${tgt[@]}" stress --threads "$t" --seconds "$secs")
      [ -n "$row" ] || { echo "raft-vs-standalone: no summary from stress ($e)" >&2; exit 1; }
      echo "raftkv-stress,$e,put-durable,$t,-,100,$((64 << 20)),$r,$row,-,-"
      if [ "$e" = raftkv-3node ]; then
        "$rk" cluster stop --dir "$work/c" >/dev/null
      else
        kill "$sapid"; wait "$sapid" || true; sapid=""
      fi
    done
  done
done
