// Shared by the files of test_backend_ops: tolerances, options, the tally, seeded bf16-representable inputs,
// NaN-poisoned outputs and the error measures (see test_backend_ops.cpp for how a case passes).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "core/dtype.h"

namespace sparvar::backend_ops {

constexpr double kTolBf16 = 5e-3;
constexpr double kMaxErrFactor = 4.0;  // max-norm tolerance = this x the relative-error tolerance
constexpr double kTolF32 = 1e-5;
constexpr double kTolF32Gemm = 1e-4;

struct Options {
  bool small = false;
  std::string filter;
};

struct Tally {
  int passed = 0, failed = 0;
  void record(bool ok) { ok ? ++passed : ++failed; }
};

// One generator for the whole run, so every case's inputs are fixed by the seed and the case order.
inline std::mt19937& rng() {
  static std::mt19937 generator(20261124);
  return generator;
}

// Host F32 normal(0, scale^2) values rounded to bf16-representable numbers: both backends see the same inputs.
inline Tensor random_normal(const Shape& shape, float scale = 1.0f) {
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> v(static_cast<size_t>(shape_numel(shape)));
  for (float& x : v) x = bf16_to_float(float_to_bf16(normal(rng()) * scale));
  return Tensor::from_floats(shape, v);
}

inline Tensor poisoned(Backend& be, const Shape& shape, DType dtype) {
  std::vector<float> nan(static_cast<size_t>(shape_numel(shape)), std::numeric_limits<float>::quiet_NaN());
  return be.upload(Tensor::from_floats(shape, nan), dtype);
}

struct Errors {
  double rel_l2 = std::numeric_limits<double>::quiet_NaN();   // ||a - b|| / ||b||
  double rel_max = std::numeric_limits<double>::quiet_NaN();  // max|a - b| / max|b|
};

// Both NaN if x has any non-finite element. Against an all-zero reference the errors are absolute.
inline Errors compare_values(const std::vector<float>& x, const std::vector<float>& y) {
  if (x.size() != y.size()) return {};
  double diff = 0.0, ref = 0.0, max_diff = 0.0, max_ref = 0.0;
  for (size_t i = 0; i < x.size(); ++i) {
    if (!std::isfinite(x[i])) return {};
    const double d = std::fabs(double(x[i]) - y[i]);
    diff += d * d;
    ref += double(y[i]) * y[i];
    max_diff = std::max(max_diff, d);
    max_ref = std::max(max_ref, std::fabs(double(y[i])));
  }
  return {ref == 0.0 ? std::sqrt(diff) : std::sqrt(diff / ref), max_ref == 0.0 ? max_diff : max_diff / max_ref};
}
inline Errors compare(const Tensor& a, const Tensor& b) { return compare_values(a.to_floats(), b.to_floats()); }

// Bit for bit, and finite (an element both sides left unwritten is a failure, not a match).
inline bool identical(const std::vector<float>& a, const std::vector<float>& b) {
  for (float v : a)
    if (!std::isfinite(v)) return false;
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// Whether --filter keeps a case named `name`.
inline bool selected(const Options& o, const std::string& name) {
  return o.filter.empty() || name.find(o.filter) != std::string::npos;
}

// The fused block ops, copy_slice, sampling, bits_to_codes and timing events (test_backend_ops_fused.cpp).
void run_fused_cases(Backend& cpu, Backend& gpu, const Options& options, Tally& tally);
// The skinny GEMM called directly: every configuration, the dispatch from linear, what it declines
// (test_backend_ops_skinny.cpp).
void run_skinny_checks(Backend& cpu, Backend& gpu, const Options& options, Tally& tally);
// image_to_rgb8 bit for bit against the CPU, download_raw, bad inputs to image_to_rgb8 (test_backend_ops_rgb8.cpp).
void run_rgb8_cases(Backend& cpu, Backend& gpu, const Options& options, Tally& tally);
// The folded cross-attention's two ops against the CPU's default bodies (test_backend_ops_xattn.cpp).
void run_xattn_fold_cases(Backend& cpu, Backend& gpu, const Options& options, Tally& tally);

}  // namespace sparvar::backend_ops
