#!/usr/bin/env bash
# Configures and builds sparvar into build/ (CUDA code too when nvcc is found). Extra args go to cmake.
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release "$@"
cmake --build build -j "$(nproc)"
