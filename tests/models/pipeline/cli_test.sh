#!/usr/bin/env bash
# `sparvar generate` / `compare` with a prompt on the tiny golden model folder: a run writes the PNG(s) with a
# progress line per scale and a timing summary; user errors (empty prompt, unwritable -o, missing model,
# bad values) exit 1 with one stderr line before any work; --help lists every flag with its default.
set -u
sparvar=$1
model=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
status=0
check() { echo "FAIL: $*" >&2; status=1; }

"$sparvar" generate --model "$model" --prompt "red apple" --batch 2 --threads 2 -o "$work/a.png" >"$work/out" 2>"$work/err" \
  || check "generate exited $?: $(cat "$work/err")"
[ -s "$work/a_0.png" ] && [ -s "$work/a_1.png" ] || check "batch 2 did not write a_0.png and a_1.png"
grep -q "scale  4/4    6x6" "$work/out" || check "no progress line for the last scale: $(cat "$work/out")"
grep -q "^time: load" "$work/out" || check "no timing summary"
"$sparvar" generate --model "$model" --prompt "zzqx unknownword" --skip-last 1 -o "$work/u.png" >"$work/out" 2>&1 \
  || check "unknown words / skip-last run failed: $(cat "$work/out")"
grep -q "scale  3/3" "$work/out" || check "--skip-last 1 did not stop after 3 scales"
"$sparvar" generate --model "$model" --unconditional -o "$work/n.png" >/dev/null 2>&1 || check "--unconditional failed"
"$sparvar" compare --model "$model" --prompt "red apple" --prompt "dog" --modes dense --skip-last 1 \
  --grid "$work/grid.png" >"$work/out" 2>&1 || check "compare failed: $(cat "$work/out")"
grep -Eq "^dense +[0-9.]+ +n/a +inf +1\.0000" "$work/out" || check "compare: dense row is not exact: $(cat "$work/out")"
grep -q "^dense skip-last 1" "$work/out" || check "compare: no skip-last row"
[ -s "$work/grid.png" ] || check "compare wrote no grid"
"$sparvar" bench --model "$model" --schedule 1,2,4,6 --device cpu --threads 2 --repeat 2 --warmup 0 --attn dense,csla \
  --json "$work/bench.json" --images "$work/bench" >"$work/out" 2>&1 || check "bench failed: $(cat "$work/out")"
grep -Eq "^csla +[0-9.]+ +[0-9.]+" "$work/out" || check "bench: no csla row: $(cat "$work/out")"
grep -q '"best_ms"' "$work/bench.json" || check "bench wrote no JSON"
[ -s "$work/bench/dense.png" ] && [ -s "$work/bench/csla.png" ] || check "bench wrote no images"

expect_error() {  # expect_error NEEDLE args...: exit 1, one stderr line holding NEEDLE, no work done
  local needle=$1; shift
  "$sparvar" "$@" >"$work/out" 2>"$work/err"
  local rc=$?
  [ "$rc" = 1 ] || check "exit $rc (want 1) for $*"
  [ "$(wc -l <"$work/err")" = 1 ] || check "stderr is not one line for $*: $(cat "$work/err")"
  grep -q -- "$needle" "$work/err" || check "stderr lacks '$needle' for $*: $(cat "$work/err")"
  if grep -q "scale" "$work/out"; then check "work was done before the error for $*"; fi
}
expect_error "empty prompt" generate --model "$model" --prompt "" -o "$work/x.png"
expect_error "no prompt" generate --model "$model" -o "$work/x.png"
expect_error "does not exist" generate --model "$model" --prompt "red apple" -o "$work/no/such/dir/x.png"
expect_error "folder" generate --model "$model" --prompt "red apple" -o "$work"
expect_error "get the model" generate --model "$work/missing-model" --prompt "red apple" -o "$work/x.png"
expect_error "--tau" generate --model "$model" --prompt "a" --tau 0 -o "$work/x.png"
expect_error "24x24" generate --model "$model" --prompt "a" --size 100x100 -o "$work/x.png"
expect_error "skip-last" generate --model "$model" --prompt "a" --skip-last 9 -o "$work/x.png"
expect_error "unknown attention mode" bench --model "$model" --attn dense,fast
expect_error "no such file" bench --model "$work/missing-model"
expect_error "--repeat" bench --model "$model" --repeat 0
SPARVAR_MODEL_DIR="$work/nowhere" expect_error "SPARVAR_MODEL_DIR" generate --prompt "a" -o "$work/x.png"
[ ! -e "$work/x.png" ] || check "an image was written by a failing run"

"$sparvar" generate --help >"$work/help" 2>&1 || check "--help exited $?"
for flag in --prompt --prompts-file --unconditional --model --seed --cfg --tau --top-k --top-p --size --aspect \
            --attn --skip-last --batch --device --threads --output --verbose --text-features --bits --uniforms \
            --dump-logits; do
  grep -q -- "$flag" "$work/help" || check "--help lacks $flag"
done
for default in 'seed UINT=0' '=dense' '=auto' 'skip-last INT=0' '=out.png' 'default: manifest'; do
  grep -q -- "$default" "$work/help" || check "--help lacks the default $default"
done
exit $status
