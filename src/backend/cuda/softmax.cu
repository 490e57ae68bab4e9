// Softmax over the last dimension: one block per row, three passes (max, sum of exp, write), fp32 throughout.
#include "backend/cuda/device_math.cuh"

namespace sparvar::cuda {

namespace {
template <typename T, int N>
__global__ void softmax_kernel(const T* x, T* y, int64_t cols) {
  __shared__ float scratch[32];
  const T* xr = x + blockIdx.x * cols;
  T* yr = y + blockIdx.x * cols;
  const int64_t step = int64_t(blockDim.x) * N;
  float mx = -INFINITY;
  for (int64_t c = threadIdx.x * N; c < cols; c += step) {
    float v[N];
    load_pack<T, N>(xr + c, v);
#pragma unroll
    for (int i = 0; i < N; ++i) mx = fmaxf(mx, v[i]);
  }
  mx = block_max(mx, scratch);
  float sum = 0.0f;
  for (int64_t c = threadIdx.x * N; c < cols; c += step) {
    float v[N];
    load_pack<T, N>(xr + c, v);
#pragma unroll
    for (int i = 0; i < N; ++i) sum += expf(v[i] - mx);
  }
  const float inv = 1.0f / block_sum(sum, scratch);
  for (int64_t c = threadIdx.x * N; c < cols; c += step) {
    float v[N];
    load_pack<T, N>(xr + c, v);
#pragma unroll
    for (int i = 0; i < N; ++i) v[i] = expf(v[i] - mx) * inv;
    store_pack<T, N>(yr + c, v);
  }
}
}  // namespace

void launch_softmax(DType dtype, const void* x, void* y, int64_t rows, int64_t cols, cudaStream_t stream) {
  if (rows == 0 || cols == 0) return;
  dispatch_float(dtype, "softmax", [&](auto tag) {
    using T = typename decltype(tag)::type;
    constexpr int V = kVec16<T>;
    const bool vec = cols % V == 0 && aligned_to(x, 16) && aligned_to(y, 16);
    int64_t threads = (cols / (vec ? V : 1) + 31) / 32 * 32;
    threads = threads < 32 ? 32 : (threads > 512 ? 512 : threads);
    const auto* px = static_cast<const T*>(x);
    auto* py = static_cast<T*>(y);
    if (vec) softmax_kernel<T, V><<<static_cast<unsigned>(rows), static_cast<unsigned>(threads), 0, stream>>>(px, py, cols);
    else softmax_kernel<T, 1><<<static_cast<unsigned>(rows), static_cast<unsigned>(threads), 0, stream>>>(px, py, cols);
    CUDA_CHECK_LAUNCH();
  });
}

}  // namespace sparvar::cuda
