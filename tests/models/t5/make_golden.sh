#!/usr/bin/env bash
# Regenerates tests/models/t5/golden/ (committed, ~1.5 MB). Two interpreters: the tokenizer step needs Python's
# sentencepiece (pip install sentencepiece for python3), the encoder step Debian's torch (/usr/bin/python3).
# data/tiny_spiece.model itself is made by data/train_tokenizer.py (run it first only to retrain).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
python3 "$here/tokenize_prompts.py" "$here/golden"
/usr/bin/python3 "$here/make_golden.py" --out "$here/golden"
