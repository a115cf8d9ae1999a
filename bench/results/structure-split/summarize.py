#!/usr/bin/env python3
"""Summarise before.csv / after.csv of run.sh: per cell, each engine's ops/s per round, the
median, and the per-round ratios after/before (rounds pair the two binaries' runs made next
to each other) with their median and min-max."""
import csv, statistics, sys
def load(p):
    rows = {}
    with open(p) as f:
        for r in csv.DictReader(f):
            rows.setdefault((r['workload'], int(r['threads'])), []).append(float(r['ops_per_sec']))
    return rows
b, a = load('before.csv'), load('after.csv')
print('| cell | before ops/s (median, min-max) | after ops/s (median, min-max) | per-round after/before: median (min-max) |')
print('|---|---|---|---|')
for k in sorted(b):
    xb, xa = b[k], a.get(k, [])
    n = min(len(xb), len(xa))
    if not n:
        continue
    rat = [xa[i] / xb[i] for i in range(n)]
    f = lambda v: f'{statistics.median(v):,.0f} ({min(v):,.0f}-{max(v):,.0f})'
    print(f'| {k[0]} x{k[1]} | {f(xb[:n])} | {f(xa[:n])} | {statistics.median(rat):.3f} ({min(rat):.3f}-{max(rat):.3f}), {n} rounds |')
