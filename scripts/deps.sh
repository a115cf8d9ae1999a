#!/usr/bin/env bash
# Install what pagebox needs to build and test, from Debian's packages, if it is missing.
# Idempotent: does nothing (and needs no network) when everything is present.
set -euo pipefail

pkgs=(build-essential cmake pkg-config liburing-dev libjemalloc-dev libhwloc-dev check
      clang libclang-rt-14-dev liblmdb-dev
      # pbox-bench's peer engines (bench/engine) and its plots
      librocksdb-dev libleveldb-dev libsqlite3-dev libwiredtiger-dev gnuplot-nox
      # bench/ops/dump-load-vs-lmdb.sh: mdb_dump, mdb_load
      lmdb-utils
      # kvstore's power-cut test (tests/kvstore): mkfs.xfs and xfs_io
      xfsprogs
      # the coverage report and gate (scripts/coverage.sh)
      gcovr
      # examples/raftkv: canonical raft and its libuv I/O
      libraft-dev libuv1-dev)
missing=()
for p in "${pkgs[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "pagebox: installing ${missing[*]}" >&2
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "pagebox: need root or sudo to install ${missing[*]}" >&2; exit 1; }
  sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
