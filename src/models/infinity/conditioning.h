// Everything the transformer derives from the text once per image: the pooled text (start token and the
// AdaLN condition), the projected text keys/values of every cross-attention layer, the per-block AdaLN
// modulations (shared linear + each block's ada_gss) and the head's modulation. All of it is computed on the
// backend (no download): the generator encodes each image into buffers it keeps (TextBuffers).
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
  // Per layer, the text folded into the cross-attention's projections (Backend::fold_cross_attention), when the
  // text is short enough for that to pay (fold_cross_attention_keys); empty otherwise.
  std::vector<FoldedText> folded;

  Tensor ca_keys(int layer) const;
  Tensor ca_values(int layer) const;
  // Row `which` (0..5) of a block's modulation as [batch, C]; one batch row of it as [C].
  Tensor mod(int layer, int which) const;
  Tensor mod_row(int layer, int which, int64_t row) const;
};

// The backend buffers of the conditioning of `rows` text rows of `text_len` tokens: Conditioning's tensors
// (cond), the constants encoding needs and its fp32 steps, allocated once here; encode_text_into refills them
// for each image without allocating.
struct TextBuffers {
  TextBuffers(Backend& backend, const InfinityWeights& w, int64_t rows, int64_t text_len);
  // Elements (model dtype) of the scratch encode_text_into borrows for its intermediates (the generator lends
  // it an activation buffer of the scale loop, idle while the text is encoded).
  int64_t scratch_numel() const;
  size_t bytes() const;

  int64_t rows, text_len;
  const InfinityConfig* config;
  Conditioning cond;             // its tensors are views of the buffers below; lengths set per image
  Tensor pool_q;                 // [rows, Hp, 1, hdp]: the pool's learned query (constant)
  Tensor gss;                    // F32 [depth, 6C]: the blocks' own AdaLN offsets (constant)
  Tensor pos_start;              // F32 [C] (constant)
  Tensor ca_kv, block_mod;       // [depth, 2, rows, H, Lt, hd], [depth, 6, rows, C]
  Tensor ca_kf, ca_kb, ca_vf;    // folded text (cond.folded): [depth, rows, H*Lp, C], F32 [depth, rows, H*Lp], [depth, rows, C, H*Lp]
  Tensor head_mod;               // [2, rows, C]: head_scale, then head_shift
  // fp32 steps, so that a modulation or the start token is rounded to the model dtype once, from the fp32 sum,
  // as on the host: shared AdaLN [rows, 6C], plus a block's offsets [rows, 6C], regrouped [6, rows, C]; start.
  Tensor shared32, mod32, mod32_t, start32;
};

// Keys per head (Lp) the cross-attention of a text of Lt tokens is folded into its projections with, or 0 when it runs
// as attention: on CUDA in BF16, for Lp = Lt rounded up to 8 (aligned products) <= head_dim / 2, where folding needs
// at most half the FLOPs; SPARVAR_FOLD_XATTN=0 turns it off (for measuring both).
int64_t fold_cross_attention_keys(const Backend& backend, const InfinityConfig& c, DType dtype, int64_t text_len);

// text: host F32 [rows, Lt, Ct5] (zeros past each length), lengths per row in [1, Lt]; scratch: a tensor of the
// model dtype on the backend with at least buffers.scratch_numel() elements (overwritten). Fills
// buffers.cond.
void encode_text_into(Backend& backend, const InfinityWeights& w, const Tensor& text,
                      const std::vector<int32_t>& lengths, const Tensor& scratch, TextBuffers& buffers);

// The same into freshly allocated buffers (for callers that encode once).
Conditioning encode_text(Backend& backend, const InfinityWeights& w, const Tensor& text,
                         const std::vector<int32_t>& lengths);

// The rows of the unconditional branch: cfg_uncond[:Lt] with the same lengths (zeros past them).
Tensor unconditional_text(const InfinityWeights& w, int64_t rows, int64_t text_len, const std::vector<int32_t>& lengths);

}  // namespace sparvar::infinity
