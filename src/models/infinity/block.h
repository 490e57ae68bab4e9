// One transformer block of Infinity for one scale (CrossAttnBlock of the reference):
//   x += SA(LN(x) * (1 + s1) + b1) * g1      cosine attention over the KV cache, 2-D RoPE
//   x += CA(ca_norm(x), text)                 keys/values precomputed per image, masked by text length
//   x += FFN(LN(x) * (1 + s2) + b2) * g2      GELU-tanh
// and the bitwise head. All activations come from the planned Workspace (see reserve_block_workspace). The
// small steps are the backend's fused ops (layer_norm_modulate, qkv_to_attention into the KV cache,
// linear_residual, gated_residual_norm), so a block is about 20 launches: the GEMMs, the two attentions and a few
// passes. A gated residual and the LayerNorm after it are one pass: the self-attention's with ca_norm, the FFN's
// with whatever reads x next (the next block's first AdaLN, or the head's), which then finds its input in "h".
#pragma once

#include "attention/schedule.h"
#include "backend/backend.h"
#include "models/infinity/attention_runner.h"
#include "models/infinity/conditioning.h"
#include "models/infinity/kv_cache.h"
#include "models/infinity/weights.h"
#include "models/infinity/workspace.h"

namespace sparvar::infinity {

struct ScaleStep {
  int scale = 0;
  const ScaleSchedule* schedule = nullptr;
  int64_t tokens = 0;   // n = h * w
  int64_t offset = 0;   // tokens of the earlier scales (where this scale's keys go in the cache)
  Tensor rope_cos, rope_sin;  // F32 [n, head_dim / 2]
  const ScaleRows* rows = nullptr;  // the runner's cache order for this scale (null: row-major)
};

// Reserves every buffer run_block and run_head take, for `batch` rows and up to `max_tokens` tokens (q: up to
// max_q_rows rows, the runner's CacheOrder::max_q_rows; 0 = max_tokens).
void reserve_block_workspace(Workspace& ws, const InfinityConfig& c, int64_t batch, int64_t max_tokens,
                             int64_t max_q_rows = 0);

// The normalisation of x that a block's self-attention reads (AdaLN with the layer's s1, b1), and the head's.
LayerNormSpec block_input_norm(const Conditioning& cond, int layer);
LayerNormSpec head_input_norm(const Conditioning& cond);

// Whether the workspace's "h" already holds the normalised x a block or the head reads (the previous block's last
// residual wrote it), or it is to be computed from x.
enum class InputNorm { Compute, Ready };

// x [batch, n, C] is updated in place. `in`: whether "h" holds block_input_norm(cond, layer) of x. On return "h"
// holds `next` of the new x: block_input_norm(cond, layer + 1), or head_input_norm(cond) after the last layer.
void run_block(Backend& be, const InfinityWeights& w, int layer, const Conditioning& cond, const ScaleStep& step,
               KvCache& cache, AttentionRunner& runner, Workspace& ws, Tensor& x, InputNorm in,
               const LayerNormSpec& next);

// Head: logits [batch, n, 2 * d_vae] = head(LN(x) * (1 + s) + b); returns a workspace view. `in`: whether "h"
// holds head_input_norm(cond) of x already.
Tensor run_head(Backend& be, const InfinityWeights& w, const Conditioning& cond, Workspace& ws, const Tensor& x,
                InputNorm in);

}  // namespace sparvar::infinity
