// Fast fp32 block-sparse attention on the CPU: the CPU backend's counterpart of the CUDA kernel, used by the
// sparse attention runner. Same contract as reference.h (tensors in padded tile order, the pattern of a
// BlockSparseLayout, optional block mass), but fp32 with online softmax: each query block walks its listed
// key blocks once, keeping per-query running max / sum, and the work is split over (batch, head, q block)
// on a thread pool. Agrees with the double-precision reference to ~1e-6 relative.
#pragma once

#include "attention/pattern.h"
#include "core/tensor.h"
#include "core/thread_pool.h"

namespace sparvar {

// q, out: F32 [B, H, layout.q_slots(), D]; k, v: F32 [B, H, layout.k_slots(), D]; H == layout.pattern.heads.
// Padding slots of k/v are never read; padding rows of out are set to 0.
// block_mass (optional): F32 [B, H, num_q_blocks, num_k_blocks], as reference.h defines it (rows sum to 1,
// 0 for blocks not listed).
// pool: null runs on the calling thread. The layout is NOT re-validated here (the caller built it with
// make_block_sparse_layout, which validates); shapes and dtypes are checked.
void cpu_block_sparse_attention(const Tensor& q, const Tensor& k, const Tensor& v, const BlockSparseLayout& layout,
                                float softmax_scale, Tensor& out, Tensor* block_mass = nullptr,
                                ThreadPool* pool = nullptr);

}  // namespace sparvar
