#!/usr/bin/env bash
# The main job: build pagebox (release) and run its demonstration. Until the kvstore
# example exists this runs the quick latch and CRC32C benchmarks, which exercise the kernel
# libraries end to end and print what they measured. Installs missing packages first.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/deps.sh"
dir="$root/build/release"
cmake -S "$root" -B "$dir" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$dir" -j "$(nproc)"
echo "=== pbox-bench-latch --quick ==="
"$dir/bench/latch/pbox-bench-latch" --quick
echo "=== pbox-bench-crc --quick ==="
"$dir/bench/crc/pbox-bench-crc" --quick
echo "=== pbox-bench-wal --quick (fdatasync commits, non-durable appends) ==="
"$dir/bench/wal/pbox-bench-wal" --quick --threads 1,4 --backends fdatasync,none
