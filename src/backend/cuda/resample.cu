// Image resampling with torch.nn.functional.interpolate's semantics (align_corners=False): nearest
// (src = floor(dst * in / out)), bilinear (src = (dst + 0.5) * in / out - 0.5, clamped at 0), bicubic (same
// source coordinate unclamped, Keys kernel with A = -0.75, taps clamped to the border) and area (adaptive
// average pooling over [floor(i * in / out), ceil((i + 1) * in / out))). One thread per output element.
// Source coordinates use torch's fp32 arithmetic (scale = float(in) / out), as the CPU reference does.
#include "backend/cuda/device_math.cuh"

namespace sparvar::cuda {

namespace {

__device__ __forceinline__ int64_t clamp_index(int64_t i, int64_t n) { return i < 0 ? 0 : (i >= n ? n - 1 : i); }

// Keys cubic convolution weights for the taps at offsets -1, 0, 1, 2 from floor(src), t = src - floor(src).
__device__ __forceinline__ void cubic_weights(float t, float (&w)[4]) {
  constexpr float A = -0.75f;
  auto near = [](float x) { return ((A + 2.0f) * x - (A + 3.0f)) * x * x + 1.0f; };          // |x| <= 1
  auto far = [](float x) { return ((A * x - 5.0f * A) * x + 8.0f * A) * x - 4.0f * A; };      // 1 < |x| < 2
  w[0] = far(t + 1.0f);
  w[1] = near(t);
  w[2] = near(1.0f - t);
  w[3] = far(2.0f - t);
}

template <typename T, KernelResample kMode>
__global__ void resample_kernel(const T* __restrict__ x, T* __restrict__ y, ResampleGeometry g) {
  const int64_t n = g.planes * g.out_h * g.out_w;
  for (int64_t o = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; o < n; o += int64_t(gridDim.x) * blockDim.x) {
    const int64_t ox = o % g.out_w, oy = (o / g.out_w) % g.out_h, plane = o / (g.out_w * g.out_h);
    const T* xp = x + plane * g.in_h * g.in_w;
    float out = 0.0f;
    if constexpr (kMode == KernelResample::Nearest) {
      // torch's float arithmetic: min(floor(dst * float(in / out)), in - 1).
      const int64_t sy = min(static_cast<int64_t>(floorf(static_cast<float>(oy) * g.scale_h)), g.in_h - 1);
      const int64_t sx = min(static_cast<int64_t>(floorf(static_cast<float>(ox) * g.scale_w)), g.in_w - 1);
      out = to_float(xp[sy * g.in_w + sx]);
    } else if constexpr (kMode == KernelResample::Bilinear) {
      const float fy = fmaxf((oy + 0.5f) * g.scale_h - 0.5f, 0.0f), fx = fmaxf((ox + 0.5f) * g.scale_w - 0.5f, 0.0f);
      const int64_t y0 = static_cast<int64_t>(fy), x0 = static_cast<int64_t>(fx);
      const int64_t y1 = y0 + (y0 < g.in_h - 1 ? 1 : 0), x1 = x0 + (x0 < g.in_w - 1 ? 1 : 0);
      const float ly = fy - y0, lx = fx - x0;
      out = (1.0f - ly) * ((1.0f - lx) * to_float(xp[y0 * g.in_w + x0]) + lx * to_float(xp[y0 * g.in_w + x1])) +
            ly * ((1.0f - lx) * to_float(xp[y1 * g.in_w + x0]) + lx * to_float(xp[y1 * g.in_w + x1]));
    } else if constexpr (kMode == KernelResample::Bicubic) {
      const float fy = (oy + 0.5f) * g.scale_h - 0.5f, fx = (ox + 0.5f) * g.scale_w - 0.5f;
      const float iy = floorf(fy), ix = floorf(fx);
      float wy[4], wx[4];
      cubic_weights(fy - iy, wy);
      cubic_weights(fx - ix, wx);
#pragma unroll
      for (int a = 0; a < 4; ++a) {
        const int64_t yy = clamp_index(static_cast<int64_t>(iy) - 1 + a, g.in_h);
        float row = 0.0f;
#pragma unroll
        for (int b = 0; b < 4; ++b)
          row += wx[b] * to_float(xp[yy * g.in_w + clamp_index(static_cast<int64_t>(ix) - 1 + b, g.in_w)]);
        out += wy[a] * row;
      }
    } else {  // Area
      const int64_t y0 = oy * g.in_h / g.out_h, y1 = ((oy + 1) * g.in_h + g.out_h - 1) / g.out_h;
      const int64_t x0 = ox * g.in_w / g.out_w, x1 = ((ox + 1) * g.in_w + g.out_w - 1) / g.out_w;
      for (int64_t yy = y0; yy < y1; ++yy)
        for (int64_t xx = x0; xx < x1; ++xx) out += to_float(xp[yy * g.in_w + xx]);
      out /= static_cast<float>((y1 - y0) * (x1 - x0));
    }
    y[o] = from_float<T>(out);
  }
}

}  // namespace

void launch_resample(DType dtype, KernelResample mode, const void* x, void* y, const ResampleGeometry& g,
                     cudaStream_t stream) {
  const int64_t n = g.planes * g.out_h * g.out_w;
  if (n == 0) return;
  dispatch_float(dtype, "resample", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const auto* px = static_cast<const T*>(x);
    auto* py = static_cast<T*>(y);
    const unsigned grid = grid_for(n, 256);
    switch (mode) {
      case KernelResample::Nearest: resample_kernel<T, KernelResample::Nearest><<<grid, 256, 0, stream>>>(px, py, g); break;
      case KernelResample::Bilinear: resample_kernel<T, KernelResample::Bilinear><<<grid, 256, 0, stream>>>(px, py, g); break;
      case KernelResample::Bicubic: resample_kernel<T, KernelResample::Bicubic><<<grid, 256, 0, stream>>>(px, py, g); break;
      case KernelResample::Area: resample_kernel<T, KernelResample::Area><<<grid, 256, 0, stream>>>(px, py, g); break;
    }
    CUDA_CHECK_LAUNCH();
  });
}

}  // namespace sparvar::cuda
