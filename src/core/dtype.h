// Element types and host-side conversions between them (round-to-nearest-even, like the GPU's).
#pragma once

#include <cstdint>
#include <cstring>
#include <string_view>

namespace sparvar {

enum class DType : uint8_t { F32, F16, BF16, I32, I64, U8, Bool };

size_t dtype_size(DType dtype);
std::string_view dtype_name(DType dtype);
bool dtype_is_float(DType dtype);
// Parses names such as "f32", "bf16", "F16", "int64"; throws Error on an unknown name.
DType dtype_from_name(std::string_view name);

// bf16 and fp16 are stored as raw 16-bit patterns on the host.
struct bf16_t { uint16_t bits; };
struct f16_t { uint16_t bits; };

inline float bf16_to_float(bf16_t v) {
  uint32_t u = static_cast<uint32_t>(v.bits) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

inline bf16_t float_to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return bf16_t{static_cast<uint16_t>((u >> 16) | 0x40)};  // quiet NaN
  uint32_t rounding = 0x7fffu + ((u >> 16) & 1u);
  return bf16_t{static_cast<uint16_t>((u + rounding) >> 16)};
}

float f16_to_float(f16_t v);
f16_t float_to_f16(float f);

// Converts n elements from src (of type from) to dst (of type to); float types and integers.
void convert_elements(const void* src, DType from, void* dst, DType to, size_t n);

}  // namespace sparvar
