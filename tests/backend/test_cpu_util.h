// Helpers for the CPU backend tests: seeded random inputs, NaN-poisoned outputs, error measures.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "core/philox.h"

namespace sparvar::test {

// Normal(shift, scale^2) values from Philox stream (seed 1234, offset): different offsets, different tensors.
inline Tensor randn(const Shape& shape, uint64_t offset, float scale = 1.0f, float shift = 0.0f) {
  Tensor t = Tensor::empty(shape, DType::F32);
  float* p = t.data_as<float>();
  PhiloxStream(1234, offset).fill_normal(p, static_cast<uint64_t>(t.numel()));
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = p[i] * scale + shift;
  return t;
}

// An output tensor full of NaN, so an element the op forgets to write shows up.
inline Tensor poisoned(const Shape& shape) {
  Tensor t = Tensor::empty(shape, DType::F32);
  float* p = t.data_as<float>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = std::numeric_limits<float>::quiet_NaN();
  return t;
}

inline std::vector<double> as_doubles(const Tensor& t) {
  std::vector<float> f = t.to_floats();
  return std::vector<double>(f.begin(), f.end());
}

// ||out - ref|| / ||ref||, +inf when out has a non-finite element (unwritten or broken).
inline double rel_error(const Tensor& out, const std::vector<double>& ref) {
  EXPECT_EQ(static_cast<size_t>(out.numel()), ref.size());
  const float* p = out.data_as<float>();
  double diff = 0.0, norm = 0.0;
  for (size_t i = 0; i < ref.size(); ++i) {
    if (!std::isfinite(p[i])) return std::numeric_limits<double>::infinity();
    diff += (p[i] - ref[i]) * (p[i] - ref[i]);
    norm += ref[i] * ref[i];
  }
  return norm == 0.0 ? std::sqrt(diff) : std::sqrt(diff / norm);
}

// Bit-for-bit equality of two F32 tensors, all elements finite (the fused ops against their compositions).
inline void expect_identical(const Tensor& got, const Tensor& want, const std::string& what) {
  ASSERT_EQ(got.shape(), want.shape()) << what;
  const std::vector<float> a = got.to_floats(), b = want.to_floats();
  size_t differ = 0, first = a.size();
  for (size_t i = 0; i < a.size(); ++i)
    if (!std::isfinite(a[i]) || std::memcmp(&a[i], &b[i], sizeof(float)) != 0) {
      if (differ++ == 0) first = i;
    }
  EXPECT_EQ(differ, 0u) << what << ": first at " << first << " (" << (first < a.size() ? a[first] : 0.0f) << " vs "
                        << (first < b.size() ? b[first] : 0.0f) << ")";
}

// Expects fn to throw an Error whose message contains every fragment.
template <typename Fn>
void expect_error_message(Fn&& fn, std::initializer_list<std::string> fragments) {
  try {
    fn();
    ADD_FAILURE() << "no error thrown";
  } catch (const Error& e) {
    const std::string msg = e.what();
    for (const std::string& f : fragments) EXPECT_NE(msg.find(f), std::string::npos) << "'" << f << "' not in: " << msg;
  }
}

#define EXPECT_CLOSE(out, ref) EXPECT_LT(::sparvar::test::rel_error(out, ref), 1e-5)

class CpuBackendTest : public ::testing::Test {
 protected:
  std::unique_ptr<Backend> be = make_cpu_backend(3);
};

}  // namespace sparvar::test
