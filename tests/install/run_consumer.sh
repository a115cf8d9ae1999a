#!/usr/bin/env bash
# Install the build tree into a scratch prefix, then build and run the consumer program
# twice: through find_package(pagebox) and through pkg-config. Args: SOURCE_DIR BUILD_DIR.
set -euo pipefail
src=$1
build=$2
tmp=$(mktemp -d "${TMPDIR:-/tmp}/pbox-install-XXXXXX")
trap 'rm -rf "$tmp"' EXIT
cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
test -d "$tmp/prefix/bin" || { echo "no bin/ installed"; exit 1; }
ls "$tmp/prefix/bin"
cmake -S "$src/tests/install/consumer" -B "$tmp/cmake-build" -DCMAKE_PREFIX_PATH="$tmp/prefix" >/dev/null
cmake --build "$tmp/cmake-build" >/dev/null
"$tmp/cmake-build/consumer"
PKG_CONFIG_PATH="$tmp/prefix/lib/pkgconfig" \
  cc -o "$tmp/consumer-pc" "$src/tests/install/consumer/consumer.c" \
     $(PKG_CONFIG_PATH="$tmp/prefix/lib/pkgconfig" pkg-config --cflags --libs pagebox)
"$tmp/consumer-pc"
echo "install test: find_package and pkg-config consumers passed"
