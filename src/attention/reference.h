// CPU reference of block-sparse attention: exact softmax over the listed key blocks only, double
// accumulation. The ground truth the CUDA kernel is tested against, and the source of block-level mass for
// CS4A when running on the CPU.
#pragma once

#include "attention/pattern.h"
#include "core/tensor.h"

namespace sparvar {

// q, out: F32 [B, H, layout.q_slots(), D]; k, v: F32 [B, H, layout.k_slots(), D] (padded tile order).
// H must equal layout.pattern.heads. Padding slots of k/v are never read (they may hold anything, NaN
// included); padding rows of out are set to 0.
// block_mass (optional): F32 [B, H, num_q_blocks, num_k_blocks]; entry (qb, kb) = the share of each valid
// query's softmax mass that falls in key block kb, averaged over the valid queries of qb; 0 for blocks not
// listed. Each row sums to 1.
void reference_block_sparse_attention(const Tensor& q, const Tensor& k, const Tensor& v,
                                      const BlockSparseLayout& layout, float softmax_scale, Tensor& out,
                                      Tensor* block_mass = nullptr);

}  // namespace sparvar
