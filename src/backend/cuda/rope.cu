// 2-D RoPE as Infinity applies it, on interleaved pairs: (x[2i], x[2i+1]) of token n is rotated by the angle
// whose cos/sin are the F32 tables at [n, i]. One thread per pair; works in place.
#include "backend/cuda/device_math.cuh"

namespace sparvar::cuda {

namespace {
template <typename T>
__global__ void rope_kernel(const T* x, T* y, const float* __restrict__ cos_table, const float* __restrict__ sin_table,
                            int64_t pairs, int64_t half_d, int64_t tokens) {
  for (int64_t p = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; p < pairs; p += int64_t(gridDim.x) * blockDim.x) {
    const int64_t i = p % half_d;
    const int64_t n = (p / half_d) % tokens;
    float v[2];
    load_pack<T, 2>(x + 2 * p, v);
    const float c = cos_table[n * half_d + i], s = sin_table[n * half_d + i];
    const float out[2] = {c * v[0] - s * v[1], s * v[0] + c * v[1]};
    store_pack<T, 2>(y + 2 * p, out);
  }
}

}  // namespace

void launch_rope(DType dtype, const void* x, void* y, const float* cos, const float* sin, int64_t pairs,
                 int64_t half_d, int64_t tokens, cudaStream_t stream) {
  if (pairs == 0) return;
  dispatch_float(dtype, "rope", [&](auto tag) {
    using T = typename decltype(tag)::type;
    rope_kernel<T><<<grid_for(pairs, 256), 256, 0, stream>>>(static_cast<const T*>(x), static_cast<T*>(y), cos, sin,
                                                              pairs, half_d, tokens);
    CUDA_CHECK_LAUNCH();
  });
}

}  // namespace sparvar::cuda
