"""Flan-T5 encoder, our PyTorch reference, with the huggingface transformers T5EncoderModel key layout.

Graph (as in transformers' modeling_t5 for the encoder, Flan-T5 = gated-GELU FFN):
  x = shared[ids]
  per block:  x += o( attention( q(n), k(n), v(n) ) ),  n = rmsnorm_0(x)   (no 1/sqrt(d) scaling in T5!)
              x += wo( gelu_tanh(wi_0(n)) * wi_1(n) ),  n = rmsnorm_1(x)
  out = final_layer_norm(x)
T5LayerNorm: x * rsqrt(mean(x^2) + eps) * weight (no mean subtraction, no bias), eps 1e-6, computed in fp32.
Attention logits get a position bias computed once from block 0's relative_attention_bias (Embedding
num_buckets x heads) and shared by all blocks, plus the padding mask (key positions with mask 0 get the
dtype's most negative value, as transformers does). Bidirectional buckets: half the buckets for each sign
of (key - query); |delta| < max_exact (= buckets/4) exact, beyond that logarithmic up to max_distance.
Keys: shared.weight, encoder.embed_tokens.weight (tied to shared), encoder.block.N.layer.0.SelfAttention.
{q,k,v,o}.weight, encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight, encoder.block.N.
layer.0.layer_norm.weight, encoder.block.N.layer.1.DenseReluDense.{wi_0,wi_1,wo}.weight, encoder.block.N.
layer.1.layer_norm.weight, encoder.final_layer_norm.weight.
Returns per-token features (B, L, d_model) and the mask; Infinity keeps only the first len_i tokens of each
row (official encode_prompt pads to 512 and compacts).
"""
import math
from dataclasses import dataclass, asdict

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class T5Config:
    vocab_size: int = 32128
    d_model: int = 2048
    d_kv: int = 64
    num_heads: int = 32
    d_ff: int = 5120
    num_layers: int = 24
    relative_attention_num_buckets: int = 32
    relative_attention_max_distance: int = 128
    layer_norm_epsilon: float = 1e-6
    feed_forward_proj: str = "gated-gelu"

    def hf_config(self) -> dict:
        """config.json fields as transformers writes them for a T5 encoder."""
        d = asdict(self)
        d.update(model_type="t5", architectures=["T5EncoderModel"], is_encoder_decoder=True,
                 num_decoder_layers=self.num_layers, dense_act_fn="gelu_new", is_gated_act=True,
                 dropout_rate=0.1, initializer_factor=1.0, pad_token_id=0, eos_token_id=1,
                 decoder_start_token_id=0, tie_word_embeddings=False, use_cache=True, torch_dtype="float32")
        return d


T5_CONFIGS = {
    "flan-t5-xl": T5Config(),
    "t5-tiny": T5Config(vocab_size=256, d_model=128, d_kv=32, num_heads=4, d_ff=256, num_layers=2),
    # the text encoder sparvar ships (python/train), sentencepiece vocab of <= 1024 pieces
    "t5-ship": T5Config(vocab_size=1024, d_model=256, d_kv=64, num_heads=4, d_ff=640, num_layers=4),
}


class T5LayerNorm(nn.Module):
    def __init__(self, d, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))
        self.eps = eps

    def forward(self, x):
        var = x.float().pow(2).mean(-1, keepdim=True)
        return self.weight * (x.float() * torch.rsqrt(var + self.eps))


def relative_bucket(rel: torch.Tensor, num_buckets: int, max_distance: int) -> torch.Tensor:
    """Bidirectional T5 bucket of rel = key_pos - query_pos."""
    nb = num_buckets // 2
    out = (rel > 0).long() * nb
    n = rel.abs()
    max_exact = nb // 2
    large = max_exact + (torch.log(n.float() / max_exact) / math.log(max_distance / max_exact) * (nb - max_exact)).long()
    large = torch.minimum(large, torch.full_like(large, nb - 1))
    return out + torch.where(n < max_exact, n, large)


class T5Attention(nn.Module):
    def __init__(self, cfg: T5Config, has_bias: bool):
        super().__init__()
        inner = cfg.num_heads * cfg.d_kv
        self.H, self.dk = cfg.num_heads, cfg.d_kv
        self.q = nn.Linear(cfg.d_model, inner, bias=False)
        self.k = nn.Linear(cfg.d_model, inner, bias=False)
        self.v = nn.Linear(cfg.d_model, inner, bias=False)
        self.o = nn.Linear(inner, cfg.d_model, bias=False)
        self.cfg = cfg
        if has_bias:
            self.relative_attention_bias = nn.Embedding(cfg.relative_attention_num_buckets, cfg.num_heads)

    def position_bias(self, L):
        pos = torch.arange(L)
        b = relative_bucket(pos[None, :] - pos[:, None], self.cfg.relative_attention_num_buckets,
                            self.cfg.relative_attention_max_distance)
        return self.relative_attention_bias(b).permute(2, 0, 1).unsqueeze(0)  # (1, H, L, L)

    def forward(self, x, bias):
        B, L, _ = x.shape
        sh = lambda t: t.view(B, L, self.H, self.dk).transpose(1, 2)
        q, k, v = sh(self.q(x)), sh(self.k(x)), sh(self.v(x))
        s = torch.matmul(q, k.transpose(-1, -2)) + bias
        o = torch.matmul(s.float().softmax(-1).type_as(s), v)
        return self.o(o.transpose(1, 2).reshape(B, L, -1))


class _SA(nn.Module):
    def __init__(self, cfg, has_bias):
        super().__init__()
        self.SelfAttention = T5Attention(cfg, has_bias)
        self.layer_norm = T5LayerNorm(cfg.d_model, cfg.layer_norm_epsilon)


class _DenseGated(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.wi_0 = nn.Linear(cfg.d_model, cfg.d_ff, bias=False)
        self.wi_1 = nn.Linear(cfg.d_model, cfg.d_ff, bias=False)
        self.wo = nn.Linear(cfg.d_ff, cfg.d_model, bias=False)

    def forward(self, x):
        return self.wo(F.gelu(self.wi_0(x), approximate="tanh") * self.wi_1(x))


class _FF(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.DenseReluDense = _DenseGated(cfg)
        self.layer_norm = T5LayerNorm(cfg.d_model, cfg.layer_norm_epsilon)


class T5Block(nn.Module):
    def __init__(self, cfg, has_bias):
        super().__init__()
        self.layer = nn.ModuleList([_SA(cfg, has_bias), _FF(cfg)])

    def forward(self, x, bias):
        sa, ff = self.layer
        x = x + sa.SelfAttention(sa.layer_norm(x), bias)
        return x + ff.DenseReluDense(ff.layer_norm(x))


class T5Stack(nn.Module):
    def __init__(self, cfg, shared):
        super().__init__()
        self.embed_tokens = shared
        self.block = nn.ModuleList([T5Block(cfg, i == 0) for i in range(cfg.num_layers)])
        self.final_layer_norm = T5LayerNorm(cfg.d_model, cfg.layer_norm_epsilon)


class T5Encoder(nn.Module):
    def __init__(self, cfg: T5Config):
        super().__init__()
        self.cfg = cfg
        self.shared = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.encoder = T5Stack(cfg, self.shared)

    def forward(self, input_ids, attention_mask=None):
        """input_ids (B, L) int64, attention_mask (B, L) {0,1}. Returns (features (B, L, d) fp32, mask bool)."""
        B, L = input_ids.shape
        if attention_mask is None:
            attention_mask = torch.ones(B, L, dtype=torch.long)
        x = self.shared(input_ids).float()
        minv = torch.finfo(torch.float32).min
        ext = (1.0 - attention_mask[:, None, None, :].float()) * minv
        bias = self.encoder.block[0].layer[0].SelfAttention.position_bias(L) + ext
        for blk in self.encoder.block:
            x = blk(x, bias)
        return self.encoder.final_layer_norm(x), attention_mask.bool()

    def load_official_state_dict(self, sd, strict=True):
        """Accepts encoder-only or full encoder-decoder files (decoder / lm_head keys are ignored) and files
        that store only one of the tied 'shared.weight' / 'encoder.embed_tokens.weight'."""
        sd = {k: v for k, v in sd.items() if not (k.startswith("decoder.") or k.startswith("lm_head."))}
        if "shared.weight" not in sd and "encoder.embed_tokens.weight" in sd:
            sd["shared.weight"] = sd["encoder.embed_tokens.weight"]
        if "encoder.embed_tokens.weight" not in sd and "shared.weight" in sd:
            sd["encoder.embed_tokens.weight"] = sd["shared.weight"]
        return self.load_state_dict(sd, strict=strict)


def build_t5(name_or_cfg, seed=None) -> T5Encoder:
    cfg = T5_CONFIGS[name_or_cfg] if isinstance(name_or_cfg, str) else name_or_cfg
    if seed is not None:
        torch.manual_seed(seed)
    m = T5Encoder(cfg).eval()
    with torch.no_grad():   # HF-like init scale so random features stay O(1)
        m.shared.weight.normal_(0, 1.0)
    return m
