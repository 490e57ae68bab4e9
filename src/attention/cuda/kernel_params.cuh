// What every block-sparse kernel variant receives: the validated arguments, plus derived sizes.
#pragma once

#include <cuda_bf16.h>

#include "split_tail.h"

namespace sparvar::attention_cuda {

struct KernelParams {
  const __nv_bfloat16* q;
  const __nv_bfloat16* k;
  const __nv_bfloat16* v;
  __nv_bfloat16* out;
  int heads, nq, nk, q_block, k_block;
  int num_q_blocks;  // nq / q_block
  const int* row_offsets;
  const int* col_blocks;
  int nnz, pattern_heads;
  const int* k_valid;
  const int* q_valid;
  float scale_log2;  // softmax_scale * log2(e): scores go through exp2
  float* block_mass;
  int kv_rows;          // rows per (batch*head) of k / v (>= nk)
  const int* out_rows;  // optional: token-major out at these tokens (see BlockSparseAttentionArgs)
  int out_tokens;
  // The shared kernel's split tail (split_tail.h; zero: none) and its per-stream workspace: split_o
  // [tail tiles * max_parts][kSplitRows][D] and split_lse [..][kSplitRows] (fp32), split_arrivals [tail tiles][2],
  // zero between launches.
  SplitTail split;
  float* split_o;
  float* split_lse;
  int* split_arrivals;
};

// First CSR row of (head h, query block qb).
__device__ __forceinline__ int pattern_row(const KernelParams& p, int h, int qb) {
  return (p.pattern_heads == 1 ? 0 : h) * p.num_q_blocks + qb;
}

// Where (b, h)'s block_mass entries start; entry e of col_blocks lands at base + e.
__device__ __forceinline__ long long mass_base(const KernelParams& p, int b, int h) {
  return p.pattern_heads == 1 ? (static_cast<long long>(b) * p.heads + h) * p.nnz
                              : static_cast<long long>(b) * p.nnz;
}

}  // namespace sparvar::attention_cuda
