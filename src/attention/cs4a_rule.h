// CS4A's selection rule in the few primitives that the CPU builder (pattern_cs4a.cpp) and the GPU builder
// (cuda/cs4a_build.cu) both use, so that they pick identical sets whatever order they visit a row in:
//  - a row's masses are compared as floats; of two equal masses the lower block id counts as heavier;
//  - mass is added in 2^-40 fixed point, each value truncated to it (to_fixed): integer sums are exact, so
//    "kept mass reaches tau" does not depend on summation order (floating-point sums would);
//  - a row keeps its forced blocks, then takes the non-forced blocks with mass > 0, heaviest first, each one
//    while kept < tau_fixed(tau) and the row has fewer than `cap` blocks. Equivalently, a candidate is kept
//    iff kept(forced) + fixed mass of the candidates heavier than it < tau_fixed and forced + their count < cap
//    (what the GPU evaluates per candidate, in parallel).
// A row is valid when every value is a share (finite, >= 0) and its fixed-point sum is within 1e-2 of 1.
// Header-only and fmt-free: it compiles as host code and, under nvcc, as device code too.
#pragma once

#include <cstdint>

#if defined(__CUDACC__)
#define SPARVAR_CS4A_HD __host__ __device__ __forceinline__
#else
#define SPARVAR_CS4A_HD inline
#endif

namespace sparvar::cs4a_rule {

constexpr int kFixedBits = 40;
constexpr uint64_t kFixedOne = uint64_t{1} << kFixedBits;
constexpr uint64_t kRowSumTolerance = kFixedOne / 100;  // |row sum - 1| <= 1e-2

// Finite and non-negative (NaN fails both comparisons; -0 passes).
SPARVAR_CS4A_HD bool is_share(float v) { return v >= 0.0f && v <= 3.40282347e38f; }

// A share in fixed point, truncated. Values above 2 are clamped (their row is invalid anyway): no overflow.
// v * 2^40 is exact in float, and the conversion truncates on host and device alike.
SPARVAR_CS4A_HD uint64_t to_fixed(float v) {
  return static_cast<uint64_t>((v < 2.0f ? v : 2.0f) * static_cast<float>(kFixedOne));
}

SPARVAR_CS4A_HD uint64_t tau_fixed(float tau) { return to_fixed(tau); }

SPARVAR_CS4A_HD bool row_sum_ok(uint64_t fixed_total) {
  return fixed_total + kRowSumTolerance >= kFixedOne && fixed_total <= kFixedOne + kRowSumTolerance;
}

// The visiting order of candidates: heavier first, equal masses by ascending block id.
SPARVAR_CS4A_HD bool heavier(float a, int a_id, float b, int b_id) { return a > b || (a == b && a_id < b_id); }

}  // namespace sparvar::cs4a_rule
