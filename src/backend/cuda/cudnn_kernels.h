// The small kernels around cuDNN's SDPA (cudnn_kernels.cu), kept free of fmt and of the cuDNN frontend like
// kernels.h. See CudnnRunner::attention for why they exist.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "backend/cuda/attention_kernel.h"

namespace sparvar::cuda {

// seq_q[b] = nq and seq_kv[b] = lengths[b] for b < batch (cuDNN's padding-mask inputs, written on the stream so
// that no host synchronisation is needed). When k_out is set, also copies K and V [batch, heads, src_rows, d] (bf16,
// 16-byte aligned, d a multiple of 8) into k_out / v_out [batch, heads, rows, d] with rows >= lengths[b] zeroed.
struct SdpaPrepareArgs {
  const void* k = nullptr;
  const void* v = nullptr;
  void* k_out = nullptr;
  void* v_out = nullptr;
  int64_t batch = 0, heads = 0, rows = 0, src_rows = 0, d = 0;
  int32_t* seq_q = nullptr;
  int32_t* seq_kv = nullptr;
  int32_t nq = 0;
  int32_t lengths[kMaxKvBatch] = {};
};
void launch_sdpa_prepare(const SdpaPrepareArgs& args, cudaStream_t stream);

}  // namespace sparvar::cuda
