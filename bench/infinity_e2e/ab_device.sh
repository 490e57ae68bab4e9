#!/usr/bin/env bash
# Run ON the GPU machine (repo root, .devdeps carried): the end-to-end time of an older commit and of the working
# tree on the same machine, alternated, so machine-to-machine spread (~1-2%) does not decide a comparison.
# Make the older tree beside the working tree first (on the dev machine):
#   git archive <commit> CMakeLists.txt cmake src bench tests python fuzz scripts | gzip > tmp_dev/old_tree.tgz
# Then: OLD_TREE=tmp_dev/old_tree.tgz MODEL=8b ATTN=csla bash bench/infinity_e2e/ab_device.sh
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
m=${MODEL:-8b}; attn=${ATTN:-csla}
eval "$(bash scripts/device-setup.sh)"
rm -rf /tmp/old && mkdir -p /tmp/old && tar -C /tmp/old -xzf "${OLD_TREE:?set OLD_TREE to a git archive tarball}"
( cmake -S /tmp/old -B /tmp/bo -G Ninja $SPARVAR_CMAKE_ARGS -DSPARVAR_CUDA=ON -DSPARVAR_TESTS=OFF >/tmp/cfgo.log 2>&1 &&
  cmake --build /tmp/bo -j8 --target sparvar >/tmp/buildo.log 2>&1; echo "old build rc=$?" ) &
cmake -S . -B /tmp/b -G Ninja $SPARVAR_CMAKE_ARGS -DSPARVAR_CUDA=ON >/tmp/cfg.log 2>&1 &&
  cmake --build /tmp/b -j8 --target sparvar >/tmp/build.log 2>&1 || { grep -m20 -A5 error /tmp/build.log; exit 1; }
ck=/tmp/ckpt_$m
[ -f "$ck/manifest.json" ] || python3 python/tools/make_random_checkpoint.py --out "$ck" --infinity "infinity_$m" \
  --dtype bf16 --no-t5 --device cuda >/tmp/ck.log 2>&1
wait
for r in 1 2; do
  for tag in old new; do
    bin=/tmp/b/src/cli/sparvar; [ $tag = old ] && bin=/tmp/bo/src/cli/sparvar
    "$bin" bench --model "$ck" --attn "$attn" --repeat 3 --warmup 2 --json "$OUT/ab_${tag}_${m}_$r.json" \
      >"$OUT/ab_${tag}_${m}_$r.log" 2>&1
    echo "$tag $r: $(grep -E "^$attn " "$OUT/ab_${tag}_${m}_$r.log" | tail -1)"
  done
done
