// PSNR / SSIM against values computed with numpy (direct 2-D 11x11 Gaussian window, valid positions; the
// script is in the comment below), plus the identities.
//   a[y,x,c] = (7x + 13y + 50c) % 256, 20x23;  near = clip(a + (x*y + c) % 11 - 5);  far = (x^2 + 5y + 30c) % 256
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "core/error.h"
#include "models/pipeline/metrics.h"

namespace sparvar::pipeline {
namespace {

constexpr int H = 20, W = 23;

std::vector<uint8_t> make(int which) {
  std::vector<uint8_t> v(static_cast<size_t>(H * W * 3));
  for (int y = 0; y < H; ++y)
    for (int x = 0; x < W; ++x)
      for (int c = 0; c < 3; ++c) {
        const int a = (x * 7 + y * 13 + c * 50) % 256;
        int val = a;
        if (which == 1) val = std::clamp(a + (x * y + c) % 11 - 5, 0, 255);
        if (which == 2) val = (x * x + y * 5 + c * 30) % 256;
        v[static_cast<size_t>((y * W + x) * 3 + c)] = static_cast<uint8_t>(val);
      }
  return v;
}

TEST(Metrics, MatchNumpyReference) {
  const auto a = make(0), near = make(1), far = make(2);
  EXPECT_NEAR(psnr_rgb8(a, near, H, W), 37.8425576702007, 1e-9);
  EXPECT_NEAR(ssim_luma_rgb8(a, near, H, W), 0.9955319135084142, 1e-9);
  EXPECT_NEAR(psnr_rgb8(a, far, H, W), 8.082711861796119, 1e-9);
  EXPECT_NEAR(ssim_luma_rgb8(a, far, H, W), 0.04424513633774198, 1e-9);
}

TEST(Metrics, IdenticalAndSymmetric) {
  const auto a = make(0), far = make(2);
  EXPECT_TRUE(std::isinf(psnr_rgb8(a, a, H, W)));
  EXPECT_NEAR(ssim_luma_rgb8(a, a, H, W), 1.0, 1e-12);
  EXPECT_NEAR(ssim_luma_rgb8(a, far, H, W), ssim_luma_rgb8(far, a, H, W), 1e-12);
}

TEST(Metrics, RejectsBadSizes) {
  const auto a = make(0);
  EXPECT_THROW(psnr_rgb8(a, std::vector<uint8_t>(10), H, W), Error);
  const std::vector<uint8_t> small(10 * 10 * 3, 7);
  EXPECT_THROW(ssim_luma_rgb8(small, small, 10, 10), Error);  // smaller than the 11x11 window
}

}  // namespace
}  // namespace sparvar::pipeline
