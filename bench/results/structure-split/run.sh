#!/usr/bin/env bash
# Before/after the structure split (issue 14): the same pbox-bench driver (the old protocol),
# built from 04eab3e (before this session) and from f46fd3a (btree/storage split, corruption
# records, memfs split; the library code of this session's issues 12-14), run alternately in
# one session, 6 rounds, the order within a round alternating. pagebox only.
set -euo pipefail
B=${BEFORE:-/tmp/wt-before/build/bench/engine/pbox-bench}
A=${AFTER:-/tmp/wt-after/build/bench/engine/pbox-bench}
args=(--engines pagebox --workloads lookup,scan100,commit --keys 1000000 --threads 1 --commit-threads 1,4 --runs 1 --seconds 2)
for r in 1 2 3 4 5 6; do
  if [ $((r % 2)) = 1 ]; then order="before after"; else order="after before"; fi
  for w in $order; do
    bin=$B; [ $w = after ] && bin=$A
    echo "=== round $r: $w ($bin)"
    "$bin" "${args[@]}" --csv "$w.csv"
  done
done
