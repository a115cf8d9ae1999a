#!/usr/bin/env bash
# ops_test.sh KVSTORE — the store-wide commands: dump, load, inspect, create-tree,
# drop-tree, and the batch command `dump FILE`. Every command with its error cases and exit
# codes; a dump -> load -> dump round trip of binary keys (0x00, '%', ' ', '\n', 0xff, the
# empty key) and 100 KB values over several trees, byte-identical; load refusing a non-empty
# tree (exit 4) unless --replace; --into; damaged dumps of every kind refused with exit 2 and
# the right line number, with the target store untouched (trees and contents the same, no
# tree left behind); a key over the target store's limit; inspect's figures (levels,
# histograms, overflow pages and bytes, sizes) in text and JSON.
set -uo pipefail
kv=$1
work=$(mktemp -d "${TMPDIR:-/tmp}/kvops.XXXXXX")
trap 'rm -rf "$work"' EXIT
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
has() { # has DESCRIPTION HAYSTACK NEEDLE
  if [[ $2 == *"$3"* ]]; then ok; else bad "$1: [$2] lacks [$3]"; fi
}
# the %HH form of a file's bytes (every byte encoded: kvstore decodes any %HH)
hexarg() { od -An -v -tx1 "$1" | tr -d ' \n' | sed 's/../%&/g'; }

S="-d $work/s"
# ---- usage errors (exit 2), nothing created ---------------------------------------------------
expect 2 "dump option" -- $kv $S dump --all
expect 2 "dump empty name" -- $kv $S dump ''
expect 2 "dump name twice" -- $kv $S dump a a
expect 2 "load bad option" -- $kv $S load --merge
expect 2 "load --into without name" -- $kv $S load --into
expect 2 "load two files" -- $kv $S load f1 f2
expect 2 "load missing file" -- $kv $S load "$work/nope"
expect 2 "create-tree arity" -- $kv $S create-tree
expect 2 "create-tree empty name" -- $kv $S create-tree ''
expect 2 "create-tree long name" -- $kv $S create-tree "$(head -c 256 /dev/zero | tr '\0' n)"
expect 2 "drop-tree arity" -- $kv $S drop-tree a b
expect 2 "inspect bad option" -- $kv $S inspect --deep
expect 2 "inspect --tree without name" -- $kv $S inspect --tree
[ -e "$work/s" ] && bad "a usage error created the store" || ok
expect 3 "dump, no store" -- $kv $S dump; has "no-store message" "$err" "no store"
expect 3 "inspect, no store" -- $kv $S inspect
expect 1 "drop-tree, no store" -- $kv $S drop-tree a
[ -e "$work/s" ] && bad "a read created the store" || ok

# ---- create-tree / drop-tree ------------------------------------------------------------------
expect 0 "create-tree" -- $kv $S create-tree alpha
expect 4 "create-tree again" -- $kv $S create-tree alpha; has "exists message" "$err" "alpha exists"
expect 0 "create-tree 255-byte name" -- $kv $S create-tree "$(head -c 255 /dev/zero | tr '\0' n)"
expect 0 trees -- $kv $S trees; same "trees after create" "$(echo "$out" | cut -c1-5 | tr '\n' ' ')" "alpha nnnnn "
expect 0 "drop-tree" -- $kv $S drop-tree "$(head -c 255 /dev/zero | tr '\0' n)"
expect 1 "drop-tree again" -- $kv $S drop-tree "$(head -c 255 /dev/zero | tr '\0' n)"; has "drop message" "$err" "no tree"
expect 1 "drop-tree missing" -- $kv $S drop-tree nope
expect 0 "put into alpha" -- $kv --tree alpha $S put k v
expect 0 "drop non-empty tree" -- $kv $S drop-tree alpha
expect 0 "trees after drop" -- $kv $S trees; same "no trees left" "$out" ""
expect 1 "dropped tree's key gone" -- $kv --tree alpha $S get k

# ---- a store with binary keys, big values, several trees --------------------------------------
head -c 100000 /dev/urandom > "$work/big1"
head -c 100000 /dev/urandom > "$work/big2"
head -c 3000 /dev/urandom > "$work/mid"
B1=$(hexarg "$work/big1"); B2=$(hexarg "$work/big2"); MID=$(hexarg "$work/mid")
A="-d $work/a"
{
  echo "put %00 zero"
  echo "put %25 percent"
  echo "put %20 space"
  echo "put %0A newline"
  echo "put %FF ff"
  echo "put %00%25%20%0A%FF all%00%25%20%0A%FFbytes"
  echo "put  empty-key"
  echo "put empty-value "
  echo "put big1 $B1"
  echo "put mid $MID"
} | $kv --tree bin $A batch > "$work/o1"
same "binary puts" "$(grep -c '^OK$' "$work/o1")" 10
{
  echo "put big2 $B2"
  echo "put big1 $B1"
  for i in $(seq -w 0 499); do echo "put k$i v$i"; done
} | $kv --durability fast --tree big $A batch > /dev/null || bad "big tree batch"
expect 0 "create empty tree" -- $kv $A create-tree empty
expect 0 "create tree with a space" -- $kv $A create-tree "two words"
expect 0 "put into two words" -- $kv --tree "two words" $A put x y

# ---- dump ------------------------------------------------------------------------------------
expect 0 "dump all" -- $kv $A dump
$kv $A dump > "$work/all.dump" || bad "dump to file"
mapfile -t L < "$work/all.dump"
same "header" "${L[0]}" "pagebox-dump 1"
same "first section" "${L[1]}" "tree big"
[[ ${L[-1]} =~ ^end\ 513\ 4\ [0-9a-f]{8}$ ]] && ok || bad "trailer: ${L[-1]}"
grep -q '^tree two%20words$' "$work/all.dump" && ok || bad "tree name encoded"
grep -q '^tree empty$' "$work/all.dump" && grep -q '^end-tree 0 00000000$' "$work/all.dump" && ok || bad "empty tree section"
grep -qx '%00%25%20%0A%FF all%00%25%20%0A%FFbytes' "$work/all.dump" && ok || bad "binary pair line"
grep -qx ' empty-key' "$work/all.dump" && ok || bad "empty key line"
grep -qx 'empty-value ' "$work/all.dump" && ok || bad "empty value line"
expect 0 "dump named trees" -- $kv $A dump bin empty
same "named dump: sections in the order given" "$(echo "$out" | grep '^tree ' | tr '\n' ' ')" "tree bin tree empty "
expect 1 "dump missing tree" -- $kv $A dump bin nope; same "nothing written" "$out" ""
has "missing tree message" "$err" "no tree nope"
expect 0 "dump ignores --tree" -- $kv --tree bin $A dump; same "--tree ignored" "$(echo "$out" | grep -c '^tree ')" 4

# ---- batch: dump FILE ------------------------------------------------------------------------
printf 'dump %s\nbegin\ndump %s\nabort\ndump\ndump %s\nget nothing\n' "$work/b.dump" "$work/c.dump" "$work/nodir/x" \
  | $kv $A batch > "$work/bo" 2> "$work/be"; rc=$?
same "batch dump exit" $rc 0
mapfile -t R < "$work/bo"
same "dump OK" "${R[0]}" OK
same "begin" "${R[1]}" OK
[[ ${R[2]} == "ERR dump: not inside a transaction"* ]] && ok || bad "dump inside begin: ${R[2]}"
same "abort" "${R[3]}" OK
same "dump usage" "${R[4]}" "ERR usage: dump FILE"
[[ ${R[5]} == "ERR dump:"* ]] && ok || bad "dump to a missing dir: ${R[5]}"
same "session goes on" "${R[6]}" NOTFOUND
[ -e "$work/c.dump" ] && bad "dump inside a transaction wrote a file" || ok
# the batch session opened the default tree (it creates it): compare without it
$kv $A dump big bin empty "two words" > "$work/all2.dump"
cmp -s "$work/all.dump" "$work/all2.dump" && ok || bad "dump before and after the session differ"
$kv -d "$work/b" load < "$work/b.dump" > /dev/null || bad "load of the batch dump"
$kv -d "$work/b" dump big bin empty "two words" > "$work/b2.dump"
cmp -s "$work/all.dump" "$work/b2.dump" && ok || bad "batch dump differs from the CLI dump"

# ---- round trip ---------------------------------------------------------------------------
C="-d $work/c"
expect 0 "load" -- $kv $C load < "$work/all.dump"; has "load summary" "$out" "load: 513 pairs into 4 trees"
$kv $C dump big bin empty "two words" > "$work/rt.dump"
cmp -s "$work/all.dump" "$work/rt.dump" && ok || bad "round trip: dumps differ"
expect 0 "trees after load" -- $kv $C trees; same "trees loaded" "$(echo $out)" "big bin empty two%20words"
expect 0 "get binary key" -- $kv --tree bin $C get '%00%25%20%0A%FF'; same "binary value" "$out" 'all%00%25%20%0A%FFbytes'
expect 0 "get empty key" -- $kv --tree bin $C get ''; same "empty key value" "$out" "empty-key"
expect 0 "get newline key" -- $kv --tree bin $C get '%0A'; same "newline key value" "$out" "newline"
$kv --tree big $C get big2 > "$work/got2"; same "100 KB value" "$(cat "$work/got2")" "$($kv --tree big $A get big2)"
[ "$(wc -c < "$work/got2")" -ge 100001 ] && ok || bad "100 KB value length"
expect 0 "verify after load" -- $kv $C verify
expect 0 "load from FILE" -- $kv -d "$work/c2" load "$work/all.dump"

# ---- non-empty trees: refused, --replace ------------------------------------------------------
$kv $C dump > "$work/c.before"
expect 4 "load into non-empty" -- $kv $C load < "$work/all.dump"
has "refusal names the tree and line" "$err" "line 2: tree big is not empty"
$kv $C dump > "$work/c.after"; cmp -s "$work/c.before" "$work/c.after" && ok || bad "refused load changed the store"
$kv --tree big $C put extra-key x
$kv --tree bin $C del '%00'
expect 0 "load --replace" -- $kv $C load --replace < "$work/all.dump"; has "replace summary" "$out" "keys replaced"
$kv $C dump big bin empty "two words" > "$work/rp.dump"
cmp -s "$work/all.dump" "$work/rp.dump" && ok || bad "--replace did not give exactly the dump's contents"
expect 1 "extra key gone" -- $kv --tree big $C get extra-key

# ---- --into -----------------------------------------------------------------------------------
$kv $A dump bin > "$work/bin.dump"
expect 0 "load --into" -- $kv $C load --into copy < "$work/bin.dump"
same "--into contents" "$($kv --tree copy $C scan)" "$($kv --tree bin $A scan)"
expect 2 "--into a two-tree dump" -- $kv $C load --into copy2 < "$work/all.dump"
has "--into message" "$err" "one tree"
expect 1 "nothing of --into left" -- $kv $C drop-tree copy2
expect 4 "--into a non-empty tree" -- $kv $C load --into copy < "$work/bin.dump"
expect 0 "--into --replace" -- $kv $C load --into copy --replace < "$work/bin.dump"

# ---- damaged dumps: exit 2, the line, nothing loaded, the store untouched ---------------------
T="-d $work/t"
$kv --tree keep $T put k v >/dev/null
$kv $T dump > "$work/t.before"
n=$(wc -l < "$work/all.dump")
kline=$(grep -n '^k100 ' "$work/all.dump" | cut -d: -f1)      # a pair in the first tree
eline=$(grep -n '^end-tree ' "$work/all.dump" | head -1 | cut -d: -f1) # its end
bline=$(grep -n '^tree bin$' "$work/all.dump" | cut -d: -f1)  # the second tree starts
damage() { # damage NAME WANT-LINE MESSAGE-PART: load $work/dmg into T
  expect 2 "damaged ($1)" -- $kv $T load < "$work/dmg"
  [ -z "$2" ] || has "damaged ($1): line" "$err" "line $2:"
  has "damaged ($1): message" "$err" "$3"
  has "damaged ($1): nothing loaded" "$err" "nothing loaded"
  $kv $T dump > "$work/t.after"
  cmp -s "$work/t.before" "$work/t.after" && ok || bad "damaged ($1): the store changed"
}
sed "${kline}s/v100/v101/" "$work/all.dump" > "$work/dmg"; damage "value changed" $eline "checksum mismatch"
sed "${kline}d" "$work/all.dump" > "$work/dmg"; damage "pair deleted" $((eline - 1)) "section holds"
head -n $((n - 1)) "$work/all.dump" > "$work/dmg"; damage "no trailer" $n "truncated"
head -c -1 "$work/all.dump" > "$work/dmg"; damage "no final newline" $n "no newline"
head -c $(( $(wc -c < "$work/all.dump") / 2 )) "$work/all.dump" > "$work/dmg"; damage "cut in half" "" "nothing loaded"
sed "1s/1/2/" "$work/all.dump" > "$work/dmg"; damage "version 2" 1 "unsupported dump version"
sed "1s/pagebox/pagebux/" "$work/all.dump" > "$work/dmg"; damage "not a dump" 1 "not a pagebox dump"
sed "${kline}s/v100/v%0/" "$work/all.dump" > "$work/dmg"; damage "bad escape" $kline "bad %HH"
sed "${kline}s/v100/v 100/" "$work/all.dump" > "$work/dmg"; damage "two spaces" $kline "expected 'KEY VALUE'"
sed "${kline}s/v100/v$(printf '\t')100/" "$work/all.dump" > "$work/dmg"; damage "raw tab" $kline "must be written %09"
sed "${kline}s/^k100/k099/" "$work/all.dump" > "$work/dmg"; damage "keys out of order" $kline "not above the previous key"
{ cat "$work/all.dump"; echo "tree more"; } > "$work/dmg"; damage "text after the trailer" $((n + 1)) "after the trailer"
sed "$((bline))s/bin/big/" "$work/all.dump" > "$work/dmg"; damage "a tree twice" $bline "appears twice"
sed "${n}s/ 4 / 5 /" "$work/all.dump" > "$work/dmg"; damage "trailer count" $n "trailer says"
printf '' > "$work/dmg"; damage "empty input" 1 "empty input"
sed "${bline}s/.*/tree %00x/" "$work/all.dump" > "$work/dmg"; damage "NUL in a tree name" $bline "bad tree name"
expect 0 "trees after damaged loads" -- $kv $T trees; same "no tree left behind" "$out" "keep"

# ---- a key over the target store's limit -------------------------------------------------------
long=$(head -c 600 /dev/zero | tr '\0' L)
$kv --page-size 16K --tree t -d "$work/p16" put "$long" v || bad "600-byte key at 16K"
$kv -d "$work/p16" dump > "$work/long.dump"
expect 2 "load a 600-byte key into 4K pages" -- $kv $T load < "$work/long.dump"
has "limit message" "$err" "line 3: key or value over this store's limits"
$kv $T dump > "$work/t.after"; cmp -s "$work/t.before" "$work/t.after" && ok || bad "over-limit load changed the store"

# ---- inspect ---------------------------------------------------------------------------------
expect 0 "inspect" -- $kv $A inspect
for f in depth pages_level_0 leaves inner fill leaf_fill_histogram inner_fill_histogram overflow_values \
         overflow_pages overflow_bytes keys key_bytes_min/max/avg value_bytes_min/max/avg page_size pages \
         free_pages data_file_bytes log_files log_bytes log_bytes_since_ckpt; do
  echo "$out" | grep -q "^$f " && ok || bad "inspect lacks $f"
done
expect 0 "inspect big" -- $kv $A inspect --tree big
field() { echo "$out" | awk -v f="$1" '$1 == f { print $2; exit }'; }
same "keys of big" "$(field keys)" 502
same "overflow values of big" "$(field overflow_values)" 2
same "overflow bytes of big" "$(field overflow_bytes)" 200000
per=$((4096 - 32 - 12)); same "overflow pages of big" "$(field overflow_pages)" $(( 2 * ((100000 + per - 1) / per) ))
same "value max of big" "$(echo "$out" | awk '$1 == "value_bytes_min/max/avg" { print $4 }')" 100000
hist=$(echo "$out" | awk '$1 == "leaf_fill_histogram" { s = 0; for (i = 2; i <= NF; i++) s += $i; print NF - 1, s }')
same "leaf histogram: 10 buckets summing to the leaves" "$hist" "10 $(field leaves)"
depth=$(field depth); lv=0; sum=0
for l in $(seq 0 $((depth - 1))); do sum=$((sum + $(field pages_level_$l))); done
same "pages per level add up" $sum $(( $(field leaves) + $(field inner) ))
expect 0 "inspect empty tree" -- $kv $A inspect --tree empty; same "empty: depth" "$(field depth)" 1; same "empty: keys" "$(field keys)" 0
expect 1 "inspect missing tree" -- $kv $A inspect --tree nope
expect 0 "inspect --json" -- $kv $A inspect --json
if command -v python3 > /dev/null; then
  echo "$out" | python3 -c '
import json, sys
d = json.load(sys.stdin)
t = {x["name"]: x for x in d["trees"]}
assert set(t) == {"big", "bin", "empty", "two%20words", "default"}, t.keys()
b = t["big"]
assert b["keys"]["count"] == 502 and b["overflow"]["bytes"] == 200000, b
assert len(b["leaf_fill_histogram"]) == 10 and sum(b["pages_per_level"]) == b["leaves"] + b["inner"]
assert d["store"]["page_size"] == 4096 and d["store"]["data_file_bytes"] > 0
' && ok || bad "inspect --json content"
fi

echo "kvstore_ops: $pass checks passed, $fail failed"
[ $fail -eq 0 ]
