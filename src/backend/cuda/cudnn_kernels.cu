// The kernels of cudnn_kernels.h.
#include <algorithm>

#include "backend/cuda/cuda_check.h"
#include "backend/cuda/cudnn_kernels.h"

namespace sparvar::cuda {

namespace {

constexpr int kThreads = 256;

// One thread per 16-byte chunk (8 bf16) of the destination K and V; block 0 also writes the sequence lengths.
__global__ void sdpa_prepare_kernel(const SdpaPrepareArgs a) {
  if (blockIdx.x == 0) {
    for (int64_t b = threadIdx.x; b < a.batch; b += blockDim.x) {
      a.seq_q[b] = a.nq;
      a.seq_kv[b] = a.lengths[b];
    }
  }
  if (a.k_out == nullptr) return;
  const int64_t chunks_per_row = a.d / 8;
  const int64_t per_tensor = a.batch * a.heads * a.rows * chunks_per_row;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < 2 * per_tensor;
       i += int64_t(gridDim.x) * blockDim.x) {
    const bool is_v = i >= per_tensor;
    const int64_t j = is_v ? i - per_tensor : i;
    const int64_t chunk = j % chunks_per_row;
    const int64_t row = (j / chunks_per_row) % a.rows;
    const int64_t bh = j / (chunks_per_row * a.rows);  // b * heads + h
    const int64_t b = bh / a.heads;
    uint4 value = make_uint4(0u, 0u, 0u, 0u);
    if (row < a.lengths[b]) {
      const auto* src = static_cast<const uint4*>(is_v ? a.v : a.k);
      value = src[(bh * a.src_rows + row) * chunks_per_row + chunk];
    }
    static_cast<uint4*>(is_v ? a.v_out : a.k_out)[j] = value;
  }
}

}  // namespace

void launch_sdpa_prepare(const SdpaPrepareArgs& args, cudaStream_t stream) {
  const int64_t work = args.k_out ? 2 * args.batch * args.heads * args.rows * (args.d / 8) : args.batch;
  const int64_t blocks = std::clamp<int64_t>((work + kThreads - 1) / kThreads, 1, 4096);
  sdpa_prepare_kernel<<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(args);
  CUDA_CHECK_LAUNCH();
}

}  // namespace sparvar::cuda
