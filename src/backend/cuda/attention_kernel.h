// Dense attention's kernel interface (free of fmt, see kernels.h). The visibility rule, shared by the host-side
// validation and both kernels: query row r of batch item b sees keys [0, min(k_end(r), kv_len(b))), where k_end
// comes from the ScaleMask (Nk without one). Small enough to travel by value as a kernel parameter (< 4 KB).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "core/dtype.h"

namespace sparvar::cuda {

constexpr int kMaxMaskScales = 64;
constexpr int kMaxKvBatch = 256;
constexpr int kMaxHeadDim = 256;

struct AttentionVisibility {
  int num_scales = 0;  // 0: no scale mask
  int has_kv_lengths = 0;
  int64_t nk = 0;
  int64_t q_ends[kMaxMaskScales];
  int64_t k_ends[kMaxMaskScales];
  int32_t kv_lengths[kMaxKvBatch];

  // Keys [0, end) are visible to query row `row` of batch item `b`.
  __host__ __device__ int64_t visible_end(int64_t row, int64_t b) const {
    int64_t end = nk;
    for (int s = 0; s < num_scales; ++s) {
      if (row < q_ends[s]) {
        end = k_ends[s];
        break;
      }
    }
    if (has_kv_lengths && kv_lengths[b] < end) end = kv_lengths[b];
    return end;
  }
};

struct AttentionArgs {
  const void* q;  // [B, H, Nq, D], or [B, Nq, H, D] when q_tokens_major
  const void* k;  // [B, H, Nk, D]
  const void* v;  // [B, H, Nk, D]
  void* o;        // [B, H, Nq, D], or [B, Nq, H, D] when o_tokens_major
  int64_t heads, nq, nk;
  int d;             // <= kMaxHeadDim
  float scale_log2;  // softmax_scale * log2(e): the kernels exponentiate with exp2
  bool q_tokens_major = false, o_tokens_major = false;

  // Element offset of (batch * heads + head) bh's first q or o row, and the distance between its rows.
  __host__ __device__ int64_t row_base(int64_t bh, bool tokens_major) const {
    return tokens_major ? ((bh / heads) * nq * heads + bh % heads) * d : bh * nq * d;
  }
  __host__ __device__ int64_t row_stride(bool tokens_major) const { return tokens_major ? heads * d : d; }
};

// The tensor-core kernels for bf16 with D = 64 or 128 and 16-byte aligned tensors, else the generic one. Among the
// tensor-core kernels, the short-key one (attention_short.cu) where it fits and `short_keys` allows it, else the
// flash kernel (attention_dense.cu).
void launch_dense_attention(DType dtype, const AttentionArgs& args, const AttentionVisibility& vis, int64_t batch_heads,
                            bool short_keys, cudaStream_t stream);

// Whether the short-key kernel takes a bf16 problem with 16-byte aligned tensors: D = 64 or 128, no ScaleMask,
// and every batch item's visible keys (Nk or its kv_length) fit one 64-key tile.
bool short_key_attention_fits(const AttentionArgs& args, const AttentionVisibility& vis, int64_t batch_heads);
void launch_short_key_attention(const AttentionArgs& args, const AttentionVisibility& vis, int64_t batch_heads,
                                cudaStream_t stream);

}  // namespace sparvar::cuda
