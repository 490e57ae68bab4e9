"""Infinity transformer (bitwise next-scale prediction), our PyTorch reference.

Module tree and parameter names follow the official model (infinity/models/infinity.py + basic.py) so that
an official state dict loads with strict=True. The official configs (tools/run_infinity.py) are:
shared AdaLN, LayerNorm (eps 1e-6, no affine) before attention/FFN, cosine self-attention (q, k L2-normalised,
q times exp(min(scale_mul, log 100)), softmax scale 1), 2-D RoPE (rope.py), cross-attention to projected T5
features (softmax scale 1/sqrt(head_dim)), GELU-tanh FFN 4x (hidden rounded to a multiple of 256),
level embedding added at the first block only, bit labels (head outputs 2 logits per bit), blocks grouped in
block_chunks (8 for 2B/8B) -> keys 'block_chunks.{c}.module.{j}.*'.

Block (CrossAttnBlock):  g1, g2, s1, s2, b1, b2 = ada_gss + shared_ada_lin(cond)  (6 x C each)
   x += SA(LN(x) * (1 + s1) + b1) * g1 ;  x += CA(ca_norm(x), text) ;  x += FFN(LN(x) * (1 + s2) + b2) * g2
Head:  head(LN(x) * (1 + s) + b), (s, b) = head_nm.ada_lin(cond).  cond = attentive pool of RMS-normed text.

Two entry points:
- forward_teacher: all scales at once, block-causal scale mask (query scale >= key scale), given the
  inputs built from bit labels (codes.teacher_inputs). Returns logits per scale.
- generate: autoregressive with a KV cache, CFG on logits (cfg_insertion_layer 0: batch = cond rows then
  uncond rows), tau, per-bit top-k / top-p, pluggable sampler (sampling.py), running-sum update.
attn_fn hook: attn_fn(q, k, v, bias, info) -> (B, H, Lq, hd); q, k already normalised, scaled and rotated;
info = dict(layer=i, scale=si, schedule=..., mode='teacher'|'cached'). Default: dense softmax attention.
"""
import math
from dataclasses import dataclass, field, asdict
from typing import Callable, List, Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import codes as C
from .rope import apply_rope, rope_table
from .sampling import sample_bits, TorchSampler
from .schedules import vae_schedule


@dataclass
class InfinityConfig:
    depth: int = 32
    embed_dim: int = 2048
    num_heads: int = 16
    mlp_ratio: float = 4.0
    text_channels: int = 2048       # Ct5 (Flan-T5-XL d_model)
    text_maxlen: int = 512          # rows of cfg_uncond
    vae_codebook_dim: int = 32      # bits per VAE latent position (32 for d32, 14 for d56)
    spatial_patchify: bool = False  # d56: 2x2 patchify -> 4 x 14 = 56 bits per token
    block_chunks: int = 8           # 1 -> keys 'blocks.N.*'
    norm_eps: float = 1e-6
    num_lvl: int = 15               # rows of lvl_embed

    @property
    def d_vae(self) -> int:
        return self.vae_codebook_dim * (4 if self.spatial_patchify else 1)

    @property
    def ffn_hidden(self) -> int:
        return int(round(self.embed_dim * self.mlp_ratio / 256) * 256)

    @property
    def pool_heads(self) -> int:
        # TextAttentivePool: heads = Ct5 // (128 if D <= 4096 else 64); its head dim is D / heads
        return self.text_channels // (128 if self.embed_dim <= 4096 else 64)


CONFIGS = {
    "infinity_2b": InfinityConfig(depth=32, embed_dim=2048, num_heads=16),
    "infinity_8b": InfinityConfig(depth=40, embed_dim=3584, num_heads=28, vae_codebook_dim=14, spatial_patchify=True),
    # small configs for tests / our own training; head dim 64, pool needs text_channels >= 128
    "infinity_tiny": InfinityConfig(depth=2, embed_dim=128, num_heads=2, text_channels=128, text_maxlen=64, block_chunks=2),
    "infinity_tiny_p": InfinityConfig(depth=2, embed_dim=128, num_heads=2, text_channels=128, text_maxlen=64,
                                      vae_codebook_dim=14, spatial_patchify=True, block_chunks=2),
    "infinity_small": InfinityConfig(depth=4, embed_dim=256, num_heads=4, text_channels=256, text_maxlen=128, block_chunks=2),
    # the model sparvar ships (python/train): with vae_ship_p8 (16 bits) and t5-ship (d_model 256)
    "infinity_ship": InfinityConfig(depth=8, embed_dim=320, num_heads=5, text_channels=256, text_maxlen=64,
                                    vae_codebook_dim=16, block_chunks=4),
}


def dense_attention(q, k, v, bias=None, info=None):
    """softmax(q k^T + bias) v in float32; the softmax scale is 1 (q carries the learned scale)."""
    s = torch.matmul(q.float(), k.float().transpose(-1, -2))
    if bias is not None:
        s = s + bias
    return torch.matmul(s.softmax(-1), v.float())


class FastRMSNorm(nn.Module):
    """x * rsqrt(mean(x^2) + eps) * weight (used on the T5 features: 'text_norm')."""

    def __init__(self, C, eps=1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(C))

    def forward(self, x):
        x = x.float()
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


class SelfAttention(nn.Module):
    def __init__(self, C, H):
        super().__init__()
        self.H, self.hd = H, C // H
        self.mat_qkv = nn.Linear(C, 3 * C, bias=False)
        self.q_bias = nn.Parameter(torch.zeros(C))
        self.v_bias = nn.Parameter(torch.zeros(C))
        self.register_buffer("zero_k_bias", torch.zeros(C))
        self.scale_mul_1H11 = nn.Parameter(torch.full((1, H, 1, 1), 4.0).log())
        self.max_scale_mul = math.log(100)
        self.proj = nn.Linear(C, C)

    def qkv(self, x, rope_cs):
        B, L, Cc = x.shape
        bias = torch.cat((self.q_bias, self.zero_k_bias, self.v_bias))
        qkv = F.linear(x, self.mat_qkv.weight, bias).view(B, L, 3, self.H, self.hd).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)                                     # (B, H, L, hd)
        mul = self.scale_mul_1H11.clamp_max(self.max_scale_mul).exp()
        q = F.normalize(q, dim=-1, eps=1e-12) * mul
        k = F.normalize(k, dim=-1, eps=1e-12)
        q, k = apply_rope(q, rope_cs), apply_rope(k, rope_cs)
        return q, k, v

    def forward(self, x, rope_cs, bias=None, cache=None, attn_fn=None, info=None):
        B, L, Cc = x.shape
        q, k, v = self.qkv(x, rope_cs)
        if cache is not None:
            k, v = cache.append(info["layer"], k, v)
        o = (attn_fn or dense_attention)(q, k, v, bias, info)
        return self.proj(o.transpose(1, 2).reshape(B, L, Cc))


class CrossAttention(nn.Module):
    """Queries from x (or one learned query per head when for_attn_pool), keys/values from text tokens;
    softmax scale 1/sqrt(head_dim); a key mask handles the variable text lengths (official: varlen flash)."""

    def __init__(self, embed_dim, kv_dim, num_heads, for_attn_pool=False):
        super().__init__()
        self.H, self.hd = num_heads, embed_dim // num_heads
        self.for_attn_pool = for_attn_pool
        if for_attn_pool:
            self.mat_q = nn.Parameter(torch.randn(1, num_heads, self.hd) * math.sqrt(1 / embed_dim / 3))
        else:
            self.mat_q = nn.Linear(embed_dim, embed_dim, bias=True)
        self.mat_kv = nn.Linear(kv_dim, 2 * embed_dim, bias=False)
        self.v_bias = nn.Parameter(torch.zeros(embed_dim))
        self.register_buffer("zero_k_bias", torch.zeros(embed_dim))
        self.proj = nn.Linear(embed_dim, embed_dim)

    def forward(self, x, kv, kv_mask):
        """x: (B, Lq, C) or None (pool); kv: (B, Lk, kv_dim); kv_mask: (B, Lk) bool, True = valid."""
        B, Lk = kv.shape[:2]
        kvp = F.linear(kv, self.mat_kv.weight, torch.cat((self.zero_k_bias, self.v_bias)))
        k, v = kvp.view(B, Lk, 2, self.H, self.hd).permute(2, 0, 3, 1, 4).unbind(0)
        if self.for_attn_pool:
            q = self.mat_q.expand(B, -1, -1).unsqueeze(2)           # (B, H, 1, hd)
            Lq = 1
        else:
            Lq = x.shape[1]
            q = self.mat_q(x).view(B, Lq, self.H, self.hd).transpose(1, 2)
        s = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(self.hd)
        s = s.masked_fill(~kv_mask[:, None, None, :], float("-inf"))
        o = torch.matmul(s.softmax(-1), v).transpose(1, 2).reshape(B, Lq, -1)
        return self.proj(o)


class TextAttentivePool(nn.Module):
    def __init__(self, Ct5, D, heads):
        super().__init__()
        self.ca = CrossAttention(D, Ct5, heads, for_attn_pool=True)

    def forward(self, kv, kv_mask):
        return self.ca(None, kv, kv_mask).squeeze(1)


class FFN(nn.Module):
    def __init__(self, C, hidden):
        super().__init__()
        self.fc1 = nn.Linear(C, hidden)
        self.fc2 = nn.Linear(hidden, C)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x), approximate="tanh"))


class CrossAttnBlock(nn.Module):
    def __init__(self, cfg: InfinityConfig):
        super().__init__()
        Cc = cfg.embed_dim
        self.C, self.eps = Cc, cfg.norm_eps
        self.sa = SelfAttention(Cc, cfg.num_heads)
        self.ca = CrossAttention(Cc, Cc, cfg.num_heads)
        self.ffn = FFN(Cc, cfg.ffn_hidden)
        self.ca_norm = nn.LayerNorm(Cc, eps=cfg.norm_eps)
        self.ada_gss = nn.Parameter(torch.randn(1, 1, 6, Cc) / Cc ** 0.5)

    def ln(self, x):
        return F.layer_norm(x.float(), (self.C,), eps=self.eps)

    def forward(self, x, gss, text, text_mask, rope_cs, bias=None, cache=None, attn_fn=None, info=None):
        g1, g2, s1, s2, b1, b2 = (self.ada_gss + gss).unbind(2)      # each (B, 1, C)
        x = x + self.sa(self.ln(x) * (s1 + 1) + b1, rope_cs, bias, cache, attn_fn, info) * g1
        x = x + self.ca(self.ca_norm(x), text, text_mask)
        x = x + self.ffn(self.ln(x) * (s2 + 1) + b2) * g2
        return x


class MultipleLayers(nn.Module):
    """Only a container, so the keys read 'block_chunks.{c}.module.{j}'."""

    def __init__(self, blocks):
        super().__init__()
        self.module = nn.ModuleList(blocks)


class AdaLNBeforeHead(nn.Module):
    def __init__(self, C, D, eps):
        super().__init__()
        self.C, self.eps = C, eps
        self.ada_lin = nn.Sequential(nn.SiLU(), nn.Linear(D, 2 * C))

    def forward(self, x, cond):
        scale, shift = self.ada_lin(cond).view(-1, 1, 2, self.C).unbind(2)
        return F.layer_norm(x.float(), (self.C,), eps=self.eps) * (scale + 1) + shift


class KVCache:
    """Per-layer keys/values of all scales seen so far (after normalisation + RoPE), (B, H, L, hd)."""

    def __init__(self):
        self.k, self.v = {}, {}

    def append(self, layer, k, v):
        if layer in self.k:
            k = torch.cat((self.k[layer], k), 2)
            v = torch.cat((self.v[layer], v), 2)
        self.k[layer], self.v[layer] = k, v
        return k, v


def scale_mask(schedule) -> torch.Tensor:
    """(L, L) additive mask: 0 where the key's scale <= the query's scale, -inf elsewhere."""
    d = torch.cat([torch.full((t * h * w,), i) for i, (t, h, w) in enumerate(schedule)])
    return torch.where(d[:, None] >= d[None, :], 0.0, float("-inf"))


class Infinity(nn.Module):
    def __init__(self, cfg: InfinityConfig):
        super().__init__()
        self.cfg = cfg
        Cc, D, Ct5 = cfg.embed_dim, cfg.embed_dim, cfg.text_channels
        std = math.sqrt(1 / Cc / 3)
        self.cfg_uncond = nn.Parameter(torch.randn(cfg.text_maxlen, Ct5) / Ct5 ** 0.5)
        self.text_norm = FastRMSNorm(Ct5, eps=cfg.norm_eps)
        self.text_proj_for_sos = TextAttentivePool(Ct5, D, cfg.pool_heads)
        self.text_proj_for_ca = nn.Sequential(nn.Linear(Ct5, D), nn.GELU(approximate="tanh"), nn.Linear(D, D))
        self.pos_start = nn.Parameter(torch.randn(1, 1, Cc) * std)
        self.lvl_embed = nn.Embedding(cfg.num_lvl, Cc)
        nn.init.normal_(self.lvl_embed.weight, std=std)
        self.word_embed = nn.Linear(cfg.d_vae, Cc)
        self.shared_ada_lin = nn.Sequential(nn.SiLU(), nn.Linear(D, 6 * Cc))
        blocks = [CrossAttnBlock(cfg) for _ in range(cfg.depth)]
        if cfg.block_chunks > 1:
            n = cfg.depth // cfg.block_chunks
            assert n * cfg.block_chunks == cfg.depth
            self.block_chunks = nn.ModuleList(MultipleLayers(blocks[i * n:(i + 1) * n]) for i in range(cfg.block_chunks))
        else:
            self.blocks = nn.ModuleList(blocks)
        self.head_nm = AdaLNBeforeHead(Cc, D, cfg.norm_eps)
        self.head = nn.Linear(Cc, 2 * cfg.d_vae)

    # ---- pieces ---------------------------------------------------------------------------------
    def layers(self) -> List[CrossAttnBlock]:
        if self.cfg.block_chunks > 1:
            return [b for ch in self.block_chunks for b in ch.module]
        return list(self.blocks)

    def encode_text(self, text, text_mask):
        """text (B, Lt, Ct5) T5 features (zeros past each length), mask (B, Lt) bool.
        Returns cond (B, D) pooled text, gss (B, 1, 6, C), projected text (B, Lt, D)."""
        t = self.text_norm(text)
        cond = self.text_proj_for_sos(t, text_mask)
        kv = self.text_proj_for_ca(t)
        gss = self.shared_ada_lin(cond).view(-1, 1, 6, self.cfg.embed_dim)
        return cond, gss, kv

    def uncond_text(self, text_mask):
        """Unconditional features: cfg_uncond[:len] for each row, same lengths as the conditional rows."""
        B, Lt = text_mask.shape
        u = self.cfg_uncond[:Lt].unsqueeze(0).expand(B, -1, -1)
        return u * text_mask[..., None].to(u.dtype)

    def get_logits(self, h, cond):
        return self.head(self.head_nm(h.float(), cond.float()))

    def lvl(self, si, n):
        return self.lvl_embed.weight[si].view(1, 1, -1).expand(1, n, -1)

    def load_official_state_dict(self, sd, strict=True):
        """Loads an official-layout state dict; tolerates absent zero_k_bias buffers and a cfg_uncond with
        another number of rows (the official load_state_dict pads/truncates it the same way)."""
        sd = dict(sd)
        key = "cfg_uncond"
        if key in sd and sd[key].shape[0] != self.cfg_uncond.shape[0]:
            old, new = sd[key], self.cfg_uncond.data
            n = min(old.shape[0], new.shape[0])
            sd[key] = torch.cat((old[:n].to(new.dtype), new[n:])) if n == old.shape[0] else old[:n]
        own = self.state_dict()
        for k in own:
            if k.endswith("zero_k_bias") and k not in sd:
                sd[k] = own[k]
        return self.load_state_dict(sd, strict=strict)

    # ---- teacher-forced ---------------------------------------------------------------------------
    def forward_teacher(self, text, text_mask, x_wo_prefix, schedule, attn_fn=None, return_hidden=False):
        """All scales at once. x_wo_prefix (B, L - 1, d_vae): inputs of scales 1..K-1 (codes.teacher_inputs).
        Returns a list of per-scale logits (B, h*w, 2*d_vae)."""
        B = text.shape[0]
        cond, gss, kv = self.encode_text(text, text_mask)
        sos = cond.unsqueeze(1) + self.pos_start.expand(B, 1, -1)
        x = torch.cat((sos, self.word_embed(x_wo_prefix.float())), 1)
        lens = [t * h * w for t, h, w in schedule]
        x = x + torch.cat([self.lvl(i, n) for i, n in enumerate(lens)], 1)
        rope_cs = rope_table(schedule, self.cfg.embed_dim // self.cfg.num_heads)
        bias = scale_mask(schedule).to(x.device)
        hidden = []
        for li, b in enumerate(self.layers()):
            x = b(x, gss, kv, text_mask, rope_cs, bias, None, attn_fn,
                  dict(layer=li, scale=None, schedule=schedule, mode="teacher"))
            if return_hidden:
                hidden.append(x)
        logits = self.get_logits(x, cond)
        out = list(torch.split(logits, lens, 1))
        return (out, hidden) if return_hidden else out

    # ---- autoregressive ---------------------------------------------------------------------------
    @torch.no_grad()
    def generate(self, text, text_mask, schedule, cfg=3.0, tau=1.0, top_k=900, top_p=0.97,
                 sampler=None, forced_bits: Optional[Sequence[torch.Tensor]] = None,
                 uncond_text=None, attn_fn=None, trunk_scale: Optional[int] = None):
        """Autoregressive generation of B images (B = text rows).

        cfg, tau: float or per-scale list. CFG on logits: logits = cfg*cond + (1-cfg)*uncond, both already
        divided by tau; with every cfg == 1 the batch is not doubled. sampler: sampling.TorchSampler /
        UniformSampler (default TorchSampler(seed 0)). forced_bits: list of (B, h*w, d_vae) bits to use
        instead of sampling (logits still computed): lets tests compare against forward_teacher.
        Returns dict: logits (per scale, after tau and CFG, (B, h*w, 2*d_vae)), bits (per scale),
        inputs (per scale >= 1, the resampled running sum before word_embed (B, h*w, d_vae)),
        summed_codes (B, d, 1, H, W)."""
        cfgd = self.cfg
        K = len(schedule) if trunk_scale is None else min(trunk_scale, len(schedule))
        cfg_list = cfg if isinstance(cfg, (list, tuple)) else [cfg] * len(schedule)
        tau_list = tau if isinstance(tau, (list, tuple)) else [tau] * len(schedule)
        sampler = sampler or TorchSampler(0)
        vsched = vae_schedule(schedule, cfgd.spatial_patchify)
        B = text.shape[0]
        use_cfg = any(c != 1 for c in cfg_list[:len(schedule)])
        if use_cfg:
            un = self.uncond_text(text_mask) if uncond_text is None else uncond_text
            text = torch.cat((text, un), 0)
            text_mask = torch.cat((text_mask, text_mask), 0)
        bs = text.shape[0]
        cond, gss, kv = self.encode_text(text, text_mask)
        x = cond.unsqueeze(1) + self.pos_start.expand(bs, 1, -1)
        rope_full = rope_table(schedule, cfgd.embed_dim // cfgd.num_heads)
        cache = KVCache()
        out = dict(logits=[], bits=[], inputs=[])
        summed, start = 0, 0
        for si in range(K):
            t, h, w = schedule[si]
            n = t * h * w
            rope_cs = rope_full[:, start:start + n]
            start += n
            x = x + self.lvl(si, n)
            for li, b in enumerate(self.layers()):
                x = b(x, gss, kv, text_mask, rope_cs, None, cache, attn_fn,
                      dict(layer=li, scale=si, schedule=schedule, mode="cached"))
            c = cfg_list[si]
            if use_cfg and c != 1:
                lg = self.get_logits(x, cond) / tau_list[si]
                lg = c * lg[:B] + (1 - c) * lg[B:]
            else:
                lg = self.get_logits(x[:B], cond[:B]) / tau_list[si]
            out["logits"].append(lg)
            if forced_bits is not None:
                bits = forced_bits[si].to(torch.long)
            else:
                bits = sample_bits(lg, top_k, top_p, sampler, si)
            out["bits"].append(bits)
            lat = C.token_bits_to_latent_bits(bits, h, w, cfgd.spatial_patchify)
            codes = C.latent_codes(lat, cfgd.vae_codebook_dim)
            last = si == len(schedule) - 1
            summed = C.accumulate(summed, codes, vsched[-1], last)
            if si != K - 1 and not last:
                inp = C.features_to_tokens(C.resample(summed, vsched[si + 1]), cfgd.spatial_patchify)
                out["inputs"].append(inp)
                x = self.word_embed(inp).repeat(bs // B, 1, 1)
        out["summed_codes"] = summed
        return out


def build(name_or_cfg, seed: Optional[int] = None) -> Infinity:
    cfg = CONFIGS[name_or_cfg] if isinstance(name_or_cfg, str) else name_or_cfg
    if seed is not None:
        torch.manual_seed(seed)
    m = Infinity(cfg)
    return m.eval()


def config_dict(cfg: InfinityConfig) -> dict:
    return asdict(cfg)


class meta_init:
    """Context manager: build modules on the 'meta' device (shapes only, no memory), for checking the
    key layout of 2B/8B on a small machine. torch 1.13 has no `with torch.device('meta')`, so the few
    factory functions used by our constructors get device='meta' injected."""
    _names = ("empty", "zeros", "ones", "randn", "full", "arange")

    def __enter__(self):
        self._saved = {n: getattr(torch, n) for n in self._names}
        for n, f in self._saved.items():
            def make(f):
                def g(*a, **kw):
                    if kw.get("device") is None:
                        kw["device"] = "meta"
                    return f(*a, **kw)
                return g
            setattr(torch, n, make(f))
        return self

    def __exit__(self, *exc):
        for n, f in self._saved.items():
            setattr(torch, n, f)
        return False
