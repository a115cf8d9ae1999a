#!/usr/bin/env bash
# cli_test.sh KVSTORE — the kvstore command line and batch protocol: every command, the %HH
# encoding both ways, exit codes 0/1/2/3 (a locked store, a corrupted store), bad input
# giving ERR lines while the session goes on, transactions (their view: own writes, NOTFOUND
# for del of an absent key; begin ro refusing writes; no size limit).
set -uo pipefail
kv=$1
work=$(mktemp -d "${TMPDIR:-/tmp}/kvcli.XXXXXX")
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$work"' EXIT
cd "$work"
pass=0 fail=0

ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }

# expect CODE DESCRIPTION -- command...: exit code; stdout kept in $out, stderr in $err
expect() {
  local code=$1 what=$2; shift 3
  out=$("$@" 2>"$work/stderr"); local rc=$?
  err=$(cat "$work/stderr")
  if [ "$rc" -eq "$code" ]; then ok; else bad "$what: exit $rc, wanted $code (stderr: $err)"; fi
}
same() { # same DESCRIPTION GOT WANT
  if [ "$2" == "$3" ]; then ok; else bad "$1: got [$2] wanted [$3]"; fi
}

D="-d $work/s"
# ---- usage, help, exit 2 -------------------------------------------------------------------
expect 0 help -- $kv --help;            [[ $out == usage:* ]] && ok || bad "help text"
expect 0 "help command" -- $kv help
expect 2 "no command" -- $kv $D;        [[ -n $err ]] && ok || bad "usage message on stderr"
expect 2 "unknown command" -- $kv $D frobnicate
expect 2 "unknown option" -- $kv --frob $D get k
expect 2 "bad budget" -- $kv --budget 12Q $D get k
expect 2 "bad page size" -- $kv --page-size 3000 $D put k v
expect 2 "bad durability" -- $kv --durability maybe $D put k v
expect 2 "bad wal-sync" -- $kv --wal-sync none $D put k v
expect 2 "put arity" -- $kv $D put k
expect 2 "get arity" -- $kv $D get
expect 2 "bad %HH in key" -- $kv $D put 'k%zz' v
expect 2 "bad %HH in value" -- $kv $D put k 'v%4'
expect 2 "bad %HH in get" -- $kv $D get '%'
expect 2 "bad scan option" -- $kv $D scan --sideways
expect 2 "bad scan limit" -- $kv $D scan --limit x
expect 2 "stress without options" -- $kv $D stress
expect 2 "check-acks without file" -- $kv $D check-acks
expect 2 "check-acks missing file" -- $kv $D check-acks "$work/nope"
[ -e "$work/s" ] && bad "a usage error created the store" || ok

# ---- reads of a store that does not exist: nothing is created --------------------------------
expect 1 "get, no store" -- $kv $D get k
expect 1 "del, no store" -- $kv $D del k
expect 0 "scan, no store" -- $kv $D scan; same "empty scan" "$out" ""
[ -e "$work/s" ] && bad "a read created the store" || ok
expect 3 "verify, no store" -- $kv $D verify; [[ $err == *"no store"* ]] && ok || bad "no-store message: $err"

# ---- put / get / del, %HH both ways ----------------------------------------------------------
expect 0 put -- $kv $D put hello world
[ -d "$work/s" ] && ok || bad "the first write creates the store"
expect 0 get -- $kv $D get hello; same get "$out" world
expect 1 "get missing" -- $kv $D get nope; same "get missing prints nothing" "$out" ""
expect 0 "put binary" -- $kv $D put 'b%00%ff%2Fx' 'sp%20tab%09pct%25nl%0Aend%7e'
expect 0 "get binary" -- $kv $D get 'b%00%FF/x'
same "encoding out (upper-case hex, printables stay)" "$out" 'sp%20tab%09pct%25nl%0Aend~'
expect 0 "put raw specials" -- $kv $D put 'with space' "$(printf 'a\tb%%25c')"
expect 0 "get raw specials" -- $kv $D get 'with%20space'; same "raw specials encoded" "$out" 'a%09b%25c'
expect 0 "put utf-8" -- $kv $D put 'é' 'ü'
expect 0 "get utf-8" -- $kv $D get '%C3%A9'; same "utf-8 bytes encoded" "$out" '%C3%BC'
expect 0 "put empty value" -- $kv $D put empty ''
expect 0 "get empty value" -- $kv $D get empty; same "empty value" "$out" ""
expect 0 overwrite -- $kv $D put hello again
expect 0 "get overwritten" -- $kv $D get hello; same overwrite "$out" again
expect 2 "key too long" -- $kv $D put "$(head -c 600 /dev/zero | tr '\0' k)" v
expect 0 del -- $kv $D del empty
expect 1 "del again" -- $kv $D del empty
expect 1 "get deleted" -- $kv $D get empty

# ---- scan ------------------------------------------------------------------------------------
for k in a1 a2 a3 b1 b2 c1; do $kv $D put $k "v$k" || bad "put $k"; done
expect 0 "scan all" -- $kv $D scan
same "scan all" "$(echo "$out" | cut -f1 | tr '\n' ' ')" 'a1 a2 a3 b%00%FF/x b1 b2 c1 hello with%20space %C3%A9 '
same "scan line format" "$(echo "$out" | head -1)" "$(printf 'a1\tva1')"
expect 0 "scan range" -- $kv $D scan a2 b2;   same "scan [a2,b2)" "$(echo "$out" | cut -f1 | tr '\n' ' ')" 'a2 a3 b%00%FF/x b1 '
expect 0 "scan start" -- $kv $D scan c;       same "scan [c,)" "$(echo "$out" | cut -f1 | tr '\n' ' ')" 'c1 hello with%20space %C3%A9 '
expect 0 "scan prefix" -- $kv $D scan --prefix b; same "prefix b" "$(echo "$out" | cut -f1 | tr '\n' ' ')" 'b%00%FF/x b1 b2 '
expect 0 "scan prefix+range" -- $kv $D scan b1 zz --prefix b; same "prefix b from b1" "$(echo "$out" | cut -f1 | tr '\n' ' ')" 'b1 b2 '
expect 0 "scan reverse limit" -- $kv $D scan --reverse --limit 2; same "reverse 2" "$(echo "$out" | cut -f1 | tr '\n' ' ')" '%C3%A9 with%20space '
expect 0 "scan prefix reverse" -- $kv $D scan --prefix a --reverse; same "prefix a reversed" "$(echo "$out" | cut -f1 | tr '\n' ' ')" 'a3 a2 a1 '
expect 0 "scan limit 0" -- $kv $D scan --limit 0; same "limit 0" "$out" ""

# ---- trees, checkpoint, stats, verify -------------------------------------------------------
expect 0 "put other tree" -- $kv --tree other $D put only-here x
expect 1 "other tree is separate" -- $kv $D get only-here
expect 0 "get other tree" -- $kv --tree other $D get only-here; same "other tree" "$out" x
expect 0 trees -- $kv $D trees; same trees "$(echo $out)" "default other"
expect 0 checkpoint -- $kv $D checkpoint
expect 0 stats -- $kv $D stats
for f in page_size pages budget_bytes resident_pages end_lsn durable_lsn redo_groups redo_time wal_bytes_validated; do
  echo "$out" | grep -q "^$f " && ok || bad "stats lacks $f"
done
expect 0 verify -- $kv $D verify; [[ $out == *"verify: ok (2 trees"* ]] && ok || bad "verify output: $out"
expect 0 "options accepted" -- $kv --budget 1M --durability fast --wal-sync fsync $D put f1 v
expect 0 "dsync" -- $kv --wal-sync dsync $D get f1
expect 0 "page size at creation" -- $kv --page-size 16K -d "$work/p16" put k v
expect 0 "stats 16K" -- $kv -d "$work/p16" stats; echo "$out" | grep -q '^page_size  *16384$' && ok || bad "16K page size"

# ---- batch protocol --------------------------------------------------------------------------
big=$(head -c 100 /dev/zero | tr '\0' v)
{
  echo "put k1 v1"                 # OK
  echo "put k%202 a%09b"           # OK
  echo "get k%202"                 # VALUE a%09b
  echo "get none"                  # NOTFOUND
  echo "del k1"                    # OK
  echo "del k1"                    # NOTFOUND
  echo "scan - - 10"               # KV ... END
  echo "scan k - 1"                # KV k%202 a%09b, END 1
  echo "scan k1 k3 0"              # END 0
  echo "begin"                     # OK
  echo "put t1 x"                  # OK
  echo "put t2 y"                  # OK
  echo "del k%202"                 # OK
  echo "get t1"                    # VALUE x: the transaction sees its own write
  echo "commit"                    # OK
  echo "get t1"                    # VALUE x
  echo "get k%202"                 # NOTFOUND
  echo "begin"; echo "put gone 1"; echo "abort"   # OK OK OK
  echo "get gone"                  # NOTFOUND
  echo "sync"; echo "checkpoint"   # OK OK
  echo "nonsense"                  # ERR
  echo "put onlykey"               # ERR
  echo "put a%zz b"                # ERR
  echo "commit"                    # ERR (no transaction)
  echo "abort"                     # ERR
  echo "begin"; echo "begin"       # OK ERR
  echo "abort"                     # OK
  echo ""                          # ERR
  echo "scan a b notanumber"       # ERR
  echo "put $(head -c 600 /dev/zero | tr '\0' k) v"   # ERR (key too long)
  echo "put e "                    # OK (empty value)
  echo "get e"                     # "VALUE "
  echo "begin"                     # OK
  for i in $(seq -w 0 199); do echo "put seq$i $big"; done   # 200 x OK
  echo "commit"                    # OK: no batch limit any more
  echo "get seq000"                # VALUE (big)
  echo "put after ok"              # OK: the session went on
} > "$work/in"
$kv $D batch < "$work/in" > "$work/bout" 2>"$work/berr"; rc=$?
same "batch exit code" "$rc" 0
mapfile -t R < "$work/bout"
want=(OK OK "VALUE a%09b" NOTFOUND OK NOTFOUND)
for i in "${!want[@]}"; do same "batch response $i" "${R[$i]}" "${want[$i]}"; done
# scan - - 10 : every key of the default tree, then END n
n=0; while [[ ${R[$((6 + n))]} == KV* ]]; do n=$((n + 1)); done
same "scan END count" "${R[$((6 + n))]}" "END $n"
[ $n -ge 10 ] && ok || bad "scan - - 10 returned $n pairs"
i=$((7 + n))
rest=("KV k%202 a%09b" "END 1" "END 0" OK OK OK OK "VALUE x" OK "VALUE x" NOTFOUND OK OK OK NOTFOUND OK OK)
for w in "${rest[@]}"; do same "batch response $i" "${R[$i]}" "$w"; i=$((i + 1)); done
for w in ERR ERR ERR ERR ERR; do [[ ${R[$i]} == ERR\ * ]] && ok || bad "response $i: wanted ERR, got [${R[$i]}]"; i=$((i + 1)); done
same "begin" "${R[$i]}" OK; i=$((i + 1))
[[ ${R[$i]} == "ERR begin"* ]] && ok || bad "nested begin: ${R[$i]}"; i=$((i + 1))
same "abort" "${R[$i]}" OK; i=$((i + 1))
for w in 1 2 3; do [[ ${R[$i]} == ERR\ * ]] && ok || bad "response $i: wanted ERR, got [${R[$i]}]"; i=$((i + 1)); done
same "empty value put" "${R[$i]}" OK; i=$((i + 1))
same "empty value get" "${R[$i]}" "VALUE "; i=$((i + 1))
same "begin 2" "${R[$i]}" OK; i=$((i + 1))
oks=0; for j in $(seq 0 199); do [ "${R[$i]}" == OK ] && oks=$((oks + 1)); i=$((i + 1)); done
same "200 puts held" $oks 200
same "200-key commit" "${R[$i]}" OK; i=$((i + 1))
same "200-key transaction applied" "${R[$i]}" "VALUE $big"; i=$((i + 1))
same "session continues" "${R[$i]}" OK; i=$((i + 1))
same "one response per command" "${#R[@]}" "$i"

# ---- batch protocol: transactions ----------------------------------------------------------
# (conflicts between transactions cannot happen inside one single-threaded session; they are
# tested by the library suite and by `stress --transfers` in txn_test.sh)
T="-d $work/t"
{
  echo "put a 1"; echo "put b 2"   # OK OK
  echo "begin"                     # OK
  echo "get a"                     # VALUE 1: the snapshot
  echo "put c 3"                   # OK
  echo "del a"                     # OK
  echo "del a"                     # NOTFOUND: deleted in this transaction's view
  echo "del zz"                    # NOTFOUND: absent (nothing recorded)
  echo "put b 22"                  # OK
  echo "get b"                     # VALUE 22: its own write
  echo "get a"                     # NOTFOUND: its own delete
  echo "scan - - 10"               # KV b 22, KV c 3, END 2
  echo "scan - - 1"                # KV b 22, END 1
  echo "scan c - 10"               # KV c 3, END 1
  echo "commit"                    # OK
  echo "scan - - 10"               # KV b 22, KV c 3, END 2
  echo "begin"; echo "put d 4"; echo "del b"; echo "get d"; echo "abort"   # OK OK OK VALUE 4 OK
  echo "get d"; echo "get b"       # NOTFOUND, VALUE 22: nothing of the aborted one
  echo "begin"; echo "put e 5"; echo "del e"; echo "get e"; echo "commit"  # OK OK OK NOTFOUND OK
  echo "get e"                     # NOTFOUND
  echo "begin ro"                  # OK
  echo "get b"                     # VALUE 22
  echo "put x 1"                   # ERR read-only transaction
  echo "del b"                     # ERR read-only transaction
  echo "scan - - 10"               # KV b 22, KV c 3, END 2
  echo "commit"                    # OK
  echo "get x"                     # NOTFOUND
  echo "begin ro"; echo "abort"    # OK OK
  echo "begin rw"                  # ERR usage
  echo "begin ro x"                # ERR usage (too many fields)
  echo "put f 6"                   # OK: no transaction is open after those
  echo "begin"; echo "put g 7"     # OK OK
} > "$work/tin"
$kv $T batch < "$work/tin" > "$work/tout" 2>"$work/terr"; rc=$?
same "txn batch exit code" "$rc" 0
same "txn batch stderr" "$(cat "$work/terr")" ""
mapfile -t R < "$work/tout"
want=(OK OK OK "VALUE 1" OK OK NOTFOUND NOTFOUND OK "VALUE 22" NOTFOUND
  "KV b 22" "KV c 3" "END 2" "KV b 22" "END 1" "KV c 3" "END 1" OK
  "KV b 22" "KV c 3" "END 2"
  OK OK OK "VALUE 4" OK NOTFOUND "VALUE 22"
  OK OK OK NOTFOUND OK NOTFOUND
  OK "VALUE 22" "ERR read-only transaction" "ERR read-only transaction" "KV b 22" "KV c 3" "END 2" OK
  NOTFOUND OK OK "ERR usage: begin [ro]" "ERR usage: begin [ro]" OK OK OK)
for i in "${!want[@]}"; do same "txn response $i" "${R[$i]}" "${want[$i]}"; done
same "txn: one response per command" "${#R[@]}" "${#want[@]}"
# end of input with a transaction open: nothing of it applied (g), the rest is there
expect 1 "open transaction at end of input dropped" -- $kv $T get g
expect 0 "a committed transaction persists" -- $kv $T scan; same "after the sessions" "$(echo "$out" | tr '\t\n' ': ')" 'b:22 c:3 f:6 '
# a big transaction, fast durability then sync, and a delete-everything transaction
{
  echo "begin"
  for i in $(seq -w 0 2999); do echo "put big$i $big"; done
  echo "get big1500"; echo "commit"; echo "sync"
  echo "begin"
  for i in $(seq -w 0 2999); do echo "del big$i"; done
  echo "scan big bih 5"; echo "commit"
} | $kv --durability fast $T batch > "$work/tout2"; rc=$?
same "big transaction exit" "$rc" 0
same "big transaction: OKs" "$(grep -c '^OK$' "$work/tout2")" $((1 + 3000 + 1 + 1 + 1 + 3000 + 1))
same "big transaction: read of its own write" "$(grep '^VALUE' "$work/tout2")" "VALUE $big"
same "big transaction: scan after deleting all" "$(grep '^END' "$work/tout2")" "END 0"
expect 0 "after the big transactions" -- $kv $T scan; same "big keys gone" "$(echo "$out" | cut -f1 | tr '\n' ' ')" 'b c f '

# ---- a locked store: exit 3 while batch holds it ---------------------------------------------
mkfifo "$work/fifo"
$kv $D batch < "$work/fifo" > "$work/lockout" 2>&1 &
bpid=$!
exec 7>"$work/fifo"
echo "put locked yes" >&7
for _ in $(seq 100); do grep -q OK "$work/lockout" && break; sleep 0.05; done
expect 3 "locked store" -- $kv $D get hello; [[ $err == *locked* ]] && ok || bad "locked message: $err"
same "one stderr line" "$(echo "$err" | wc -l)" 1
expect 3 "locked store, put" -- $kv $D put x y
expect 3 "locked store, batch" -- $kv $D batch < /dev/null
exec 7>&-
wait $bpid; same "batch holder exit" $? 0
expect 0 "after unlock" -- $kv $D get locked; same "batch's write" "$out" yes

# ---- a corrupted store: exit 3 ---------------------------------------------------------------
$kv -d "$work/c" put k v >/dev/null && for i in $(seq 200); do echo "put key$i value$i"; done | $kv -d "$work/c" batch >/dev/null
# every page the store uses (stats: pages), not the whole file (it grows in 16 MiB chunks)
pages=$($kv -d "$work/c" stats | awk '$1 == "pages" { print $2 }')
for p in $(seq 3 $((pages - 1))); do
  printf 'garbage!' | dd of="$work/c/data" bs=1 seek=$((p * 4096 + 1000)) conv=notrunc status=none
done
expect 3 "corrupted store, get" -- $kv -d "$work/c" get key5
[[ $err == *corrupt* ]] && ok || bad "corruption message: $err"
expect 3 "corrupted store, verify" -- $kv -d "$work/c" verify

echo "kvstore_cli: $pass checks passed, $fail failed"
echo "$((fail == 0 ? 1 : 0)) passed, $((fail == 0 ? 0 : 1)) failed"
[ $fail -eq 0 ]
