// Helpers of the image_to_rgb8 tests (CPU, CUDA, the decoder's fast path).
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "core/tensor.h"

namespace sparvar::test {

// Float image values: a decoded image and worse. Normal(0, 0.8) values, about a fifth past +-1, with every 5th
// element one the conversion must get exactly right: +-1 and the floats beside them, values far out of range, the
// infinities, and for bytes k = 1, 8, 15, ... the float nearest 2k/255 - 1 (where (v + 1) / 2 * 255 reaches k) and
// its two neighbours, where truncation flips. NaN only when asked (to_uint8_rgb leaves it undefined). No zeros: an
// all-zero image would pass for a broken kernel.
inline Tensor rgb8_test_values(const Shape& shape, uint32_t seed, bool with_nan = false) {
  std::vector<float> special = {-1.0f, 1.0f, std::nextafter(-1.0f, -2.0f), std::nextafter(-1.0f, 0.0f),
                                std::nextafter(1.0f, 0.0f), std::nextafter(1.0f, 2.0f), 3.5f, -2.25f, 1e30f, -1e30f,
                                std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity()};
  for (int k = 1; k < 255; k += 7) {
    const float v = 2.0f * static_cast<float>(k) / 255.0f - 1.0f;
    special.insert(special.end(), {v, std::nextafter(v, -2.0f), std::nextafter(v, 2.0f)});
  }
  if (with_nan) special.push_back(std::numeric_limits<float>::quiet_NaN());
  std::mt19937 gen(seed);
  std::normal_distribution<float> normal(0.0f, 0.8f);
  std::uniform_int_distribution<size_t> pick(0, special.size() - 1);
  std::vector<float> v(static_cast<size_t>(shape_numel(shape)));
  for (size_t i = 0; i < v.size(); ++i) v[i] = i % 5 == 4 ? special[pick(gen)] : normal(gen);
  return Tensor::from_floats(shape, v);
}

// A host U8 tensor with every byte `fill` (U8 outputs have no invalid value to poison with: tests fill with two
// values and compare, or check a refused call left the fill).
inline Tensor filled_u8(const Shape& shape, uint8_t fill) {
  Tensor t = Tensor::empty(shape, DType::U8);
  std::memset(t.data(), fill, t.nbytes());
  return t;
}

inline std::vector<int> bytes_of(const Tensor& t) {
  const auto* p = t.data_as<uint8_t>();
  return std::vector<int>(p, p + t.numel());
}

// Channels-last [B, H, W, C] copy of a host F32 NCHW image [B, 3, H, W], the channels past 3 set to `pad` (the
// decoder's conv_out pads with zeros; another value shows whether the padding is read).
inline Tensor nchw_to_padded_nhwc(const Tensor& nchw, int64_t C, float pad) {
  const int64_t B = nchw.dim(0), H = nchw.dim(2), W = nchw.dim(3);
  Tensor out = Tensor::empty({B, H, W, C}, DType::F32);
  const float* s = nchw.data_as<float>();
  float* d = out.data_as<float>();
  for (int64_t b = 0; b < B; ++b)
    for (int64_t p = 0; p < H * W; ++p)
      for (int64_t c = 0; c < C; ++c) d[(b * H * W + p) * C + c] = c < 3 ? s[(b * 3 + c) * H * W + p] : pad;
  return out;
}

}  // namespace sparvar::test
