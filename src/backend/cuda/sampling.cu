// Infinity's bitwise sampling and bits -> codes on the GPU, so a scale's logits and bits never visit the host.
// sample_bits: one thread per bit; the arithmetic is core/bit_sampling.h's (explicitly rounded, own exp) and the
// uniforms are core/philox.h's, so the bits equal the CPU backend's and the host sampler's for the same logits.
#include "backend/cuda/device_math.cuh"
#include "core/bit_sampling.h"

namespace sparvar::cuda {

namespace {

constexpr int kThreads = 256;

template <typename T>
__global__ void sample_bits_kernel(const T* __restrict__ raw, const float* __restrict__ uniforms,
                                   uint8_t* __restrict__ bits, float* __restrict__ logits, SampleArgs a) {
  const int64_t count = a.batch * a.tokens * a.bits;
  const uint64_t seed = a.seed_ptr ? *a.seed_ptr : a.seed;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < count; i += int64_t(gridDim.x) * blockDim.x) {
    // Element i = (b, n, j) of [B, N, D]; its logit pair is at 2i of [B, N, 2D], the unconditional one 2 * count on.
    float l[2];
#pragma unroll
    for (int k = 0; k < 2; ++k) {
      const float cond = to_float(raw[2 * i + k]);
      l[k] = a.guided ? bitsample::guided_logit(cond, to_float(raw[2 * count + 2 * i + k]), a.tau, a.cfg)
                      : bitsample::scaled_logit(cond, a.tau);
    }
    if (logits) {
      logits[2 * i] = l[0];
      logits[2 * i + 1] = l[1];
    }
    if (bits) {
      const float u = uniforms ? uniforms[i] : uniform_float(seed, a.stream, static_cast<uint64_t>(i));
      bits[i] = bitsample::sample(bitsample::prob_zero(l[0], l[1], a.top_k, a.top_p), u);
    }
  }
}

// One thread per code: codes[b, c, Y, X] = bit (b, token (Y / p, X / p), channel c p^2 + (Y % p) p + X % p).
__global__ void bits_to_codes_kernel(const uint8_t* __restrict__ bits, float* __restrict__ codes, int64_t batch,
                                     int64_t d, int64_t h, int64_t w, int p, float zero, float one) {
  const int64_t H = h * p, W = w * p, total = batch * d * H * W, D = d * p * p;
  for (int64_t o = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; o < total; o += int64_t(gridDim.x) * blockDim.x) {
    const int64_t X = o % W, Y = (o / W) % H, c = (o / (W * H)) % d, b = o / (W * H * d);
    const int64_t token = b * h * w + (Y / p) * w + X / p;
    codes[o] = bits[token * D + c * p * p + (Y % p) * p + X % p] ? one : zero;
  }
}

}  // namespace

void launch_sample_bits(DType dtype, const void* raw, const float* uniforms, uint8_t* bits, float* logits,
                        const SampleArgs& a, cudaStream_t stream) {
  const int64_t count = a.batch * a.tokens * a.bits;
  if (count == 0) return;
  dispatch_float(dtype, "sample_bits", [&](auto tag) {
    using T = typename decltype(tag)::type;
    sample_bits_kernel<T><<<grid_for(count, kThreads), kThreads, 0, stream>>>(static_cast<const T*>(raw), uniforms,
                                                                               bits, logits, a);
    CUDA_CHECK_LAUNCH();
  });
}

void launch_bits_to_codes(const uint8_t* bits, float* codes, int64_t batch, int64_t d, int64_t h, int64_t w,
                          int patch, float zero, float one, cudaStream_t stream) {
  const int64_t total = batch * d * h * w * patch * patch;
  if (total == 0) return;
  bits_to_codes_kernel<<<grid_for(total, kThreads), kThreads, 0, stream>>>(bits, codes, batch, d, h, w, patch, zero,
                                                                           one);
  CUDA_CHECK_LAUNCH();
}

}  // namespace sparvar::cuda
