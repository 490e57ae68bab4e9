#!/usr/bin/env python3
"""Writes the state-dict key -> shape tables of the official Infinity 2B / 8B transformers, enumerated from
rules read in the official code (infinity.py, basic.py, tools/run_infinity.py) WITHOUT using our model, so
that tests/test_keys.py checks our model against an independent description.

Rules: block_chunks=8 -> 'block_chunks.{c}.module.{j}.' with j < depth/8; CrossAttnBlock with shared AdaLN
(ada_gss), cosine SA without flash (scale_mul_1H11 is 1 x H x 1 x 1), q/v biases + persistent zero_k_bias
buffers in SA and CA, ca_norm = LayerNorm with affine, LN before SA/FFN without affine (no keys), FFN hidden
round(4C/256)*256, cfg_uncond text_maxlen x Ct5 (512 x 2048), TextAttentivePool with Ct5 // 128 heads,
text_proj_for_ca = Linear, GELU, Linear, shared_ada_lin = SiLU, Linear(D, 6C), head_nm.ada_lin = SiLU,
Linear(D, 2C), head = Linear(C, 2 * d_vae), lvl_embed 15 rows, word_embed Linear(d_vae, C).
Usage: derive_official_keys.py OUT_DIR
"""
import json
import os
import sys


def keys(depth, C, H, d_vae, Ct5=2048, text_maxlen=512, chunks=8):
    D = C
    hf = round(C * 4 / 256) * 256
    pool_heads = Ct5 // (128 if D <= 4096 else 64)
    k = {
        "cfg_uncond": [text_maxlen, Ct5],
        "pos_start": [1, 1, C],
        "text_norm.weight": [Ct5],
        "text_proj_for_sos.ca.mat_q": [1, pool_heads, D // pool_heads],
        "text_proj_for_sos.ca.v_bias": [D],
        "text_proj_for_sos.ca.zero_k_bias": [D],
        "text_proj_for_sos.ca.mat_kv.weight": [2 * D, Ct5],
        "text_proj_for_sos.ca.proj.weight": [D, D],
        "text_proj_for_sos.ca.proj.bias": [D],
        "text_proj_for_ca.0.weight": [D, Ct5],
        "text_proj_for_ca.0.bias": [D],
        "text_proj_for_ca.2.weight": [D, D],
        "text_proj_for_ca.2.bias": [D],
        "lvl_embed.weight": [15, C],
        "word_embed.weight": [C, d_vae],
        "word_embed.bias": [C],
        "shared_ada_lin.1.weight": [6 * C, D],
        "shared_ada_lin.1.bias": [6 * C],
        "head_nm.ada_lin.1.weight": [2 * C, D],
        "head_nm.ada_lin.1.bias": [2 * C],
        "head.weight": [2 * d_vae, C],
        "head.bias": [2 * d_vae],
    }
    per = depth // chunks
    for i in range(depth):
        p = f"block_chunks.{i // per}.module.{i % per}."
        k.update({
            p + "ada_gss": [1, 1, 6, C],
            p + "sa.scale_mul_1H11": [1, H, 1, 1],
            p + "sa.q_bias": [C], p + "sa.v_bias": [C], p + "sa.zero_k_bias": [C],
            p + "sa.mat_qkv.weight": [3 * C, C],
            p + "sa.proj.weight": [C, C], p + "sa.proj.bias": [C],
            p + "ca.mat_q.weight": [C, C], p + "ca.mat_q.bias": [C],
            p + "ca.v_bias": [C], p + "ca.zero_k_bias": [C],
            p + "ca.mat_kv.weight": [2 * C, D],
            p + "ca.proj.weight": [C, C], p + "ca.proj.bias": [C],
            p + "ffn.fc1.weight": [hf, C], p + "ffn.fc1.bias": [hf],
            p + "ffn.fc2.weight": [C, hf], p + "ffn.fc2.bias": [C],
            p + "ca_norm.weight": [C], p + "ca_norm.bias": [C],
        })
    return k


if __name__ == "__main__":
    out = sys.argv[1] if len(sys.argv) > 1 else "."
    os.makedirs(out, exist_ok=True)
    for name, args in (("infinity_2b", (32, 2048, 16, 32)), ("infinity_8b", (40, 3584, 28, 56))):
        k = keys(*args)
        with open(os.path.join(out, f"{name}_keys.json"), "w") as f:
            json.dump(k, f, indent=0, sort_keys=True)
        print(name, len(k), "keys", sum(__import__("math").prod(s) for s in k.values()) / 1e9, "B params")
