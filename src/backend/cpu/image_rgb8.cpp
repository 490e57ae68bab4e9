// image_to_rgb8: rgb8.h's arithmetic per value. A bf16 / f16 image (a host tensor: the CPU backend stores none) is
// widened to f32 first, exactly, as download() would.
#include "backend/cpu/cpu_backend.h"
#include "backend/rgb8_checks.h"

namespace sparvar::cpu {

void CpuBackend::image_to_rgb8(const Tensor& image, ImageLayout layout, Tensor& rgb) {
  const Rgb8Source s = check_image_to_rgb8(image, layout, rgb, Device::CPU, "cpu");
  if (rgb.numel() == 0) return;
  const Tensor f32 = image.dtype() == DType::F32 ? image : image.to_dtype(DType::F32);
  const float* src = f32.data_as<float>();
  auto* dst = rgb.data_as<uint8_t>();
  pool_.parallel_for(0, s.images * s.pixels, 16384, [&](int64_t lo, int64_t hi) {
    for (int64_t p = lo; p < hi; ++p) {
      const float* px = src + s.source_offset(p);
      for (int64_t c = 0; c < 3; ++c) dst[p * 3 + c] = image_value_to_rgb8(px[c * s.channel_stride]);
    }
  });
}

}  // namespace sparvar::cpu
