// Elementwise kernels: activation, add/mul with suffix broadcast, adaln_modulate, gated_residual, dtype
// conversion and the bias passes other ops use. Memory-bound: each thread moves 16 bytes per access (8 bf16 or
// 4 f32) when sizes and alignment allow, otherwise one element; grid-stride loops over a capped grid.
#include <initializer_list>

#include "backend/cuda/device_math.cuh"

namespace sparvar::cuda {

namespace {

constexpr int kThreads = 256;

template <typename S, typename D>
__global__ void convert_kernel(const S* __restrict__ src, D* __restrict__ dst, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    dst[i] = from_float<D>(to_float(src[i]));
}

template <typename T, int N>
__global__ void activation_kernel(const T* x, T* y, int64_t packs, KernelAct act) {
  for (int64_t p = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; p < packs; p += int64_t(gridDim.x) * blockDim.x) {
    float v[N];
    load_pack<T, N>(x + p * N, v);
#pragma unroll
    for (int i = 0; i < N; ++i) v[i] = apply_act(v[i], act);
    store_pack<T, N>(y + p * N, v);
  }
}

// y = a (op) b, b repeating with period nb (a multiple of N on the vector path). y may be a or b.
template <typename T, int N, bool kMul>
__global__ void broadcast_kernel(const T* a, const T* b, T* y, int64_t packs, int64_t nb) {
  for (int64_t p = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; p < packs; p += int64_t(gridDim.x) * blockDim.x) {
    float va[N], vb[N];
    load_pack<T, N>(a + p * N, va);
    load_pack<T, N>(b + (p * N) % nb, vb);
#pragma unroll
    for (int i = 0; i < N; ++i) va[i] = kMul ? va[i] * vb[i] : va[i] + vb[i];
    store_pack<T, N>(y + p * N, va);
  }
}

// x [B, N, C]; scale, shift [B, C]; C a multiple of N on the vector path.
template <typename T, int N>
__global__ void adaln_kernel(const T* x, const T* __restrict__ scale, const T* __restrict__ shift, T* y,
                             int64_t packs, int64_t tokens_x_c, int64_t c) {
  for (int64_t p = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; p < packs; p += int64_t(gridDim.x) * blockDim.x) {
    const int64_t i = p * N;
    const int64_t mod = (i / tokens_x_c) * c + i % c;
    float vx[N], vs[N], vt[N];
    load_pack<T, N>(x + i, vx);
    load_pack<T, N>(scale + mod, vs);
    load_pack<T, N>(shift + mod, vt);
#pragma unroll
    for (int k = 0; k < N; ++k) vx[k] = vx[k] * (1.0f + vs[k]) + vt[k];
    store_pack<T, N>(y + i, vx);
  }
}

// x [B, N, C] += gate [B, C] * y [B, N, C]; C a multiple of N on the vector path. y may be x.
template <typename T, int N>
__global__ void gated_residual_kernel(T* x, const T* __restrict__ gate, const T* y, int64_t packs,
                                      int64_t tokens_x_c, int64_t c) {
  for (int64_t p = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; p < packs; p += int64_t(gridDim.x) * blockDim.x) {
    const int64_t i = p * N;
    float vx[N], vg[N], vy[N];
    load_pack<T, N>(x + i, vx);
    load_pack<T, N>(gate + (i / tokens_x_c) * c + i % c, vg);
    load_pack<T, N>(y + i, vy);
#pragma unroll
    for (int k = 0; k < N; ++k) vx[k] += vg[k] * vy[k];
    store_pack<T, N>(x + i, vx);
  }
}

template <typename T>
__global__ void bias_activation_kernel(T* y, const T* __restrict__ bias, int64_t n, int64_t cols, KernelAct act) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    float v = to_float(y[i]);
    if (bias) v += to_float(bias[i % cols]);
    y[i] = from_float<T>(apply_act(v, act));
  }
}

template <typename T>
__global__ void channel_bias_kernel(T* y, const T* __restrict__ bias, int64_t n, int64_t channels, int64_t plane) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    y[i] = from_float<T>(to_float(y[i]) + to_float(bias[(i / plane) % channels]));
}

// 16-byte packs are usable when the broadcast period is whole packs and every pointer is 16-byte aligned.
template <typename T>
bool can_vectorise(int64_t period, std::initializer_list<const void*> ptrs) {
  if (period % kVec16<T> != 0) return false;
  for (const void* p : ptrs)
    if (!aligned_to(p, 16)) return false;
  return true;
}

template <typename D>
void convert_from(const void* src, DType from, D* dst, int64_t n, cudaStream_t stream) {
  const unsigned grid = grid_for(n, kThreads);
  switch (from) {
    case DType::F32: convert_kernel<<<grid, kThreads, 0, stream>>>(static_cast<const float*>(src), dst, n); break;
    case DType::BF16: convert_kernel<<<grid, kThreads, 0, stream>>>(static_cast<const bf16*>(src), dst, n); break;
    case DType::F16: convert_kernel<<<grid, kThreads, 0, stream>>>(static_cast<const __half*>(src), dst, n); break;
    default: fail_dtype("convert (source)", from);
  }
  CUDA_CHECK_LAUNCH();
}

}  // namespace

void launch_convert(const void* src, DType from, void* dst, DType to, int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  switch (to) {
    case DType::F32: convert_from(src, from, static_cast<float*>(dst), n, stream); break;
    case DType::BF16: convert_from(src, from, static_cast<bf16*>(dst), n, stream); break;
    case DType::F16: convert_from(src, from, static_cast<__half*>(dst), n, stream); break;
    default: fail_dtype("convert (destination)", to);
  }
}

void launch_activation(DType dtype, const void* x, void* y, int64_t n, KernelAct act, cudaStream_t stream) {
  if (n == 0) return;
  dispatch_float(dtype, "activation", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* px = static_cast<const T*>(x);
    T* py = static_cast<T*>(y);
    if (can_vectorise<T>(n, {px, py})) {
      constexpr int N = kVec16<T>;
      activation_kernel<T, N><<<grid_for(n / N, kThreads), kThreads, 0, stream>>>(px, py, n / N, act);
    } else {
      activation_kernel<T, 1><<<grid_for(n, kThreads), kThreads, 0, stream>>>(px, py, n, act);
    }
    CUDA_CHECK_LAUNCH();
  });
}

void launch_broadcast(DType dtype, bool multiply, const void* a, const void* b, void* y, int64_t n, int64_t nb,
                      cudaStream_t stream) {
  if (n == 0) return;
  dispatch_float(dtype, multiply ? "mul" : "add", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* pa = static_cast<const T*>(a);
    const T* pb = static_cast<const T*>(b);
    T* py = static_cast<T*>(y);
    constexpr int V = kVec16<T>;
    const bool vec = can_vectorise<T>(nb, {pa, pb, py});
    const int64_t packs = vec ? n / V : n;
    const unsigned grid = grid_for(packs, kThreads);
    if (vec && multiply) broadcast_kernel<T, V, true><<<grid, kThreads, 0, stream>>>(pa, pb, py, packs, nb);
    else if (vec) broadcast_kernel<T, V, false><<<grid, kThreads, 0, stream>>>(pa, pb, py, packs, nb);
    else if (multiply) broadcast_kernel<T, 1, true><<<grid, kThreads, 0, stream>>>(pa, pb, py, packs, nb);
    else broadcast_kernel<T, 1, false><<<grid, kThreads, 0, stream>>>(pa, pb, py, packs, nb);
    CUDA_CHECK_LAUNCH();
  });
}

void launch_adaln(DType dtype, const void* x, const void* scale, const void* shift, void* y, int64_t n,
                  int64_t tokens, int64_t channels, cudaStream_t stream) {
  if (n == 0) return;
  dispatch_float(dtype, "adaln_modulate", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* px = static_cast<const T*>(x);
    const T* ps = static_cast<const T*>(scale);
    const T* pt = static_cast<const T*>(shift);
    T* py = static_cast<T*>(y);
    if (can_vectorise<T>(channels, {px, ps, pt, py})) {
      constexpr int V = kVec16<T>;
      adaln_kernel<T, V><<<grid_for(n / V, kThreads), kThreads, 0, stream>>>(px, ps, pt, py, n / V,
                                                                              tokens * channels, channels);
    } else {
      adaln_kernel<T, 1><<<grid_for(n, kThreads), kThreads, 0, stream>>>(px, ps, pt, py, n, tokens * channels, channels);
    }
    CUDA_CHECK_LAUNCH();
  });
}

void launch_gated_residual(DType dtype, void* x, const void* gate, const void* y, int64_t n, int64_t tokens,
                           int64_t channels, cudaStream_t stream) {
  if (n == 0) return;
  dispatch_float(dtype, "gated_residual", [&](auto tag) {
    using T = typename decltype(tag)::type;
    T* px = static_cast<T*>(x);
    const T* pg = static_cast<const T*>(gate);
    const T* py = static_cast<const T*>(y);
    if (can_vectorise<T>(channels, {px, pg, py})) {
      constexpr int V = kVec16<T>;
      gated_residual_kernel<T, V><<<grid_for(n / V, kThreads), kThreads, 0, stream>>>(px, pg, py, n / V,
                                                                                      tokens * channels, channels);
    } else {
      gated_residual_kernel<T, 1><<<grid_for(n, kThreads), kThreads, 0, stream>>>(px, pg, py, n, tokens * channels,
                                                                                  channels);
    }
    CUDA_CHECK_LAUNCH();
  });
}

void launch_bias_activation(DType dtype, void* y, const void* bias, int64_t rows, int64_t cols, KernelAct act,
                            cudaStream_t stream) {
  const int64_t n = rows * cols;
  if (n == 0 || (!bias && act == KernelAct::None)) return;
  dispatch_float(dtype, "bias_activation", [&](auto tag) {
    using T = typename decltype(tag)::type;
    bias_activation_kernel<T><<<grid_for(n, kThreads), kThreads, 0, stream>>>(static_cast<T*>(y),
                                                                               static_cast<const T*>(bias), n, cols, act);
    CUDA_CHECK_LAUNCH();
  });
}

void launch_channel_bias(DType dtype, void* y, const void* bias, int64_t batch, int64_t channels, int64_t plane,
                         cudaStream_t stream) {
  const int64_t n = batch * channels * plane;
  if (n == 0) return;
  dispatch_float(dtype, "channel_bias", [&](auto tag) {
    using T = typename decltype(tag)::type;
    channel_bias_kernel<T><<<grid_for(n, kThreads), kThreads, 0, stream>>>(
        static_cast<T*>(y), static_cast<const T*>(bias), n, channels, plane);
    CUDA_CHECK_LAUNCH();
  });
}

}  // namespace sparvar::cuda
