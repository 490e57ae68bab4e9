#!/usr/bin/env bash
# Run ON the GPU machine (docs/device.md; carry .devdeps): builds everything with CUDA, runs every test
# (GPU ones included), compute-sanitizer on the attention kernels, and the shipped model on the GPU in each
# attention mode. Logs and images under $OUT; a short summary on stdout.
#   bash scripts/device_validate.sh [tests|model|all]   (default all; `model` reuses a warm machine's /tmp/b)
# The shipped model (47 MB) and .devdeps (19 MB) together exceed what one call may carry (64 MiB): run
# `tests` with models/ moved aside and .devdeps carried, then at once (the machine stays warm 30 s)
# `model` with models/ back and nothing carried.
set -uo pipefail
what=${1:-all}
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
if [ "$what" = model ] && [ -x /tmp/b/src/cli/sparvar ]; then
  lib=/opt/sv/usr/lib/x86_64-linux-gnu; export LD_LIBRARY_PATH=$lib:$lib/openblas-pthread${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
else
eval "$(bash scripts/device-setup.sh)"
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
cmake -S . -B /tmp/b -G Ninja $SPARVAR_CMAKE_ARGS -DSPARVAR_CUDA=ON >/tmp/configure.log 2>&1 ||
  { tail -30 /tmp/configure.log; exit 1; }
cmake --build /tmp/b -j16 >/tmp/build.log 2>&1 || { grep -m20 -B2 -A6 "error" /tmp/build.log; exit 1; }
echo "== ctest"
(cd /tmp/b && ctest --output-on-failure -j4) >"$OUT/ctest.log" 2>&1
grep -E "tests passed|tests failed|\(Failed\)|\(Skipped\)|Timeout" "$OUT/ctest.log" | head -20
echo "== compute-sanitizer (attention kernels, quick cases)"
for tool in memcheck racecheck synccheck; do
  : >"$OUT/sanitizer_$tool.log"  # one log per tool (few files come back from a call)
  for t in test_block_sparse_cuda test_cs4a_build_cuda; do
    SPARVAR_TEST_QUICK=1 compute-sanitizer --tool $tool /tmp/b/tests/attention/cuda/$t >/tmp/san.log 2>&1
    cat /tmp/san.log >>"$OUT/sanitizer_$tool.log"
    echo "$tool $t: $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' /tmp/san.log | tail -1)"
  done
done
SPARVAR_TEST_QUICK=1 compute-sanitizer --tool memcheck /tmp/b/tests/backend/test_backend_ops --small >/tmp/san.log 2>&1
cat /tmp/san.log >>"$OUT/sanitizer_memcheck.log"
echo "memcheck test_backend_ops --small: $(grep -E 'ERROR SUMMARY' /tmp/san.log | tail -1)"
echo "== CS4A GPU build vs the attention it drives"
/tmp/b/bench/cs4a_gpu_bench 200 2>&1 | tee "$OUT/cs4a_gpu_bench.log" | grep -E "build|tiles"
fi
[ "$what" = tests ] && exit 0
echo "== shipped model on the GPU"
prompts=$(mktemp); printf '%s\n' "red apple" "dog face" "flag jp" "a wombat" >"$prompts"
for a in dense csla cs4a; do
  /tmp/b/src/cli/sparvar generate --device cuda --attn $a --prompt "red apple" -o "$OUT/apple_$a.png" 2>&1 | tail -1
done
/tmp/b/src/cli/sparvar compare --device cuda --prompts-file "$prompts" --modes csla,cs4a --skip-last 2 \
  --grid "$OUT/compare_cuda.png" 2>&1 | tail -8
