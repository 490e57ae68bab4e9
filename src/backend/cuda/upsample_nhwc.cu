// upsample_nearest_nhwc: a copy kernel. One block per output row (grid-stride); its threads walk the row in units
// of up to 16 bytes (the widest that divides a pixel's bytes and both pointers' alignment), so reads and writes are
// coalesced and each source row is read from L1/L2 fx times. Within a row the index math is 32-bit.
#include <algorithm>

#include "backend/cuda/device_math.cuh"
#include "backend/cuda/nhwc_kernels.h"

namespace sparvar::cuda {

namespace {

struct UpsampleGeometry {
  int64_t rows_out, h, out_h;  // rows_out = images * out_h
  uint32_t w, fx, units;       // units per pixel
  int64_t fy;
};

template <typename U>
__global__ void upsample_nearest_nhwc_kernel(const U* __restrict__ x, U* __restrict__ y, UpsampleGeometry g) {
  const uint32_t row_units = g.w * g.fx * g.units;
  for (int64_t row = blockIdx.x; row < g.rows_out; row += gridDim.x) {  // row = image * out_h + i
    const int64_t image = row / g.out_h, i = row % g.out_h;
    const U* src = x + (image * g.h + i / g.fy) * static_cast<int64_t>(g.w) * g.units;
    U* dst = y + row * static_cast<int64_t>(row_units);
    for (uint32_t k = threadIdx.x; k < row_units; k += blockDim.x) {
      const uint32_t j = k / g.units, u = k - j * g.units;
      dst[k] = src[(j / g.fx) * g.units + u];
    }
  }
}

template <typename U>
void launch_with_unit(const void* x, void* y, UpsampleGeometry g, cudaStream_t stream) {
  const auto blocks = static_cast<unsigned>(std::min<int64_t>(g.rows_out, 65535LL * 16));
  upsample_nearest_nhwc_kernel<U><<<blocks, 256, 0, stream>>>(static_cast<const U*>(x), static_cast<U*>(y), g);
  CUDA_CHECK_LAUNCH();
}

}  // namespace

void launch_upsample_nearest_nhwc(size_t esize, const void* x, void* y, int64_t images, int64_t h, int64_t w,
                                  int64_t channels, int64_t fy, int64_t fx, cudaStream_t stream) {
  if (images == 0 || h == 0 || w == 0 || channels == 0) return;
  const size_t pixel_bytes = esize * static_cast<size_t>(channels);
  size_t unit = 16;
  while (unit > 1 && (pixel_bytes % unit != 0 || !aligned_to(x, unit) || !aligned_to(y, unit))) unit >>= 1;
  UpsampleGeometry g{images * h * fy, h, h * fy, static_cast<uint32_t>(w), static_cast<uint32_t>(fx),
                     static_cast<uint32_t>(pixel_bytes / unit), fy};
  switch (unit) {
    case 16: launch_with_unit<uint4>(x, y, g, stream); break;
    case 8: launch_with_unit<uint2>(x, y, g, stream); break;
    case 4: launch_with_unit<uint32_t>(x, y, g, stream); break;
    case 2: launch_with_unit<uint16_t>(x, y, g, stream); break;
    default: launch_with_unit<uint8_t>(x, y, g, stream); break;
  }
}

}  // namespace sparvar::cuda
