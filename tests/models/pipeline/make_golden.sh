#!/usr/bin/env bash
# Regenerates tests/models/pipeline/golden/ (committed, < 1 MB) with Debian's torch + sentencepiece.
set -euo pipefail
/usr/bin/python3 "$(cd "$(dirname "$0")" && pwd)/make_golden.py"
