# common.sh — sourced by the bench/ops scripts (not run by itself): the set-up they share.
#   ops_init NAME KVSTORE   kv = KVSTORE as an absolute path; work = a fresh scratch
#                           directory ${TMPDIR:-/var/tmp}/NAME.<random>, removed at exit
#   drop                    write back, then drop the page cache (only when root)
#   now                     seconds since the epoch, with nanoseconds
ops_init() {
  kv=$(cd "$(dirname "$2")" && pwd)/$(basename "$2")
  work=$(mktemp -d "${TMPDIR:-/var/tmp}/$1.XXXXXX")
  trap 'rm -rf "$work"' EXIT
}
drop() { sync; if [ "$(id -u)" = 0 ]; then echo 3 > /proc/sys/vm/drop_caches; fi; }
now() { date +%s.%N; }
