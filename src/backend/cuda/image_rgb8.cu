// image_to_rgb8: one thread per pixel reads its 3 channels (NCHW: three coalesced planes; channels last: the first
// 3 of its C) and writes its 3 bytes, with rgb8.h's arithmetic, so the bytes equal the CPU backend's. A few MB per
// image: memory-bound and far below the decoder's convolutions, so no vector accesses.
#include "backend/cuda/device_math.cuh"
#include "backend/rgb8.h"

namespace sparvar::cuda {

namespace {

constexpr int kThreads = 256;

template <typename T>
__global__ void image_to_rgb8_kernel(const T* __restrict__ image, uint8_t* __restrict__ rgb, Rgb8Source s) {
  const int64_t n = s.images * s.pixels;
  for (int64_t p = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; p < n; p += int64_t(gridDim.x) * blockDim.x) {
    const T* px = image + s.source_offset(p);
#pragma unroll
    for (int c = 0; c < 3; ++c) rgb[p * 3 + c] = image_value_to_rgb8(to_float(px[c * s.channel_stride]));
  }
}

template <typename T>
void launch_typed(const void* image, uint8_t* rgb, const Rgb8Source& s, cudaStream_t stream) {
  image_to_rgb8_kernel<T><<<grid_for(s.images * s.pixels, kThreads), kThreads, 0, stream>>>(
      static_cast<const T*>(image), rgb, s);
  CUDA_CHECK_LAUNCH();
}

}  // namespace

void launch_image_to_rgb8(DType dtype, const void* image, uint8_t* rgb, const Rgb8Source& s, cudaStream_t stream) {
  if (s.images * s.pixels == 0) return;
  switch (dtype) {
    case DType::F32: launch_typed<float>(image, rgb, s, stream); break;
    case DType::BF16: launch_typed<bf16>(image, rgb, s, stream); break;
    case DType::F16: launch_typed<__half>(image, rgb, s, stream); break;
    default: fail_dtype("image_to_rgb8", dtype);
  }
}

}  // namespace sparvar::cuda
