// Normalisations: layer_norm (and fused with AdaLN modulation), rms_norm (last dim), group_norm (NCHW),
// l2_normalize (per head vector).
// Statistics are accumulated in double: this is the reference the fast backend is measured against.
#include <algorithm>
#include <cmath>

#include "backend/cpu/checks.h"
#include "backend/cpu/cpu_backend.h"

namespace sparvar::cpu {

namespace {
constexpr int64_t kGrain = 1 << 14;

int64_t rows_grain(int64_t row_len) { return std::max<int64_t>(1, kGrain / std::max<int64_t>(row_len, 1)); }

// Mean and 1 / sqrt(biased variance + eps) of n > 0 values: the statistics of layer_norm, group_norm and
// layer_norm_modulate (which must match layer_norm bit for bit), so written once.
struct MeanInv {
  double mean, inv;
};
MeanInv mean_inv_std(const float* in, int64_t n, float eps) {
  double mean = 0.0;
  for (int64_t i = 0; i < n; ++i) mean += in[i];
  mean /= static_cast<double>(n);
  double var = 0.0;
  for (int64_t i = 0; i < n; ++i) var += (in[i] - mean) * (in[i] - mean);
  var /= static_cast<double>(n);  // biased, like torch
  return {mean, 1.0 / std::sqrt(var + eps)};
}

// Checks shared by the last-dimension norms; returns C.
int64_t check_row_norm(const Tensor& x, const Tensor* w, const Tensor* b, const Tensor& y, std::string_view op) {
  check_f32(x, op, "input");
  SPARVAR_CHECK(x.ndim() >= 1, "{}: input must have at least one dimension, got {}", op, shape_string(x.shape()));
  const int64_t C = x.dim(-1);
  if (w) {
    check_f32(*w, op, "weight");
    SPARVAR_CHECK(w->shape() == Shape({C}), "{}: weight {} does not match input [..., {}]", op,
                  shape_string(w->shape()), C);
  }
  if (b) {
    check_f32(*b, op, "bias");
    SPARVAR_CHECK(b->shape() == Shape({C}), "{}: bias {} does not match input [..., {}]", op,
                  shape_string(b->shape()), C);
  }
  check_output(y, x.shape(), op);
  check_same_or_disjoint(x, y, op, "input");
  if (w) check_disjoint(*w, y, op, "weight");
  if (b) check_disjoint(*b, y, op, "bias");
  return C;
}
}  // namespace

void CpuBackend::layer_norm(const Tensor& x, const Tensor* w, const Tensor* b, float eps, Tensor& y) {
  const int64_t C = check_row_norm(x, w, b, y, "layer_norm");
  if (C == 0) return;
  const float* px = x.data_as<float>();
  const float* pw = w ? w->data_as<float>() : nullptr;
  const float* pb = b ? b->data_as<float>() : nullptr;
  float* py = y.data_as<float>();
  pool_.parallel_for(0, x.numel() / C, rows_grain(C), [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; ++r) {
      const float* in = px + r * C;
      float* out = py + r * C;
      const auto [mean, inv] = mean_inv_std(in, C, eps);
      for (int64_t c = 0; c < C; ++c) {
        double v = (in[c] - mean) * inv;
        if (pw) v *= pw[c];
        if (pb) v += pb[c];
        out[c] = static_cast<float>(v);
      }
    }
  });
}

// Bit-identical to layer_norm (no affine) followed by adaln_modulate: the normalised value is rounded to f32
// first, as that composition stores it.
void CpuBackend::layer_norm_modulate(const Tensor& x, const Tensor& scale, const Tensor& shift, float eps, Tensor& y) {
  constexpr std::string_view op = "layer_norm_modulate";
  check_f32(x, op, "x");
  SPARVAR_CHECK(x.ndim() == 3, "layer_norm_modulate: x must be [B, N, C], got {}", shape_string(x.shape()));
  const int64_t B = x.dim(0), N = x.dim(1), C = x.dim(2);
  check_f32_shape(scale, {B, C}, op, "scale");
  check_f32_shape(shift, {B, C}, op, "shift");
  check_output(y, x.shape(), op);
  check_same_or_disjoint(x, y, op, "x");
  check_disjoint(scale, y, op, "scale");
  check_disjoint(shift, y, op, "shift");
  if (C == 0) return;
  const float* px = x.data_as<float>();
  const float* ps = scale.data_as<float>();
  const float* pt = shift.data_as<float>();
  float* py = y.data_as<float>();
  pool_.parallel_for(0, B * N, rows_grain(C), [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; ++r) {
      const float* in = px + r * C;
      const float* s = ps + (r / N) * C;
      const float* t = pt + (r / N) * C;
      float* out = py + r * C;
      const auto [mean, inv] = mean_inv_std(in, C, eps);
      for (int64_t c = 0; c < C; ++c) {
        const float normed = static_cast<float>((in[c] - mean) * inv);
        out[c] = normed * (1.0f + s[c]) + t[c];
      }
    }
  });
}

void CpuBackend::rms_norm(const Tensor& x, const Tensor* w, float eps, Tensor& y) {
  const int64_t C = check_row_norm(x, w, nullptr, y, "rms_norm");
  if (C == 0) return;
  const float* px = x.data_as<float>();
  const float* pw = w ? w->data_as<float>() : nullptr;
  float* py = y.data_as<float>();
  pool_.parallel_for(0, x.numel() / C, rows_grain(C), [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; ++r) {
      const float* in = px + r * C;
      float* out = py + r * C;
      double sq = 0.0;
      for (int64_t c = 0; c < C; ++c) sq += static_cast<double>(in[c]) * in[c];
      const double inv = 1.0 / std::sqrt(sq / static_cast<double>(C) + eps);
      for (int64_t c = 0; c < C; ++c) out[c] = static_cast<float>(in[c] * inv * (pw ? pw[c] : 1.0f));
    }
  });
}

void CpuBackend::l2_normalize(const Tensor& x, float eps, const Tensor* head_scale, Tensor& y) {
  constexpr std::string_view op = "l2_normalize";
  check_f32(x, op, "input");
  SPARVAR_CHECK(x.ndim() == 4, "l2_normalize: input must be [B, H, N, D], got {}", shape_string(x.shape()));
  const int64_t H = x.dim(1), N = x.dim(2), D = x.dim(3);
  if (head_scale) {
    check_f32(*head_scale, op, "head_scale");
    SPARVAR_CHECK(head_scale->shape() == Shape({H}), "l2_normalize: head_scale {} does not match input {} (expected [{}])",
                  shape_string(head_scale->shape()), shape_string(x.shape()), H);
  }
  check_output(y, x.shape(), op);
  check_same_or_disjoint(x, y, op, "input");
  if (head_scale) check_disjoint(*head_scale, y, op, "head_scale");
  if (D == 0) return;
  const float* px = x.data_as<float>();
  const float* ph = head_scale ? head_scale->data_as<float>() : nullptr;
  float* py = y.data_as<float>();
  pool_.parallel_for(0, x.numel() / D, rows_grain(D), [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; ++r) {
      const float* in = px + r * D;
      float* out = py + r * D;
      double sq = 0.0;
      for (int64_t d = 0; d < D; ++d) sq += static_cast<double>(in[d]) * in[d];
      const double factor = (ph ? ph[(r / N) % H] : 1.0) / std::max(std::sqrt(sq), static_cast<double>(eps));
      for (int64_t d = 0; d < D; ++d) out[d] = static_cast<float>(in[d] * factor);
    }
  });
}

void CpuBackend::group_norm(const Tensor& x, int groups, const Tensor* w, const Tensor* b, float eps, Tensor& y) {
  constexpr std::string_view op = "group_norm";
  check_f32(x, op, "input");
  SPARVAR_CHECK(x.ndim() == 4, "group_norm: input must be [N, C, H, W], got {}", shape_string(x.shape()));
  const int64_t N = x.dim(0), C = x.dim(1), HW = x.dim(2) * x.dim(3);
  SPARVAR_CHECK(groups >= 1 && C % groups == 0, "group_norm: {} channels of input {} are not divisible into {} groups",
                C, shape_string(x.shape()), groups);
  if (w) {
    check_f32(*w, op, "weight");
    SPARVAR_CHECK(w->shape() == Shape({C}), "group_norm: weight {} does not match input {} (expected [{}])",
                  shape_string(w->shape()), shape_string(x.shape()), C);
  }
  if (b) {
    check_f32(*b, op, "bias");
    SPARVAR_CHECK(b->shape() == Shape({C}), "group_norm: bias {} does not match input {} (expected [{}])",
                  shape_string(b->shape()), shape_string(x.shape()), C);
  }
  check_output(y, x.shape(), op);
  check_same_or_disjoint(x, y, op, "input");
  if (w) check_disjoint(*w, y, op, "weight");
  if (b) check_disjoint(*b, y, op, "bias");
  const int64_t per_group = C / groups;
  const int64_t group_len = per_group * HW;
  if (group_len == 0) return;
  const float* px = x.data_as<float>();
  const float* pw = w ? w->data_as<float>() : nullptr;
  const float* pb = b ? b->data_as<float>() : nullptr;
  float* py = y.data_as<float>();
  // A group's channels are contiguous in NCHW: group g of image n is one run of group_len floats.
  pool_.parallel_for(0, N * groups, rows_grain(group_len), [&](int64_t lo, int64_t hi) {
    for (int64_t ng = lo; ng < hi; ++ng) {
      const float* in = px + ng * group_len;
      float* out = py + ng * group_len;
      const auto [mean, inv] = mean_inv_std(in, group_len, eps);
      const int64_t c0 = (ng % groups) * per_group;
      for (int64_t j = 0; j < per_group; ++j) {
        const double scale = pw ? pw[c0 + j] : 1.0;
        const double shift = pb ? pb[c0 + j] : 0.0;
        for (int64_t i = j * HW; i < (j + 1) * HW; ++i) out[i] = static_cast<float>((in[i] - mean) * inv * scale + shift);
      }
    }
  });
}

}  // namespace sparvar::cpu
