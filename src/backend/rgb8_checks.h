// The checks of Backend::image_to_rgb8, shared by the CPU and CUDA entry points so both reject the same calls with
// the same messages; they return where the op reads each channel (rgb8.h).
#pragma once

#include <string_view>

#include "backend/backend.h"
#include "backend/rgb8.h"

namespace sparvar {

// image F32 / BF16 / F16 [B, 3, H, W] (Nchw) or [B, H, W, C >= 3] (Nhwc), rgb U8 [B, H, W, 3], both on `device`
// (the backend named `backend`), rgb disjoint from image.
inline Rgb8Source check_image_to_rgb8(const Tensor& image, ImageLayout layout, const Tensor& rgb, Device device,
                                      std::string_view backend) {
  constexpr std::string_view op = "image_to_rgb8";
  SPARVAR_CHECK(image.defined(), "{}: image is missing (undefined tensor)", op);
  SPARVAR_CHECK(rgb.defined(), "{}: output is missing (undefined tensor)", op);
  SPARVAR_CHECK(image.device() == device, "{}: image {} is not on the {} backend", op, image.describe(), backend);
  SPARVAR_CHECK(rgb.device() == device, "{}: output {} is not on the {} backend", op, rgb.describe(), backend);
  SPARVAR_CHECK(image.dtype() == DType::F32 || image.dtype() == DType::BF16 || image.dtype() == DType::F16,
                "{}: image {} must be f32, bf16 or f16", op, image.describe());
  SPARVAR_CHECK(rgb.dtype() == DType::U8, "{}: output {} must be u8", op, rgb.describe());
  const bool nhwc = layout == ImageLayout::Nhwc;
  SPARVAR_CHECK(image.ndim() == 4 && (nhwc ? image.dim(3) >= 3 : image.dim(1) == 3), "{}: image {} must be {}", op,
                shape_string(image.shape()),
                nhwc ? "[B, H, W, C] with C >= 3 (channels last)" : "[B, 3, H, W] (NCHW)");
  const int64_t B = image.dim(0), H = image.dim(nhwc ? 1 : 2), W = image.dim(nhwc ? 2 : 3);
  SPARVAR_CHECK(rgb.shape() == Shape({B, H, W, 3}), "{}: output has shape {}, expected [{}, {}, {}, 3] (image {})", op,
                shape_string(rgb.shape()), B, H, W, shape_string(image.shape()));
  check_disjoint(image, rgb, op, "image");
  Rgb8Source s;
  s.images = B;
  s.pixels = H * W;
  s.channels = nhwc ? image.dim(3) : 3;
  s.pixel_stride = nhwc ? s.channels : 1;
  s.channel_stride = nhwc ? 1 : s.pixels;
  return s;
}

}  // namespace sparvar
