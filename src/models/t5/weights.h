// The T5 encoder's weights: projections on the backend, the token embedding and the relative-position table
// on the host (looked up per prompt there, which is cheap and needs no gather op).
#pragma once

#include <vector>

#include "backend/backend.h"
#include "models/t5/config.h"

namespace sparvar::io {
class Checkpoint;
}

namespace sparvar::t5 {

struct T5LayerWeights {
  Tensor attn_norm;  // [d_model]
  Tensor wqkv;       // [3 * inner, d_model]: q, k, v stacked so one GEMM makes all three
  Tensor wo;         // [d_model, inner]
  Tensor ffn_norm;   // [d_model]
  Tensor wi0, wi1;   // [d_ff, d_model]: gelu(wi0 x) * (wi1 x)
  Tensor wff_out;    // [d_model, d_ff]
};

struct T5Weights {
  Tensor embedding;       // host [vocab, d_model], the file's dtype
  Tensor relative_bias;   // host [num_buckets, num_heads]
  std::vector<T5LayerWeights> layers;
  Tensor final_norm;      // [d_model]
};

// Loads every encoder tensor of cfg (name and shape checked; errors name the key and both shapes) and rejects
// 'encoder.*' keys the config does not use. Decoder / lm_head keys of full T5 files are ignored.
T5Weights load_t5_weights(const io::Checkpoint& ckpt, const T5Config& cfg, Backend& backend, DType dtype);

}  // namespace sparvar::t5
