#include "models/pipeline/metrics.h"

#include <cmath>
#include <limits>
#include <vector>

#include "core/error.h"

namespace sparvar::pipeline {
namespace {

void check_pair(std::span<const uint8_t> a, std::span<const uint8_t> b, int h, int w) {
  SPARVAR_CHECK(h > 0 && w > 0, "image size {}x{} is empty", h, w);
  const size_t n = static_cast<size_t>(h) * static_cast<size_t>(w) * 3;
  SPARVAR_CHECK(a.size() == n && b.size() == n, "images of {} and {} bytes; {}x{} RGB needs {}", a.size(), b.size(), h,
                w, n);
}

std::vector<double> luma(std::span<const uint8_t> rgb, size_t pixels) {
  std::vector<double> y(pixels);
  for (size_t i = 0; i < pixels; ++i)
    y[i] = 0.299 * rgb[3 * i] + 0.587 * rgb[3 * i + 1] + 0.114 * rgb[3 * i + 2];
  return y;
}

// Valid-mode separable filter with the normalised 1-D Gaussian g: out is (h-10) x (w-10).
std::vector<double> gauss_valid(const std::vector<double>& x, int h, int w, const std::vector<double>& g) {
  const int k = static_cast<int>(g.size()), oh = h - k + 1, ow = w - k + 1;
  std::vector<double> rows(static_cast<size_t>(h) * ow), out(static_cast<size_t>(oh) * ow);
  for (int y = 0; y < h; ++y)
    for (int x0 = 0; x0 < ow; ++x0) {
      double s = 0;
      for (int i = 0; i < k; ++i) s += g[i] * x[static_cast<size_t>(y) * w + x0 + i];
      rows[static_cast<size_t>(y) * ow + x0] = s;
    }
  for (int y0 = 0; y0 < oh; ++y0)
    for (int x0 = 0; x0 < ow; ++x0) {
      double s = 0;
      for (int i = 0; i < k; ++i) s += g[i] * rows[static_cast<size_t>(y0 + i) * ow + x0];
      out[static_cast<size_t>(y0) * ow + x0] = s;
    }
  return out;
}

}  // namespace

double psnr_rgb8(std::span<const uint8_t> a, std::span<const uint8_t> b, int h, int w) {
  check_pair(a, b, h, w);
  double se = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const double d = static_cast<double>(a[i]) - b[i];
    se += d * d;
  }
  if (se == 0) return std::numeric_limits<double>::infinity();
  return 10.0 * std::log10(255.0 * 255.0 / (se / static_cast<double>(a.size())));
}

double ssim_luma_rgb8(std::span<const uint8_t> a, std::span<const uint8_t> b, int h, int w) {
  check_pair(a, b, h, w);
  constexpr int kWin = 11;
  constexpr double kSigma = 1.5, C1 = (0.01 * 255) * (0.01 * 255), C2 = (0.03 * 255) * (0.03 * 255);
  SPARVAR_CHECK(h >= kWin && w >= kWin, "SSIM needs images of at least {}x{}, got {}x{}", kWin, kWin, h, w);
  std::vector<double> g(kWin);
  double gs = 0;
  for (int i = 0; i < kWin; ++i) gs += g[i] = std::exp(-((i - 5) * (i - 5)) / (2 * kSigma * kSigma));
  for (double& v : g) v /= gs;

  const size_t n = static_cast<size_t>(h) * w;
  const std::vector<double> x = luma(a, n), y = luma(b, n);
  std::vector<double> xx(n), yy(n), xy(n);
  for (size_t i = 0; i < n; ++i) {
    xx[i] = x[i] * x[i];
    yy[i] = y[i] * y[i];
    xy[i] = x[i] * y[i];
  }
  const auto mx = gauss_valid(x, h, w, g), my = gauss_valid(y, h, w, g);
  const auto sxx = gauss_valid(xx, h, w, g), syy = gauss_valid(yy, h, w, g), sxy = gauss_valid(xy, h, w, g);
  double sum = 0;
  for (size_t i = 0; i < mx.size(); ++i) {
    const double vx = sxx[i] - mx[i] * mx[i], vy = syy[i] - my[i] * my[i], cxy = sxy[i] - mx[i] * my[i];
    sum += ((2 * mx[i] * my[i] + C1) * (2 * cxy + C2)) / ((mx[i] * mx[i] + my[i] * my[i] + C1) * (vx + vy + C2));
  }
  return sum / static_cast<double>(mx.size());
}

}  // namespace sparvar::pipeline
