// Kernels of the folded cross-attention (cross_attention_fold.cpp): the q bias against each text key, and the
// per-head softmax of the fp32 scores into probabilities of the model's dtype.
#include "backend/cuda/device_math.cuh"

namespace sparvar::cuda {

namespace {

// kb[h * Lp + j] = sum_d k[h, j, d] * bq[h * D + d] for j < length, -inf otherwise (padding keys included). One warp
// per (h, j).
template <typename T>
__global__ void fold_key_bias_kernel(const T* k, const T* bq, float* kb, int heads, int keys, int keys_padded,
                                     int dim, int length) {
  const int warp = static_cast<int>((blockIdx.x * blockDim.x + threadIdx.x) / 32), lane = threadIdx.x % 32;
  if (warp >= heads * keys_padded) return;
  const int h = warp / keys_padded, j = warp % keys_padded;
  float s = 0.f;
  if (j < length) {
    const T* kj = k + (static_cast<int64_t>(h) * keys + j) * dim;
    for (int d = lane; d < dim; d += 32) s += to_float(kj[d]) * to_float(bq[h * dim + d]);
  }
  s = warp_sum(s);
  if (lane == 0) kb[warp] = j < length ? s : -INFINITY;
}

// probs[r, h*Lp + j] = softmax_j(scale * (scores[r, h*Lp + j] + kb[b, h*Lp + j])): one warp per (row r, head h),
// rows r = b * tokens + n. A key masked by kb = -inf gets exactly 0; every row has a valid key (lengths >= 1).
template <typename T>
__global__ void head_softmax_kernel(const float* scores, const float* kb, T* probs, int64_t rows, int64_t tokens,
                                    int heads, int keys, float scale) {
  const int64_t warp = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
  const int lane = threadIdx.x % 32;
  if (warp >= rows * heads) return;
  const int64_t r = warp / heads;
  const int h = static_cast<int>(warp % heads);
  const int64_t cols = static_cast<int64_t>(heads) * keys;
  const float* s = scores + r * cols + static_cast<int64_t>(h) * keys;
  const float* bias = kb + (r / tokens) * cols + static_cast<int64_t>(h) * keys;
  T* p = probs + r * cols + static_cast<int64_t>(h) * keys;
  float mx = -INFINITY;
  for (int j = lane; j < keys; j += 32) mx = fmaxf(mx, scale * (s[j] + bias[j]));
  mx = warp_max(mx);
  float sum = 0.f;
  for (int j = lane; j < keys; j += 32) sum += expf(scale * (s[j] + bias[j]) - mx);
  const float inv = 1.f / warp_sum(sum);
  for (int j = lane; j < keys; j += 32) p[j] = from_float<T>(expf(scale * (s[j] + bias[j]) - mx) * inv);
}

constexpr int kThreads = 256;

unsigned warp_blocks(int64_t warps) { return static_cast<unsigned>((warps * 32 + kThreads - 1) / kThreads); }

}  // namespace

void launch_fold_key_bias(DType dtype, const void* k, const void* bq, float* kb, int heads, int keys, int keys_padded,
                          int dim, int length, cudaStream_t stream) {
  dispatch_float(dtype, "fold_cross_attention", [&](auto tag) {
    using T = typename decltype(tag)::type;
    fold_key_bias_kernel<T><<<warp_blocks(int64_t{heads} * keys_padded), kThreads, 0, stream>>>(
        static_cast<const T*>(k), static_cast<const T*>(bq), kb, heads, keys, keys_padded, dim, length);
    CUDA_CHECK_LAUNCH();
  });
}

void launch_head_softmax(DType dtype, const float* scores, const float* kb, void* probs, int64_t rows, int64_t tokens,
                         int heads, int keys, float scale, cudaStream_t stream) {
  if (rows == 0) return;
  dispatch_float(dtype, "folded_cross_attention", [&](auto tag) {
    using T = typename decltype(tag)::type;
    head_softmax_kernel<T><<<warp_blocks(rows * heads), kThreads, 0, stream>>>(scores, kb, static_cast<T*>(probs),
                                                                               rows, tokens, heads, keys, scale);
    CUDA_CHECK_LAUNCH();
  });
}

}  // namespace sparvar::cuda
