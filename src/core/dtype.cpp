#include "core/dtype.h"

#include <cmath>
#include <string>

#include "core/error.h"

namespace sparvar {

size_t dtype_size(DType dtype) {
  switch (dtype) {
    case DType::F32: return 4;
    case DType::F16: return 2;
    case DType::BF16: return 2;
    case DType::I32: return 4;
    case DType::I64: return 8;
    case DType::U8: return 1;
    case DType::Bool: return 1;
  }
  return 0;
}

std::string_view dtype_name(DType dtype) {
  switch (dtype) {
    case DType::F32: return "f32";
    case DType::F16: return "f16";
    case DType::BF16: return "bf16";
    case DType::I32: return "i32";
    case DType::I64: return "i64";
    case DType::U8: return "u8";
    case DType::Bool: return "bool";
  }
  return "?";
}

bool dtype_is_float(DType dtype) {
  return dtype == DType::F32 || dtype == DType::F16 || dtype == DType::BF16;
}

DType dtype_from_name(std::string_view name) {
  std::string n;
  for (char c : name) n.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  if (n == "f32" || n == "float32" || n == "float") return DType::F32;
  if (n == "f16" || n == "float16" || n == "half") return DType::F16;
  if (n == "bf16" || n == "bfloat16") return DType::BF16;
  if (n == "i32" || n == "int32") return DType::I32;
  if (n == "i64" || n == "int64" || n == "long") return DType::I64;
  if (n == "u8" || n == "uint8") return DType::U8;
  if (n == "bool") return DType::Bool;
  fail("unknown dtype '{}' (expected f32, f16, bf16, i32, i64, u8 or bool)", name);
}

float f16_to_float(f16_t v) {
  const uint32_t sign = (v.bits >> 15) & 1u;
  const uint32_t exponent = (v.bits >> 10) & 0x1fu;
  const uint32_t mantissa = v.bits & 0x3ffu;
  float magnitude;
  if (exponent == 0) {
    magnitude = std::ldexp(static_cast<float>(mantissa), -24);
  } else if (exponent == 31) {
    magnitude = mantissa ? NAN : INFINITY;
  } else {
    magnitude = std::ldexp(static_cast<float>(mantissa | 0x400u), static_cast<int>(exponent) - 25);
  }
  return sign ? -magnitude : magnitude;
}

f16_t float_to_f16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  const uint16_t sign = static_cast<uint16_t>((u >> 16) & 0x8000u);
  const uint32_t abs = u & 0x7fffffffu;
  if (abs > 0x7f800000u) return f16_t{static_cast<uint16_t>(sign | 0x7e00u)};
  if (abs >= 0x477ff000u) return f16_t{static_cast<uint16_t>(sign | 0x7c00u)};  // rounds to inf
  if (abs < 0x38800000u) {
    // Subnormal half (or zero): value = m * 2^-24, round to nearest even.
    float a;
    std::memcpy(&a, &abs, 4);
    float scaled = a * 16777216.0f;  // 2^24, exact
    float r = std::nearbyint(scaled);
    return f16_t{static_cast<uint16_t>(sign | static_cast<uint16_t>(r))};
  }
  uint32_t mant = abs + 0xc8000000u;  // rebias exponent from 127 to 15
  uint32_t rounding = 0xfffu + ((mant >> 13) & 1u);
  return f16_t{static_cast<uint16_t>(sign | ((mant + rounding) >> 13))};
}

namespace {

double load_as_double(const void* src, DType dtype, size_t i) {
  switch (dtype) {
    case DType::F32: return static_cast<const float*>(src)[i];
    case DType::F16: return f16_to_float(static_cast<const f16_t*>(src)[i]);
    case DType::BF16: return bf16_to_float(static_cast<const bf16_t*>(src)[i]);
    case DType::I32: return static_cast<const int32_t*>(src)[i];
    case DType::I64: return static_cast<double>(static_cast<const int64_t*>(src)[i]);
    case DType::U8: return static_cast<const uint8_t*>(src)[i];
    case DType::Bool: return static_cast<const uint8_t*>(src)[i] ? 1.0 : 0.0;
  }
  return 0;
}

void store_from_double(void* dst, DType dtype, size_t i, double v) {
  switch (dtype) {
    case DType::F32: static_cast<float*>(dst)[i] = static_cast<float>(v); break;
    case DType::F16: static_cast<f16_t*>(dst)[i] = float_to_f16(static_cast<float>(v)); break;
    case DType::BF16: static_cast<bf16_t*>(dst)[i] = float_to_bf16(static_cast<float>(v)); break;
    case DType::I32: static_cast<int32_t*>(dst)[i] = static_cast<int32_t>(v); break;
    case DType::I64: static_cast<int64_t*>(dst)[i] = static_cast<int64_t>(v); break;
    case DType::U8: static_cast<uint8_t*>(dst)[i] = static_cast<uint8_t>(v); break;
    case DType::Bool: static_cast<uint8_t*>(dst)[i] = v != 0.0; break;
  }
}

}  // namespace

void convert_elements(const void* src, DType from, void* dst, DType to, size_t n) {
  if (from == to) {
    std::memcpy(dst, src, n * dtype_size(from));
    return;
  }
  if (from == DType::F32 && to == DType::BF16) {  // hot (text features to the GPU): no double round trip
    for (size_t i = 0; i < n; ++i) static_cast<bf16_t*>(dst)[i] = float_to_bf16(static_cast<const float*>(src)[i]);
    return;
  }
  if (from == DType::I64 && to == DType::I32) {  // exact path, no double round trip
    for (size_t i = 0; i < n; ++i) static_cast<int32_t*>(dst)[i] = static_cast<int32_t>(static_cast<const int64_t*>(src)[i]);
    return;
  }
  // One conversion per element through double: exact for every pair except i64 beyond 2^53 (not used).
  for (size_t i = 0; i < n; ++i) store_from_double(dst, to, i, load_as_double(src, from, i));
}

}  // namespace sparvar
