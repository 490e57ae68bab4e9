#!/usr/bin/env bash
# `sparvar generate` in parity mode on the golden tiny model: the reference's uniforms reproduce the
# reference's bits (summed codes byte-identical to a run with those bits forced), logits are dumped per
# scale, and bad input (impossible size, empty text features, missing file) exits 1 with one stderr line.
set -u
sparvar=$1
golden=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
status=0
check() { echo "FAIL: $*" >&2; status=1; }
base=(--model "$golden/infinity_tiny.pth" --text-features "$golden/text_feats.npy" --text-lens 7,4 --threads 2 --device cpu)
common=("${base[@]}" --size 0.06M --cfg 3 --tau 0.8)

"$sparvar" generate "${common[@]}" --uniforms "$golden/uniforms.npy" --dump-logits "$work/dump" \
  -o "$work/u.npy" >"$work/out" 2>"$work/err" || check "uniforms run exited $?: $(cat "$work/err")"
grep -q "scale  7/7   16x16" "$work/out" || check "no progress line for the last scale"
grep -q "^time: load" "$work/out" || check "no timing summary"
[ -f "$work/dump/scale_06_logits.npy" ] || check "logits not dumped"
"$sparvar" generate "${common[@]}" --bits "$golden/bits_all.npy" -o "$work/b.npy" >/dev/null 2>&1 \
  || check "forced-bits run exited $?"
cmp -s "$work/u.npy" "$work/b.npy" || check "uniforms did not reproduce the reference bits"

expect_error() {  # expect_error NEEDLE args...
  local needle=$1; shift
  "$sparvar" generate "$@" >"$work/out" 2>"$work/err"
  local rc=$?
  [ "$rc" = 1 ] || check "exit $rc (want 1) for $*"
  [ "$(wc -l <"$work/err")" = 1 ] || check "stderr is not one line for $*: $(cat "$work/err")"
  grep -q -- "$needle" "$work/err" || check "stderr lacks '$needle': $(cat "$work/err")"
}
expect_error "1024x1024" "${base[@]}" --size 999x999 -o "$work/x.npy"
expect_error "0.06M" "${base[@]}" --size 3M -o "$work/x.npy"
dict="{'descr': '<f4', 'fortran_order': False, 'shape': (0, 128), }"
{ printf '\x93NUMPY\x01\x00\x76\x00%s' "$dict"; printf '%*s\n' $((118 - ${#dict} - 1)) ''; } >"$work/empty.npy"
expect_error "empty" --model "$golden/infinity_tiny.pth" --text-features "$work/empty.npy" --size 0.06M -o "$work/x.npy"
expect_error "nope.pth" --model "$work/nope.pth" --text-features "$golden/text_feats.npy" -o "$work/x.npy"
exit $status
