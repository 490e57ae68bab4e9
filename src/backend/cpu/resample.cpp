// resample with torch.nn.functional.interpolate(size=...) semantics. Every mode is separable, so each axis
// gets a table of (source index, weight) taps and y[oy, ox] = sum_a sum_b wy[a] wx[b] x[iy_a, ix_b].
// Source coordinates are computed in fp32 exactly as torch's CPU kernels do, so the chosen taps match:
//   Nearest:  src = min(floor(dst * (float(in) / out)), in - 1)
//   Bilinear: src = max((in / out) * (dst + 0.5) - 0.5, 0); i0 = int(src), i1 = min(i0 + 1, in - 1),
//             weights (1 - t, t) with t = src - i0
//   Bicubic:  src = (in / out) * (dst + 0.5) - 0.5 (not clamped); i = floor(src), t = src - i; taps at
//             i-1 .. i+2 clamped to [0, in-1]; Keys cubic with A = -0.75
//   Area:     adaptive average pooling: window [floor(dst * in / out), ceil((dst + 1) * in / out))
#include <algorithm>
#include <cmath>
#include <vector>

#include "backend/cpu/checks.h"
#include "backend/cpu/cpu_backend.h"

namespace sparvar::cpu {

namespace {

struct AxisTaps {
  std::vector<int64_t> begin;  // taps of output i are [begin[i], begin[i + 1])
  std::vector<int64_t> index;
  std::vector<double> weight;
};

float cubic_inner(float x, float a) { return ((a + 2.0f) * x - (a + 3.0f)) * x * x + 1.0f; }            // |x| <= 1
float cubic_outer(float x, float a) { return ((a * x - 5.0f * a) * x + 8.0f * a) * x - 4.0f * a; }     // 1 < |x| < 2

AxisTaps axis_taps(ResampleMode mode, int64_t in, int64_t out) {
  AxisTaps taps;
  taps.begin.reserve(static_cast<size_t>(out + 1));
  auto push = [&](int64_t i, double w) {
    taps.index.push_back(std::clamp<int64_t>(i, 0, in - 1));
    taps.weight.push_back(w);
  };
  const float scale = static_cast<float>(in) / static_cast<float>(out);
  for (int64_t o = 0; o < out; ++o) {
    taps.begin.push_back(static_cast<int64_t>(taps.index.size()));
    switch (mode) {
      case ResampleMode::Nearest:
        push(std::min(static_cast<int64_t>(std::floor(static_cast<float>(o) * scale)), in - 1), 1.0);
        break;
      case ResampleMode::Bilinear: {
        const float src = std::max(scale * (static_cast<float>(o) + 0.5f) - 0.5f, 0.0f);
        const int64_t i0 = static_cast<int64_t>(src);
        const float t = std::clamp(src - static_cast<float>(i0), 0.0f, 1.0f);
        push(i0, 1.0f - t);
        push(i0 + (i0 < in - 1 ? 1 : 0), t);
        break;
      }
      case ResampleMode::Bicubic: {
        constexpr float kA = -0.75f;
        const float src = scale * (static_cast<float>(o) + 0.5f) - 0.5f;
        const float fi = std::floor(src);
        const int64_t i = static_cast<int64_t>(fi);
        const float t = std::clamp(src - fi, 0.0f, 1.0f);
        push(i - 1, cubic_outer(t + 1.0f, kA));
        push(i, cubic_inner(t, kA));
        push(i + 1, cubic_inner(1.0f - t, kA));
        push(i + 2, cubic_outer(2.0f - t, kA));
        break;
      }
      case ResampleMode::Area: {
        const int64_t start = (o * in) / out;
        const int64_t end = ((o + 1) * in + out - 1) / out;
        for (int64_t i = start; i < end; ++i) push(i, 1.0 / static_cast<double>(end - start));
        break;
      }
    }
  }
  taps.begin.push_back(static_cast<int64_t>(taps.index.size()));
  return taps;
}

}  // namespace

void CpuBackend::resample(const Tensor& x, ResampleMode mode, Tensor& y) {
  constexpr std::string_view op = "resample";
  check_f32(x, op, "input");
  check_f32(y, op, "output");
  SPARVAR_CHECK(mode == ResampleMode::Nearest || mode == ResampleMode::Bilinear || mode == ResampleMode::Bicubic ||
                    mode == ResampleMode::Area,
                "resample: unknown mode {}", static_cast<int>(mode));
  SPARVAR_CHECK(x.ndim() == 4, "resample: input must be [N, C, H, W], got {}", shape_string(x.shape()));
  SPARVAR_CHECK(y.ndim() == 4 && y.dim(0) == x.dim(0) && y.dim(1) == x.dim(1),
                "resample: output {} does not match input {} (expected [{},{},H',W'])", shape_string(y.shape()),
                shape_string(x.shape()), x.dim(0), x.dim(1));
  const int64_t H = x.dim(2), W = x.dim(3), Ho = y.dim(2), Wo = y.dim(3);
  SPARVAR_CHECK(Ho == 0 || Wo == 0 || (H > 0 && W > 0), "resample: cannot resample empty input {} to {}",
                shape_string(x.shape()), shape_string(y.shape()));
  check_disjoint(x, y, op, "input");
  if (y.numel() == 0) return;

  const AxisTaps ty = axis_taps(mode, H, Ho);
  const AxisTaps tx = axis_taps(mode, W, Wo);
  const float* px = x.data_as<float>();
  float* py = y.data_as<float>();
  const int64_t planes = x.dim(0) * x.dim(1);
  pool_.parallel_for(0, planes * Ho, std::max<int64_t>(1, 4096 / Wo), [&](int64_t lo, int64_t hi) {
    for (int64_t row = lo; row < hi; ++row) {
      const int64_t plane = row / Ho, oy = row % Ho;
      const float* in = px + plane * H * W;
      float* out = py + row * Wo;
      for (int64_t ox = 0; ox < Wo; ++ox) {
        double acc = 0.0;
        for (int64_t a = ty.begin[oy]; a < ty.begin[oy + 1]; ++a) {
          const float* in_row = in + ty.index[a] * W;
          double row_sum = 0.0;
          for (int64_t b = tx.begin[ox]; b < tx.begin[ox + 1]; ++b) row_sum += tx.weight[b] * in_row[tx.index[b]];
          acc += ty.weight[a] * row_sum;
        }
        out[ox] = static_cast<float>(acc);
      }
    }
  });
}

}  // namespace sparvar::cpu
