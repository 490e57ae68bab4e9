"""Per-bit sampling of Infinity's bitwise head, with a pluggable source of randomness.

Official behaviour (infinity.py, sample_with_top_k_top_p_also_inplace_modifying_logits_ with use_bit_label):
logits (B, L, 2d) -> (B, L*d, 2): every bit is its own 2-way distribution.
- top-k: logits below the k-th largest are set to -inf. With only 2 choices and the scripts' k = 900,
  k is clamped to 2 and nothing is removed (k = 1 keeps the larger logit; on an exact tie both stay).
- top-p: sort ascending, remove the entries whose cumulative softmax is <= 1 - top_p, never the largest.
  For 2 choices: the less likely bit is removed when its probability <= 1 - top_p.
- then softmax and torch.multinomial with a generator seeded by g_seed (on the GPU in the scripts: those
  exact draws cannot be reproduced elsewhere).
Samplers here:
- TorchSampler(seed): torch.multinomial on a CPU generator (the official kind of draw, not its values).
- UniformSampler(u): supplied uniforms in [0, 1), consumed in order scale by scale, each scale taking
  B * L * d values in (batch, token, bit) row-major order; bit = 1 iff u >= p(bit = 0). This is what the C++
  engine reproduces exactly (same uniforms in, same bits out, up to ties at the threshold).
"""
import numpy as np
import torch


def filter_logits(logits_N2: torch.Tensor, top_k: int, top_p: float) -> torch.Tensor:
    x = logits_N2.clone().float()
    V = x.shape[-1]
    if top_k and 0 < top_k < V:
        kth = x.topk(top_k, dim=-1).values.amin(-1, keepdim=True)
        x = x.masked_fill(x < kth, float("-inf"))
    if top_p and top_p > 0:
        sl, si = x.sort(dim=-1, descending=False)
        rm = sl.softmax(-1).cumsum(-1) <= (1 - top_p)
        rm[..., -1:] = False
        x = x.masked_fill(rm.scatter(-1, si, rm), float("-inf"))
    return x


class TorchSampler:
    def __init__(self, seed: int = 0):
        self.seed = seed
        self.g = None

    def __call__(self, probs_N2: torch.Tensor, scale_idx: int) -> torch.Tensor:
        # torch.multinomial needs a generator on the probabilities' device: made on first use.
        if self.g is None or self.g.device != probs_N2.device:
            self.g = torch.Generator(device=probs_N2.device)
            self.g.manual_seed(self.seed)
        return torch.multinomial(probs_N2, 1, replacement=True, generator=self.g)[:, 0]


class UniformSampler:
    """Draws from supplied uniforms (numpy array or tensor, any shape; flattened and read in order)."""

    def __init__(self, uniforms):
        self.u = torch.as_tensor(np.asarray(uniforms, dtype=np.float32).reshape(-1))
        self.pos = 0
        self.used = []   # per scale: the uniforms consumed (B*L*d,)

    def __call__(self, probs_N2: torch.Tensor, scale_idx: int) -> torch.Tensor:
        n = probs_N2.shape[0]
        if self.pos + n > self.u.numel():
            raise ValueError(f"not enough uniforms: need {self.pos + n}, have {self.u.numel()}")
        u = self.u[self.pos:self.pos + n]
        self.pos += n
        self.used.append(u)
        return (u >= probs_N2[:, 0]).long()


def sample_bits(logits_BLV: torch.Tensor, top_k: int, top_p: float, sampler, scale_idx: int) -> torch.Tensor:
    """logits (B, L, 2d) (tau and CFG already applied) -> bits (B, L, d) as int64 in {0, 1}."""
    B, L, V = logits_BLV.shape
    x = filter_logits(logits_BLV.reshape(-1, 2), top_k, top_p)
    probs = x.softmax(-1)
    return sampler(probs, scale_idx).reshape(B, L, V // 2)


def uniforms_needed(schedule, batch: int, d_vae: int) -> int:
    return int(sum(t * h * w for t, h, w in schedule)) * batch * d_vae
