#!/usr/bin/env python3
"""Train the sentencepiece tokenizer of our small T5-style text encoder on the dataset's captions.

T5 conventions, so the engine's tokenizer code treats it like Flan-T5's spiece.model: unigram model,
pad = 0, eos = 1, unk = 2, no bos; ids are the sentencepiece ids (the encoder's vocab_size may be larger
than the piece count, as in T5). Only TRAIN captions are used, so held-out prompts are tokenised like any
user prompt. A few generic prompt words are added as extra sentences so prompts like "a drawing of a cat"
do not fall apart into characters. Normalisation 'identity' (we lower-case, the trainer collapses spaces):
no NFKC table in the file (15 KB instead of 250 KB) and a simpler tokenizer in the engine.
Output: <out>/spiece.model (+ spiece.vocab).
"""
import argparse
import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import build_dataset  # noqa: E402

EXTRA = ["a picture of", "an emoji of", "a drawing of", "an icon of", "clip art of", "with", "and", "the",
         "red", "orange", "yellow", "green", "blue", "purple", "brown", "black", "white", "pink", "grey"]


def train(captions, out_dir, vocab_size=1000, seed=0):
    import sentencepiece as spm
    os.makedirs(out_dir, exist_ok=True)
    with tempfile.TemporaryDirectory() as td:
        corpus = os.path.join(td, "captions.txt")
        with open(corpus, "w", encoding="utf-8") as f:
            for c in list(captions) + EXTRA:
                f.write(c.strip().lower() + "\n")
        spm.SentencePieceTrainer.train(
            input=corpus, model_prefix=os.path.join(out_dir, "spiece"), vocab_size=vocab_size,
            model_type="unigram", character_coverage=1.0, normalization_rule_name="identity", pad_id=0, eos_id=1, unk_id=2, bos_id=-1,
            pad_piece="<pad>", eos_piece="</s>", unk_piece="<unk>", hard_vocab_limit=False,
            num_threads=1, minloglevel=2)   # one thread: deterministic piece selection
    return os.path.join(out_dir, "spiece.model")


def encode(sp, text: str, maxlen: int):
    """Lower-cased text -> ids ending with eos (1), truncated to maxlen (eos kept), like T5 tokenisation."""
    ids = sp.encode(text.strip().lower())[: maxlen - 1]
    return ids + [1]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", default=build_dataset.DEFAULT_OUT)
    ap.add_argument("--out", default=os.path.join(build_dataset.REPO, ".data", "tokenizer"))
    ap.add_argument("--vocab", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    with open(os.path.join(a.data, "captions.json")) as f:
        items = json.load(f)["items"]
    caps = [it["caption"] for it in items if it["split"] == "train"]
    path = train(caps, a.out, a.vocab, a.seed)
    import sentencepiece as spm
    sp = spm.SentencePieceProcessor(model_file=path)
    lens = [len(encode(sp, c, 10 ** 6)) for c in caps]
    print(f"wrote {path} ({os.path.getsize(path) / 1024:.0f} KiB), {sp.get_piece_size()} pieces; "
          f"caption tokens: mean {sum(lens) / len(lens):.1f}, max {max(lens)}")
    for c in caps[:3]:
        print(" ", c, "->", sp.encode(c, out_type=str))


if __name__ == "__main__":
    main()
