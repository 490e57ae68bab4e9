#!/usr/bin/env bash
# Run ON the GPU machine: per-kernel GPU time of chosen phases of one Infinity generation, through Nsight Compute
# (one metric, gpu__time_duration; caches and clocks left alone) and the NVTX ranges the engine names ("vae",
# "scale 64x64", ...). Eager run (--no-graphs) so every kernel is a launch ncu can see.
#   MODEL=2b ATTN=csla bash bench/profile/device_profile.sh "vae" "scale 4x4" "scale 64x64"
# Carry .devdeps (scripts/device-pack.sh). Writes $OUT/ncu_<range>.log and prints ncu_summary.py's tables.
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
m=${MODEL:-2b}
eval "$(bash scripts/device-setup.sh)"
if [ ! -x /tmp/b/src/cli/sparvar ] || [ "${REBUILD:-1}" = 1 ]; then
  cmake -S . -B /tmp/b -G Ninja $SPARVAR_CMAKE_ARGS -DSPARVAR_CUDA=ON -DSPARVAR_TESTS=OFF >/tmp/configure.log 2>&1 ||
    { tail -30 /tmp/configure.log; exit 1; }
  cmake --build /tmp/b -j16 --target sparvar >/tmp/build.log 2>&1 || { grep -m20 -B2 -A6 "error" /tmp/build.log; exit 1; }
fi
ck=/tmp/ckpt_$m
if [ ! -f "$ck/manifest.json" ]; then
  python3 python/tools/make_random_checkpoint.py --out "$ck" --infinity "infinity_$m" --dtype bf16 --no-t5 \
    --device cuda >/tmp/ckpt_$m.log 2>&1 || { tail -20 /tmp/ckpt_$m.log; exit 1; }
fi
ncu=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
for range in "$@"; do
  tag=$(echo "$range" | tr ' ' '_')
  log="$OUT/ncu_${m}_${ATTN:-csla}_$tag.log"
  # The range inside the profiled run; if this ncu does not match nested ranges, every run's kernels of it.
  for filter in "bench run $(( ${WARMUP:-1} + 1 ))/$range/" "$range/"; do
    "$ncu" --nvtx --nvtx-include "$filter" --metrics gpu__time_duration.sum --csv --cache-control none \
      --clock-control none --log-file "$log" \
      /tmp/b/src/cli/sparvar bench --model "$ck" --attn "${ATTN:-csla}" --repeat 1 --warmup "${WARMUP:-1}" \
      --no-graphs >"$OUT/bench_${m}_$tag.log" 2>&1 || { tail -20 "$OUT/bench_${m}_$tag.log"; }
    grep -q gpu__time_duration "$log" && break
    echo "(no kernel matched '$filter')"
  done
  python3 bench/profile/ncu_summary.py "$log" | head -${TOP:-40}
done
