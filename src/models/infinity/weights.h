// The Infinity transformer's weights, loaded from an official-layout state dict (every key checked by name
// and shape) and placed on a backend once. Biases that the official model builds by concatenation
// (q_bias | zero_k_bias | v_bias) are concatenated here, at load time, so each projection is one linear.
#pragma once

#include <vector>

#include "backend/backend.h"
#include "models/infinity/config.h"

namespace sparvar::io {
class Checkpoint;
}

namespace sparvar::infinity {

struct BlockWeights {
  // self-attention
  Tensor qkv_w, qkv_b;          // [3C, C], [3C] = q_bias | 0 | v_bias
  Tensor q_head_scale;          // [H] = exp(min(scale_mul, log 100))
  Tensor sa_proj_w, sa_proj_b;  // [C, C], [C]
  // cross-attention
  Tensor ca_norm_w, ca_norm_b;  // [C]
  Tensor ca_q_w, ca_q_b;        // [C, C], [C]
  Tensor ca_kv_w, ca_kv_b;      // [2C, C], [2C] = 0 | v_bias
  Tensor ca_proj_w, ca_proj_b;  // [C, C], [C]
  // FFN
  Tensor fc1_w, fc1_b, fc2_w, fc2_b;
  std::vector<float> ada_gss;   // host [6 * C]: g1, g2, s1, s2, b1, b2 offsets added to the shared AdaLN
};

struct InfinityWeights {
  InfinityConfig config;
  DType dtype = DType::F32;      // storage dtype of the device tensors
  // text conditioning
  std::vector<float> cfg_uncond;  // host [text_maxlen * Ct5]: the unconditional "text"
  Tensor text_norm_w;             // [Ct5]
  std::vector<float> pool_q;      // host [pool_heads * pool_head_dim]: learned query of the attentive pool
  Tensor pool_kv_w, pool_kv_b;    // [2D, Ct5], [2D]
  Tensor pool_proj_w, pool_proj_b;
  Tensor text_ca0_w, text_ca0_b, text_ca2_w, text_ca2_b;  // text_proj_for_ca: Linear, GELU-tanh, Linear
  // embeddings and shared AdaLN
  std::vector<float> pos_start;   // host [C]
  Tensor lvl_embed;               // [num_lvl, C]
  Tensor word_embed_w, word_embed_b;  // [C, d_vae], [C]
  Tensor shared_ada_w, shared_ada_b;  // [6C, D], [6C]
  std::vector<BlockWeights> blocks;
  // head
  Tensor head_nm_w, head_nm_b;    // [2C, D], [2C]
  Tensor head_w, head_b;          // [2 d_vae, C], [2 d_vae]
};

// Loads every tensor of `config` from ckpt onto backend (F32 on CPU, BF16 on CUDA). Errors name the key
// and both shapes; keys the model does not know are an error too (a wrong layout must not load silently).
// zero_k_bias buffers may be absent (they are zeros).
InfinityWeights load_weights(const io::Checkpoint& ckpt, const InfinityConfig& config, Backend& backend);

// The storage dtype the model uses on this backend.
DType compute_dtype(const Backend& backend);

}  // namespace sparvar::infinity
