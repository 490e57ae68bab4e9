#!/usr/bin/env bash
# `sparvar info`: exit 0 with a table on a good checkpoint; exit 1 and exactly one stderr line on a
# truncated, a random and an empty file.
set -u
sparvar=$1
fixtures=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
status=0
check() { echo "FAIL: $*" >&2; status=1; }

"$sparvar" info "$fixtures/plain.pth" >"$work/out" 2>"$work/err" || check "plain.pth exited $?"
grep -q "w_bf16  *bf16  *\[2,2,2\]" "$work/out" || check "table lacks w_bf16"
grep -q "tensors: 9" "$work/out" || check "totals missing"
"$sparvar" info "$fixtures/sharded_bin" --json --filter a --limit 1 >"$work/json" || check "--json exited $?"
grep -q '"matching": 1' "$work/json" || check "--json/--filter output wrong"

head -c 1500 "$fixtures/plain.pth" >"$work/truncated.pth"
head -c 4096 /dev/urandom >"$work/random.bin"
: >"$work/empty.safetensors"
for f in truncated.pth random.bin empty.safetensors; do
  "$sparvar" info "$work/$f" >"$work/out" 2>"$work/err"
  rc=$?
  [ "$rc" = 1 ] || check "$f: exit $rc, expected 1"
  [ "$(wc -l <"$work/err")" = 1 ] || check "$f: stderr has $(wc -l <"$work/err") lines"
  grep -q "^sparvar: error: .*$f" "$work/err" || check "$f: stderr does not name the file: $(cat "$work/err")"
done
exit $status
