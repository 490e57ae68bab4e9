// Backend::image_to_rgb8's arithmetic and where it reads each channel, shared by the CPU loop and the CUDA kernel so
// both write the same bytes. Free of fmt and core/tensor.h: nvcc compiles it too.
#pragma once

#include <cstdint>

#include "core/philox.h"  // SPARVAR_HD

namespace sparvar {

// Channel c of pixel p (of `pixels`, all images in a row) of the float image lies at
// source_offset(p) + c * channel_stride: NCHW [B, 3, H, W] has pixel_stride 1 and channel_stride H * W,
// channels-last [B, H, W, C] has pixel_stride C and channel_stride 1.
struct Rgb8Source {
  int64_t images = 0, pixels = 0;  // pixels per image (H * W)
  int64_t channels = 0;            // per image: 3 (NCHW) or C (channels last)
  int64_t pixel_stride = 0, channel_stride = 0;

  SPARVAR_HD int64_t source_offset(int64_t p) const {
    const int64_t image = p / pixels;
    return image * pixels * channels + (p - image * pixels) * pixel_stride;
  }
};

// What image_to_host's clamp and to_uint8_rgb (models/bsq_vae/decoder.h) give for one value, in fp32:
// std::clamp(v, -1, 1) (its comparisons, which let NaN through), then (v + 1) / 2 * 255 truncated. No product feeds
// a sum, so nvcc has nothing to contract into an FMA, and / 2 is exact. NaN gives 0: converting it to an integer is
// undefined in C++ (x86 gives 0 there too).
SPARVAR_HD inline uint8_t image_value_to_rgb8(float v) {
  const float clamped = v < -1.0f ? -1.0f : (1.0f < v ? 1.0f : v);
  const float scaled = (clamped + 1.0f) / 2.0f * 255.0f;  // [0, 255] or NaN
  return scaled >= 0.0f ? static_cast<uint8_t>(scaled) : static_cast<uint8_t>(0);
}

}  // namespace sparvar
