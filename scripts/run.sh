#!/usr/bin/env bash
# The run command: installs what is needed, builds, and runs the engine.
# Until the shipped model lands this shows `sparvar info` on a sharded checkpoint made by our fixture script
# (tests/io/fixtures/make_fixtures.py); afterwards it will generate an image with the shipped model.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh >/dev/null
build/src/cli/sparvar info tests/io/fixtures/sharded_bin "$@"
