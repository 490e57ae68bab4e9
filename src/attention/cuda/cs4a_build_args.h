// Arguments of the GPU CS4A builder's kernels (cs4a_kernels.cuh): device pointers and the plan's sizes
// (cs4a_plan.h). Plain data, no CUDA header: the CPU emulation test includes it too.
#pragma once

#include <cstdint>

namespace sparvar::attn_cuda {

constexpr int kCs4aMaxScales = 8;  // later scales one launch builds (Infinity has at most 3 after k_d)

struct Cs4aScaleArgs {
  int num_q_blocks, num_k_blocks, words;
  const int32_t* decision_row;              // [nq]
  const int32_t* rows_by_decision_offsets;  // [nq_d + 1]
  const int32_t* rows_by_decision;          // [nq]
  const uint64_t* cover;                    // [(nk_d - decision_first_block) * words]
  const uint64_t* own;                      // [nq * words] or null
  uint64_t* expanded;                       // scratch [heads * nq_d * words]
  int32_t* lengths;                         // scratch [heads * nq]
  int32_t* row_offsets;                     // out [heads * nq + 1]
  int32_t* col_blocks;                      // out [capacity]
  int32_t capacity;                         // the plan's nnz_bound
};

struct Cs4aBuildArgs {
  const float* mass;  // [batch, heads, nq_d, nk_d]
  int batch, heads;
  int num_q_blocks, num_k_blocks, words;  // decision scale
  int decision_first_block;
  uint64_t tau_fixed;
  int cap;
  const uint64_t* forced;  // [nq_d * words]
  uint64_t* selected;      // out [heads * nq_d * words]: the decision rows (forced | chosen)
  unsigned int* bad_rows;  // [1], accumulated over builds: decision rows whose mass is not shares
  // Mapped pinned host memory [2], written by the write kernel (no copy in the stream): [0] = *bad_rows as it
  // stands after this build's selection; [1] = 1 once a pattern overflowed its capacity (sticky).
  volatile unsigned int* host_status;
  int num_scales;
  Cs4aScaleArgs scales[kCs4aMaxScales];
};

}  // namespace sparvar::attn_cuda
