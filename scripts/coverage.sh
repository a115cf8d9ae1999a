#!/usr/bin/env bash
# Coverage report and gate over the libraries (frame-kernel, swip-kernel, hybrid-latch, wal,
# storage, btree: their src/ and the inline code of their include/; not tests, bench or
# examples), from a build tree configured with --coverage whose tests have run:
#
#   scripts/coverage.sh [build/coverage]
#
# Writes <build>/coverage.txt (per file) and <build>/coverage.html, prints the totals, and
# fails when line or branch coverage is below scripts/coverage-gate.txt. The gate only moves
# up: raise it to what you measure (rounded down) when coverage improves.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
b=${1:-$root/build/coverage}
gate="$root/scripts/coverage-gate.txt"
filter="$root/(frame-kernel|swip-kernel|hybrid-latch|wal|storage|btree)/(src|include)/"
common=(-r "$root" --object-directory "$b" --filter "$filter" --exclude-unreachable-branches
        --gcov-ignore-parse-errors
        --exclude-throw-branches)
# search only this build tree for .gcda files (by default gcovr searches the whole root,
# which takes in every other build directory under it)
gcovr "${common[@]}" --txt "$b/coverage.txt" --html-details "$b/coverage.html" \
      --json-summary "$b/coverage-summary.json" "$b" >/dev/null 2>"$b/gcovr.log"
read -r line branch < <(python3 - "$b/coverage-summary.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
print(s["line_percent"], s["branch_percent"])
PY
)
want_line=$(awk '$1 == "line" { print $2 }' "$gate")
want_branch=$(awk '$1 == "branch" { print $2 }' "$gate")
echo "coverage: lines ${line}% (gate ${want_line}%), branches ${branch}% (gate ${want_branch}%); per file: $b/coverage.txt"
ok=$(python3 -c "print(int($line >= $want_line and $branch >= $want_branch))")
if [ "$ok" != 1 ]; then
  echo "coverage: below the gate in $gate" >&2
  exit 1
fi
