#!/usr/bin/env bash
# Fold what a long fuzzing run found into the committed corpus: only inputs that reach code
# (libFuzzer features) the corpus does not reach yet are added (named by their SHA-1), so
# every build's corpus replay covers them from then on.
#
#   fuzz/merge-corpus.sh TARGET WORKDIR [FUZZ_BUILD]
#   e.g. build/fuzz/fuzz/fuzz_store -max_total_time=3600 build/fuzz/work/store fuzz/corpus/store
#        fuzz/merge-corpus.sh store build/fuzz/work/store
#
# TARGET: node, wal, store or ops; FUZZ_BUILD: the fuzz build tree (default build/fuzz).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
t=${1:?target (node, wal, store, ops)} work=${2:?work directory of a fuzzing run}
b=${3:-$root/build/fuzz}
bin=$b/fuzz/fuzz_$t
[ -x "$bin" ] || { echo "merge-corpus: no $bin (run PBOX_BUILDS=fuzz scripts/test.sh first)" >&2; exit 2; }
before=$(ls "$root/fuzz/corpus/$t" | wc -l)
"$bin" -set_cover_merge=1 -rss_limit_mb=2048 "$root/fuzz/corpus/$t" "$work" 2>&1 | grep -E "^MERGE-OUTER: [0-9]+ new files" || true
echo "merge-corpus: fuzz/corpus/$t: $before -> $(ls "$root/fuzz/corpus/$t" | wc -l) inputs ($(du -sh "$root/fuzz/corpus/$t" | cut -f1))"
