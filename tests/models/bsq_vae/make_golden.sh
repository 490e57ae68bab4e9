#!/usr/bin/env bash
# Regenerates tests/models/bsq_vae/golden/ (committed, ~2 MB) with our PyTorch reference.
# Needs Debian's torch: /usr/bin/python3 (the pyenv python3 has none).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
/usr/bin/python3 "$here/make_golden.py" --out "$here/golden"
