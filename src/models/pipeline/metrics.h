// Image similarity of two uint8 RGB images of the same size (HWC, 3 channels), to measure how far a sparse
// attention mode drifts from the dense image.
//   PSNR: 10 log10(255^2 / MSE) over every channel; +inf for identical images.
//   SSIM: on luma Y = 0.299 R + 0.587 G + 0.114 B (unrounded), 11x11 Gaussian window (sigma 1.5, normalised),
//         'valid' positions only (no padding, as Wang et al.'s reference), C1 = (0.01 * 255)^2,
//         C2 = (0.03 * 255)^2, mean of the SSIM map. Images must be at least 11x11.
#pragma once

#include <cstdint>
#include <span>

namespace sparvar::pipeline {

double psnr_rgb8(std::span<const uint8_t> a, std::span<const uint8_t> b, int height, int width);
double ssim_luma_rgb8(std::span<const uint8_t> a, std::span<const uint8_t> b, int height, int width);

}  // namespace sparvar::pipeline
