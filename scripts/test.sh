#!/usr/bin/env bash
# The test command: installs what is needed, builds, runs every test (GPU tests skip without a GPU),
# then runs each fuzzer for a bounded time. FUZZ_SECONDS=0 skips fuzzing.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh -DSPARVAR_WERROR=ON
ctest --test-dir build --output-on-failure -j "$(nproc)"
if [ "${FUZZ_SECONDS:-40}" != 0 ] && [ -f scripts/fuzz.sh ]; then
  bash scripts/fuzz.sh "${FUZZ_SECONDS:-40}"
fi
