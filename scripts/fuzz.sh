#!/usr/bin/env bash
# Builds the libFuzzer targets with clang, ASan and UBSan in build-fuzz/ and runs each for SECONDS
# (default 60), seeded from fuzz/corpus/<target>/. Exits non-zero on any crash, leak, timeout or UB;
# the input that triggered it is left in build-fuzz/artifacts/.
#   scripts/fuzz.sh 30           all targets, 30 s each
#   FUZZ_TARGETS=fuzz_torch_zip scripts/fuzz.sh 300
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
targets=(${FUZZ_TARGETS:-fuzz_safetensors fuzz_torch_pickle fuzz_torch_zip fuzz_png fuzz_shard_index fuzz_manifest})
mkdir -p build-fuzz
sanitize="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"

CC=clang CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DSPARVAR_FUZZ=ON -DSPARVAR_CUDA=OFF -DSPARVAR_TESTS=OFF \
  -DCMAKE_C_FLAGS="$sanitize" -DCMAKE_CXX_FLAGS="$sanitize" >build-fuzz/configure.log 2>&1 ||
  { cat build-fuzz/configure.log; exit 1; }
cmake --build build-fuzz -j "${FUZZ_JOBS:-2}" --target "${targets[@]}"

mkdir -p build-fuzz/artifacts
status=0
for t in "${targets[@]}"; do
  work=build-fuzz/corpus/$t  # new inputs land here, the committed seeds stay untouched
  mkdir -p "$work"
  dict=(); [ -f "fuzz/$t.dict" ] && dict=(-dict="fuzz/$t.dict")
  echo "fuzz: $t for ${seconds}s"
  if ! ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
      "build-fuzz/fuzz/$t" "$work" "fuzz/corpus/$t" "${dict[@]}" -max_total_time="$seconds" -timeout=10 \
      -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 -artifact_prefix="build-fuzz/artifacts/$t-" \
      >"build-fuzz/$t.log" 2>&1; then
    tail -n 60 "build-fuzz/$t.log"
    echo "fuzz: $t FAILED (log: build-fuzz/$t.log)" >&2
    status=1
  else
    grep -E "stat::number_of_executed_units|stat::new_units_added" "build-fuzz/$t.log" | tr '\n' ' '
    echo
  fi
done
exit $status
