// The arithmetic of Infinity's per-bit sampling (tau, CFG, top-k/top-p, p(bit = 0)), shared by the host sampler
// (models/infinity/sampler.cpp), the CPU backend and the CUDA kernel, so that identical raw logits and uniforms
// give identical bits everywhere: a uniform that falls between two slightly different p(bit = 0) would otherwise
// pick different bits. Two things make the results bit-exact across compilers and devices:
//  - every product and sum is rounded on its own (explicit __fmul_rn/__fadd_rn on the device, where nvcc would
//    otherwise fuse a*b + c into one FMA; the host files that include this are built with -ffp-contract=off);
//  - exp is our own (range reduction + polynomial, ~1 ulp) instead of the math libraries' expf, whose last bit
//    differs between glibc and CUDA.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#include "core/philox.h"  // SPARVAR_HD

namespace sparvar::bitsample {

SPARVAR_HD inline float mul(float a, float b) {
#ifdef __CUDA_ARCH__
  return __fmul_rn(a, b);
#else
  return a * b;
#endif
}
SPARVAR_HD inline float add(float a, float b) {
#ifdef __CUDA_ARCH__
  return __fadd_rn(a, b);
#else
  return a + b;
#endif
}
SPARVAR_HD inline float div(float a, float b) {
#ifdef __CUDA_ARCH__
  return __fdiv_rn(a, b);
#else
  return a / b;
#endif
}

// 2^k for k in [-126, 127], built from its bits.
SPARVAR_HD inline float pow2i(int k) {
  const uint32_t bits = static_cast<uint32_t>(k + 127) << 23;
#ifdef __CUDA_ARCH__
  return __uint_as_float(bits);
#else
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
#endif
}

// e^x. x = k ln2 + r (Cody-Waite: k * ln2_hi is exact for |k| < 256), e^r by a degree-7 Taylor polynomial on
// |r| <= ln2/2 (truncation error < 1e-8 relative), then times 2^k in two exact factors so a subnormal result is
// rounded once. e^0 is exactly 1.
SPARVAR_HD inline float portable_exp(float x) {
  if (x != x) return x;                 // NaN
  if (x < -104.0f) return 0.0f;         // e^-104 < 2^-150: rounds to zero
  if (x > 89.0f) return INFINITY;       // e^89 > FLT_MAX
  constexpr float kLog2e = 1.44269504088896341f;
  constexpr float kLn2Hi = 0.693145751953125f;        // 0x3F317200: the top 16 bits of ln 2
  constexpr float kLn2Lo = 1.428606765330187045e-06f;  // ln 2 - kLn2Hi
#ifdef __CUDA_ARCH__
  const float k = rintf(mul(x, kLog2e));
#else
  const float k = std::rint(mul(x, kLog2e));
#endif
  const float r = add(add(x, -mul(k, kLn2Hi)), -mul(k, kLn2Lo));  // negation is exact
  float p = 1.0f / 5040.0f;
  p = add(mul(p, r), 1.0f / 720.0f);
  p = add(mul(p, r), 1.0f / 120.0f);
  p = add(mul(p, r), 1.0f / 24.0f);
  p = add(mul(p, r), 1.0f / 6.0f);
  p = add(mul(p, r), 0.5f);
  p = add(mul(p, r), 1.0f);
  p = add(mul(p, r), 1.0f);
  const int ki = static_cast<int>(k), k1 = ki / 2, k2 = ki - k1;  // |k1|, |k2| <= 76: normal powers
  return mul(mul(p, pow2i(k1)), pow2i(k2));
}

// The logit after tau (and CFG when guided): cfg * cond / tau + (1 - cfg) * uncond / tau.
SPARVAR_HD inline float scaled_logit(float cond, float tau) { return div(cond, tau); }
SPARVAR_HD inline float guided_logit(float cond, float uncond, float tau, float cfg) {
  return add(mul(cfg, div(cond, tau)), mul(1.0f - cfg, div(uncond, tau)));
}

// p(bit = 0) from the two logits of a bit (sampling.py): top-k (only k = 1 removes anything: the strictly smaller
// logit; ties keep both), top-p (the less likely bit goes when its probability <= 1 - top_p, never the more
// likely one; on a tie torch's sort puts index 0 first), then a softmax over what is left.
SPARVAR_HD inline float prob_zero(float l0, float l1, int top_k, float top_p) {
  bool keep0 = true, keep1 = true;
  if (top_k == 1) {
    if (l0 < l1) keep0 = false;
    if (l1 < l0) keep1 = false;
  }
  auto p0_of = [&]() -> float {
    if (!keep0) return 0.0f;
    if (!keep1) return 1.0f;
    const float m = l0 < l1 ? l1 : l0;  // std::max's choice, NaN included
    const float e0 = portable_exp(l0 - m), e1 = portable_exp(l1 - m);
    return div(e0, add(e0, e1));
  };
  if (top_p > 0.0f && keep0 && keep1) {
    const float threshold = static_cast<float>(1.0 - static_cast<double>(top_p));
    const float p0 = p0_of();
    if (l0 < l1 && p0 <= threshold) keep0 = false;
    else if (l1 < l0 && 1.0f - p0 <= threshold) keep1 = false;
    else if (l0 == l1 && 0.5f <= threshold) keep0 = false;
  }
  return p0_of();
}

// The sampled bit: 1 iff u >= p(bit = 0).
SPARVAR_HD inline uint8_t sample(float p0, float u) { return u >= p0 ? 1 : 0; }

}  // namespace sparvar::bitsample
