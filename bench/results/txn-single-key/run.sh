#!/usr/bin/env bash
# Single-key operations before and after the transactions commit: pbox-bench (pagebox only)
# of the parent commit (6862a05) and of this one, invoked alternately, 5 pairs, the first of
# each pair alternating. Usage: run.sh BEFORE_BIN AFTER_BIN OUTDIR
set -euo pipefail
before=$1 after=$2 out=$3
mkdir -p "$out"
args=(--engines pagebox --workloads lookup,scan100,ycsb-a,commit --threads 1,2
      --commit-threads 1 --keys 1000000 --runs 1 --seconds 2 --dir /tmp)
for i in 0 1 2 3 4; do
  if [ $((i % 2)) -eq 0 ]; then order="before after"; else order="after before"; fi
  for which in $order; do
    bin=$before; [ "$which" = after ] && bin=$after
    echo "=== pair $i: $which ($bin)"
    "$bin" "${args[@]}" --seed $((42 + i)) --csv "$out/$which.csv" > "$out/$which-$i.md"
  done
done
