#!/usr/bin/env python3
"""Step 1 of make_golden.sh: T5-style token ids of the test prompts with Python's sentencepiece
(ids of the pieces + EOS 1, padded with 0). Writes golden/prompts.json, golden/token_ids.npy (B, L) int64 and
golden/token_lens.npy (B,) int64. Needs sentencepiece + numpy (pyenv python3 here)."""
import json
import os
import sys

import numpy as np
import sentencepiece as spm

HERE = os.path.dirname(os.path.abspath(__file__))
PROMPTS = [
    "a photo of a cat sitting on a red sofa",
    "an astronaut riding a horse on the moon, oil painting, highly detailed, dramatic lighting, 85mm lens",
    "hi",
    "Zebra \u00fcn\u00efcode \u2603 \u2014 tabs\tand  double  spaces",
]

if __name__ == "__main__":
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "golden")
    os.makedirs(out, exist_ok=True)
    sp = spm.SentencePieceProcessor(model_file=os.path.join(HERE, "data", "tiny_spiece.model"))
    rows = [sp.encode(p) + [sp.eos_id()] for p in PROMPTS]
    L = max(len(r) for r in rows)
    ids = np.zeros((len(rows), L), dtype=np.int64)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = r
    np.save(os.path.join(out, "token_ids.npy"), ids)
    np.save(os.path.join(out, "token_lens.npy"), np.array([len(r) for r in rows], dtype=np.int64))
    with open(os.path.join(out, "prompts.json"), "w") as f:
        json.dump(PROMPTS, f, indent=1, ensure_ascii=False)
    print("token lengths", [len(r) for r in rows])
