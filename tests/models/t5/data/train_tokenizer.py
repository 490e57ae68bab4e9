#!/usr/bin/env python3
"""Trains the tiny sentencepiece model the T5 tests use (data/tiny_spiece.model, committed, a few KB).

Same id conventions as T5's spiece.model: pad 0, eos 1, unk 2, no bos; unigram model. Vocabulary 190 (about what 25 lines allow) so every
id fits the 256-row embedding of the 't5-tiny' reference config. Needs Python's sentencepiece
(pip install sentencepiece, or Debian python3-sentencepiece).
  python3 tests/models/t5/data/train_tokenizer.py
"""
import os

import sentencepiece as spm

HERE = os.path.dirname(os.path.abspath(__file__))

if __name__ == "__main__":
    spm.SentencePieceTrainer.train(
        input=os.path.join(HERE, "corpus.txt"), model_prefix=os.path.join(HERE, "tiny_spiece"),
        vocab_size=190, model_type="unigram", character_coverage=1.0,
        pad_id=0, eos_id=1, unk_id=2, bos_id=-1, num_threads=1, minloglevel=2)
    os.remove(os.path.join(HERE, "tiny_spiece.vocab"))
    print("wrote", os.path.join(HERE, "tiny_spiece.model"))
