#!/usr/bin/env bash
# The run command: installs what is needed, builds, and runs the engine.
# With the shipped model in models/sparvar-small/ it draws a prompt (default "red apple") to out/red_apple.png;
# until the model lands it shows `sparvar info` on a sharded checkpoint made by our fixture script
# (tests/io/fixtures/make_fixtures.py).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh >/dev/null
if [ -f models/sparvar-small/manifest.json ]; then
  mkdir -p out
  prompt=${1:-red apple}
  build/src/cli/sparvar generate --model models/sparvar-small --prompt "$prompt" \
    -o "out/$(printf '%s' "$prompt" | tr -c 'A-Za-z0-9' '_').png"
else
  build/src/cli/sparvar info tests/io/fixtures/sharded_bin "$@"
fi
