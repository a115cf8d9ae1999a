#!/usr/bin/env bash
# Regenerate the seed corpora (fuzz/corpus/<target>/) with fuzz_gen_seeds from a build tree
# (default build/rel-gen, configured and built here if missing).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
b=${1:-$root/build/rel-gen}
[ -f "$b/CMakeCache.txt" ] || cmake -S "$root" -B "$b" -DPBOX_BUILD_BENCH=OFF >/dev/null
cmake --build "$b" --target fuzz_gen_seeds -j2 >/dev/null
"$b/fuzz/fuzz_gen_seeds" "$root/fuzz/corpus"
