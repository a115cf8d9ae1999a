#!/usr/bin/env bash
# backup-under-load.sh KVSTORE — issue 17's second backup benchmark: the writers' throughput
# while backups run (both share one disk here) against without, and the rate limit's trade.
#
# Builds a store with `kvstore --durability fast stress` (1 thread, transactions of 100 keys,
# 1000-byte values, LOAD seconds, default 3: about 250 MB here) and a checkpoint. Then RUNS rounds (default 5);
# each round runs every mode, in random order, on a fresh copy of that store:
#   none      `kvstore stress --threads 4 --seconds S --batch 1` (durable puts, 100-byte values)
#   backup    the same with `--backup-every 0.01 --backup-dir D`: backups back to back for the
#             whole run, no limit
#   rate-R    the same with `--backup-rate R` (R in RATES, default "100M 25M")
# after `sync; echo 3 > /proc/sys/vm/drop_caches` when root. S: SECONDS_PER_RUN (default 10).
# Prints CSV: round,mode,rate_bytes,commits_per_s,backups,backup_mib_per_s
# (commits_per_s: acknowledged puts over S; backup_mib_per_s: the bytes of the finished
# backups over S — the last backup may end after the writers).
set -euo pipefail
. "$(dirname "$0")/common.sh"
ops_init bkload "$1"
load=${LOAD:-3}
runs=${RUNS:-5}
secs=${SECONDS_PER_RUN:-10}
rates=${RATES:-"100M 25M"}
"$kv" --durability fast -d "$work/base" stress --threads 1 --seconds "$load" \
  --ack-file "$work/base-acks" --batch 100 --value-size 1000 >&2
"$kv" -d "$work/base" checkpoint
echo "round,mode,rate_bytes,commits_per_s,backups,backup_mib_per_s"
modes=(none backup)
for r in $rates; do modes+=("rate-$r"); done
for round in $(seq 1 "$runs"); do
  order=("${modes[@]}")
  for ((i = ${#order[@]} - 1; i > 0; i--)); do
    j=$((RANDOM % (i + 1))); t=${order[$i]}; order[$i]=${order[$j]}; order[$j]=$t
  done
  for m in "${order[@]}"; do
    rm -rf "$work/s" "$work/b" "$work/acks"
    cp -r --sparse=always "$work/base" "$work/s"
    drop
    extra=(); rate=0
    case $m in
      backup) extra=(--backup-every 0.01 --backup-dir "$work/b") ;;
      rate-*) extra=(--backup-every 0.01 --backup-dir "$work/b" --backup-rate "${m#rate-}")
              rate=${m#rate-} ;;
    esac
    out=$("$kv" -d "$work/s" stress --threads 4 --seconds "$secs" --ack-file "$work/acks" \
          --batch 1 --value-size 100 "${extra[@]}")
    echo "$out" >&2
    # the writers run S seconds; the run may last longer (stress finishes the backup in
    # progress), so the rate is the acknowledged keys over S
    keys=$(echo "$out" | sed -n 's/^stress: [0-9]* threads, [0-9.]* s: \([0-9]*\) keys acknowledged.*/\1/p')
    cps=$(awk -v k="${keys:-0}" -v s="$secs" 'BEGIN { printf "%.0f", k / s }')
    nb=$(echo "$out" | sed -n 's/^stress: \([0-9]*\) backups into.*/\1/p')
    bmib=0
    if [ -d "$work/b" ]; then
      # finished backups only (an unfinished one keeps its marker)
      bytes=0
      for d in "$work"/b/backup-*; do
        [ -e "$d/BACKUP-INCOMPLETE" ] && continue
        bytes=$((bytes + $(du -B1 -s "$d" | cut -f1)))
      done
      bmib=$(awk -v b="$bytes" -v s="$secs" 'BEGIN { printf "%.1f", b / 1048576 / s }')
    fi
    case $rate in *M) rb=$(( ${rate%M} << 20 )) ;; *) rb=$rate ;; esac
    echo "$round,$m,$rb,${cps:-0},${nb:-0},$bmib"
  done
done
