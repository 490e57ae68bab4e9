import torch

from sparvar_ref import t5


def test_shapes_keys_and_mask_semantics():
    m = t5.build_t5("t5-tiny", seed=0)
    keys = set(m.state_dict())
    assert {"shared.weight", "encoder.embed_tokens.weight", "encoder.final_layer_norm.weight",
            "encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight",
            "encoder.block.1.layer.1.DenseReluDense.wi_1.weight"} <= keys
    assert "encoder.block.1.layer.0.SelfAttention.relative_attention_bias.weight" not in keys
    ids = torch.randint(2, 256, (2, 9))
    mask = torch.ones(2, 9, dtype=torch.long)
    mask[1, 5:] = 0
    f, mk = m(ids, mask)
    assert f.shape == (2, 9, 128) and mk.dtype == torch.bool and mk[1].sum() == 5
    # padded positions do not change the valid ones
    ids2 = ids.clone()
    ids2[1, 5:] = 0
    f2, _ = m(ids2, mask)
    assert torch.allclose(f[1, :5], f2[1, :5], atol=1e-5)
    g, _ = m(ids[1:, :5])
    assert torch.allclose(f[1, :5], g[0], atol=1e-5)


def test_relative_buckets():
    rel = torch.tensor([-200, -25, -8, -7, -1, 0, 1, 7, 8, 25, 200])
    assert t5.relative_bucket(rel, 32, 128).tolist() == [15, 11, 8, 7, 1, 0, 17, 23, 24, 27, 31]


def test_xl_config():
    c = t5.T5_CONFIGS["flan-t5-xl"]
    assert (c.d_model, c.num_layers, c.num_heads, c.d_kv, c.d_ff, c.vocab_size) == (2048, 24, 32, 64, 5120, 32128)
    assert c.hf_config()["dense_act_fn"] == "gelu_new"
