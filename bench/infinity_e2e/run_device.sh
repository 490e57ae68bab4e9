#!/usr/bin/env bash
# Run ON the GPU machine: Infinity 2B / 8B end to end, our engine (`sparvar bench`, every attention mode) beside
# the official PyTorch pipeline (official_infinity.py, SDPA on cuDNN and on FlashAttention-2), same random-weight
# checkpoint, same settings (1024x1024, CFG 3, top-k 900, top-p 0.97, VAE decode included, T5 not timed).
# Carry .devdeps (scripts/device-pack.sh) and .official (a checkout of FoundationVision/Infinity's infinity/ and
# tools/, never committed); move models/ aside for the call (docs/device.md).
#   bash bench/infinity_e2e/run_device.sh "2b"      # then, on the still-warm machine: ... "8b"
# Writes $OUT/run_<models>.log, ours_<m>.json, official_<m>_<sdpa>.json and report_<models>.md.
set -uo pipefail
models=${1:-2b}
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
tag=$(echo "$models" | tr ' ' '_')
log="$OUT/run_$tag.log"
exec > >(tee -a "$log") 2>&1
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
eval "$(bash scripts/device-setup.sh)"   # unpacks .devdeps once; a warm machine reuses /opt/sv
# Always rebuild (incremental on a warm machine): the tree may have changed since the last call.
t0=$(date +%s)
cmake -S . -B /tmp/b -G Ninja $SPARVAR_CMAKE_ARGS -DSPARVAR_CUDA=ON -DSPARVAR_TESTS=OFF >/tmp/configure.log 2>&1 ||
  { tail -30 /tmp/configure.log; exit 1; }
cmake --build /tmp/b -j16 --target sparvar >/tmp/build.log 2>&1 || { grep -m20 -B2 -A6 "error" /tmp/build.log; exit 1; }
echo "== built sparvar in $(( $(date +%s) - t0 )) s"
py=python3
for m in $models; do
  ck=/tmp/ckpt_$m
  if [ ! -f "$ck/manifest.json" ]; then
    t0=$(date +%s)
    $py python/tools/make_random_checkpoint.py --out "$ck" --infinity "infinity_$m" --dtype bf16 --no-t5 \
      --device cuda >/tmp/ckpt_$m.log 2>&1 || { tail -20 /tmp/ckpt_$m.log; exit 1; }
    echo "== random-weight checkpoint infinity_$m written in $(( $(date +%s) - t0 )) s: $(du -sh "$ck" | cut -f1)"
  fi
  echo "== ours, infinity_$m"
  SPARVAR_CUDNN_LOG=${SPARVAR_CUDNN_LOG:-0} /tmp/b/src/cli/sparvar bench --model "$ck" --attn "${ATTN:-dense,csla,cs4a}" --repeat "${REPEAT:-3}" --warmup 2 \
    --json "$OUT/ours_$m.json"  # warm-up 1 eager, 2 records the CUDA graphs
  for sdpa in ${SDPA:-cudnn flash}; do
    echo "== official, infinity_$m, SDPA $sdpa"
    $py bench/infinity_e2e/official_infinity.py --repo .official/Infinity --ckpt "$ck" --model "infinity_$m" \
      --sdpa "$sdpa" --repeat "${REPEAT:-3}" --warmup 1 --json "$OUT/official_${m}_$sdpa.json" 2>&1 |
      grep -v -E "Warning|warn\(|^\s*$|self.codebook_dim" 
  done
done
$py bench/infinity_e2e/report.py "$OUT" | tee "$OUT/report_$tag.md"
