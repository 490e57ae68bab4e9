#!/bin/sh
# Debian/Ubuntu packages for building the training set and running the CPU smoke test HERE (the GPU machine
# has no network: the dataset and spiece.model are built on this machine and carried there).
#   data:      fonts-noto-color-emoji (NotoColorEmoji.ttf, CBDT bitmaps), tuxpaint-stamps-default (PNG stamps + .txt)
#   readers:   python3-fonttools (CBDT/cmap/GSUB), python3-pil (PNG decode, resize)
#   tokenizer: python3-sentencepiece (trains spiece.model)
#   plots:     python3-matplotlib (loss curves; optional, skipped with a warning when absent)
#   tests:     python3-pytest
# Everything runs with /usr/bin/python3 (Debian's python3-torch 1.13). Nothing from PyPI is needed here;
# the GPU image already has torch, numpy, pillow, matplotlib and sentencepiece.
set -e
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y --no-install-recommends \
    fonts-noto-color-emoji tuxpaint-stamps-default \
    python3-fonttools python3-pil python3-sentencepiece python3-matplotlib python3-pytest
