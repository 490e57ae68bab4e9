// Everything the transformer derives from the text once per image: the pooled text (start token and the
// AdaLN condition), the projected text keys/values of every cross-attention layer, the per-block AdaLN
// modulations (shared linear + each block's ada_gss) and the head's modulation.
#pragma once

#include <vector>

#include "backend/backend.h"
#include "models/infinity/weights.h"

namespace sparvar::infinity {

struct Conditioning {
  int64_t batch = 0;                 // rows: conditional rows, then unconditional rows when CFG is on
  int64_t text_len = 0;
  std::vector<int32_t> lengths;      // valid text tokens per row
  Tensor start;                      // [batch, 1, C]: pooled text + pos_start
  std::vector<Tensor> ca_kv;         // per layer [2, batch, H, Lt, hd]: cross-attention keys (0) and values (1)
  std::vector<Tensor> block_mod;     // per layer [6, batch, C]: g1, g2, s1, s2, b1, b2
  Tensor head_scale, head_shift;     // [batch, C]

  Tensor ca_keys(int layer) const;
  Tensor ca_values(int layer) const;
  // Row `which` (0..5) of a block's modulation as [batch, C]; one batch row of it as [C].
  Tensor mod(int layer, int which) const;
  Tensor mod_row(int layer, int which, int64_t row) const;
};

// text: host F32 [batch, Lt, Ct5] (zeros past each length), lengths per row in [1, Lt].
Conditioning encode_text(Backend& backend, const InfinityWeights& w, const Tensor& text,
                         const std::vector<int32_t>& lengths);

// The rows of the unconditional branch: cfg_uncond[:Lt] with the same lengths (zeros past them).
Tensor unconditional_text(const InfinityWeights& w, int64_t rows, int64_t text_len, const std::vector<int32_t>& lengths);

}  // namespace sparvar::infinity
