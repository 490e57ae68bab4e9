// The kernels of conv2d_nhwc's own path (conv2d_nhwc.cpp): im2col for channels-last input, whose column matrix
// [pixels, (ky, kx, ci)] is the row-major left operand of one cuBLASLt GEMM against w [Cout, kh * kw * Cin]; and
// the epilogue pass y += bias + residual for whatever cuDNN's graph did not fuse.
#include "backend/cuda/device_math.cuh"
#include "backend/cuda/nhwc_kernels.h"

namespace sparvar::cuda {

namespace {

// One thread per V consecutive channels of one tap of one output pixel (V divides cin).
template <typename T, int V>
__global__ void im2col_nhwc_kernel(const T* __restrict__ x, T* __restrict__ cols, ConvNhwcGeometry g, int64_t p0,
                                   int64_t rows) {
  const int64_t cin_vectors = g.cin / V, row_vectors = g.kh * g.kw * cin_vectors, plane = g.out_h * g.out_w;
  const int64_t n = rows * row_vectors;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t p = p0 + i / row_vectors, k = i % row_vectors;
    const int64_t tap = k / cin_vectors, ci = (k % cin_vectors) * V;
    const int64_t img = p / plane, oy = (p % plane) / g.out_w, ox = p % g.out_w;
    const int64_t iy = oy * g.stride - g.pad + tap / g.kw, ix = ox * g.stride - g.pad + tap % g.kw;
    Pack<T, V> v;
    if (iy >= 0 && iy < g.h && ix >= 0 && ix < g.w) {
      v = *reinterpret_cast<const Pack<T, V>*>(x + ((img * g.h + iy) * g.w + ix) * g.cin + ci);
    } else {
#pragma unroll
      for (int j = 0; j < V; ++j) v.v[j] = from_float<T>(0.0f);
    }
    *reinterpret_cast<Pack<T, V>*>(cols + i * V) = v;
  }
}

template <typename T, int V>
__global__ void conv_epilogue_nhwc_kernel(T* __restrict__ y, const T* __restrict__ bias,
                                          const T* __restrict__ residual, int64_t pixels, int64_t channels) {
  const int64_t vectors = channels / V, n = pixels * vectors;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    float v[V], b[V], r[V];
    load_pack<T, V>(y + i * V, v);
    if (bias) load_pack<T, V>(bias + (i % vectors) * V, b);
    if (residual) load_pack<T, V>(residual + i * V, r);
#pragma unroll
    for (int j = 0; j < V; ++j) {
      if (bias) v[j] += b[j];  // the order of the NCHW decoder: bias first, then the skip connection
      if (residual) v[j] += r[j];
    }
    store_pack<T, V>(y + i * V, v);
  }
}

}  // namespace

void launch_im2col_nhwc(DType dtype, const void* x, void* cols, const ConvNhwcGeometry& g, int64_t p0, int64_t rows,
                        cudaStream_t stream) {
  if (rows == 0 || g.cin == 0) return;
  dispatch_float(dtype, "conv2d_nhwc im2col", [&](auto tag) {
    using T = typename decltype(tag)::type;
    constexpr int V = kVec16<T>;
    const auto* px = static_cast<const T*>(x);
    auto* pc = static_cast<T*>(cols);
    if (g.cin % V == 0 && aligned_to(x, 16) && aligned_to(cols, 16)) {
      im2col_nhwc_kernel<T, V><<<grid_for(rows * g.kh * g.kw * g.cin / V, 256), 256, 0, stream>>>(px, pc, g, p0, rows);
    } else {
      im2col_nhwc_kernel<T, 1><<<grid_for(rows * g.kh * g.kw * g.cin, 256), 256, 0, stream>>>(px, pc, g, p0, rows);
    }
    CUDA_CHECK_LAUNCH();
  });
}

void launch_conv_epilogue_nhwc(DType dtype, void* y, const void* bias, const void* residual, int64_t pixels,
                               int64_t channels, cudaStream_t stream) {
  if (pixels == 0 || channels == 0 || (!bias && !residual)) return;
  dispatch_float(dtype, "conv2d_nhwc epilogue", [&](auto tag) {
    using T = typename decltype(tag)::type;
    constexpr int V = kVec16<T>;
    auto* py = static_cast<T*>(y);
    const auto* pb = static_cast<const T*>(bias);
    const auto* pr = static_cast<const T*>(residual);
    const bool vec = channels % V == 0 && aligned_to(y, 16) && (!bias || aligned_to(bias, 16)) &&
                     (!residual || aligned_to(residual, 16));
    if (vec) {
      conv_epilogue_nhwc_kernel<T, V><<<grid_for(pixels * channels / V, 256), 256, 0, stream>>>(py, pb, pr, pixels,
                                                                                                  channels);
    } else {
      conv_epilogue_nhwc_kernel<T, 1><<<grid_for(pixels * channels, 256), 256, 0, stream>>>(py, pb, pr, pixels,
                                                                                              channels);
    }
    CUDA_CHECK_LAUNCH();
  });
}

}  // namespace sparvar::cuda
