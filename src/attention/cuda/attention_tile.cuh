// Pieces shared by the kernel variants: the CuTe configuration of one 64-row query tile (smem layouts, the
// two warpgroup MMAs) and the register-level work on it (wgmma issue, masking, online softmax, epilogue).
//
// Accumulator fragments of a 64xN wgmma tile hold, per thread, values indexed i = c + 2*r + 4*j:
// row 16*warp + lane/4 + 8*r, column 8*j + 2*(lane%4) + c. A row lives in the 4 threads of a quad.
#pragma once

#include <cute/tensor.hpp>
#include <cute/atom/mma_traits_sm90_gmma.hpp>
#include <cute/arch/mma_sm90.hpp>
#include <cutlass/numeric_conversion.h>
#include <cutlass/numeric_types.h>

#include <cmath>

namespace sparvar::attention_cuda {
using namespace cute;

using Element = cutlass::bfloat16_t;
constexpr int kTileM = 64;  // query rows per consumer warpgroup

template <int D, int BK, int STAGES>
struct TileConfig {
  static constexpr int kD = D;
  static constexpr int kBK = BK;
  static constexpr int kStages = STAGES;
  using SmemAtom = GMMA::Layout_K_SW128_Atom<Element>;  // 8 rows x 64 bf16, 128B swizzle
  using SmemLayoutQ = decltype(tile_to_shape(SmemAtom{}, Shape<Int<kTileM>, Int<D>>{}));
  using SmemLayoutK = decltype(tile_to_shape(SmemAtom{}, Shape<Int<BK>, Int<D>, Int<STAGES>>{}));
  using SmemLayoutV = SmemLayoutK;
  // V seen as the (D x keys) B operand of P*V: the same bytes, MN-major for the MMA.
  using SmemLayoutVt = decltype(composition(
      SmemLayoutV{}, make_ordered_layout(Shape<Int<D>, Int<BK>, Int<STAGES>>{}, Step<_2, _1, _3>{})));
  using MmaQK = decltype(make_tiled_mma(
      GMMA::ss_op_selector<Element, Element, float, Shape<Int<kTileM>, Int<BK>, Int<D>>>()));
  // QK^T with Q in registers (RS): K is then the only operand read from shared memory.
  using MmaQKrs = decltype(make_tiled_mma(
      GMMA::rs_op_selector<Element, Element, float, Shape<Int<kTileM>, Int<BK>, Int<D>>>()));
  using MmaPV = decltype(make_tiled_mma(
      GMMA::rs_op_selector<Element, Element, float, Shape<Int<kTileM>, Int<D>, Int<BK>>, GMMA::Major::K,
                           GMMA::Major::MN>()));
  static constexpr int kQElems = kTileM * D;
  static constexpr int kKVElems = BK * D;  // per stage
};

// C = A*B (+C unless zero_init), one warpgroup, waits for completion. kRegA: A is a register fragment (RS).
template <bool kZeroInit, bool kRegA, class Mma, class TA, class TB, class TC>
__device__ __forceinline__ void warpgroup_gemm(Mma& mma, TA const& a, TB const& b, TC& c) {
  if constexpr (kRegA) warpgroup_fence_operand(const_cast<TA&>(a));
  warpgroup_fence_operand(c);
  warpgroup_arrive();
  if constexpr (kZeroInit) mma.accumulate_ = GMMA::ScaleOut::Zero;
  CUTE_UNROLL
  for (int kk = 0; kk < size<2>(a); ++kk) {
    cute::gemm(mma, a(_, _, kk), b(_, _, kk), c);
    mma.accumulate_ = GMMA::ScaleOut::One;
  }
  warpgroup_commit_batch();
  warpgroup_wait<0>();
  warpgroup_fence_operand(c);
  if constexpr (kRegA) warpgroup_fence_operand(const_cast<TA&>(a));
}

// Issues C = A*B (+C unless zero_init) and commits it as one wgmma group, without waiting: the caller waits
// (warpgroup_wait<N>) and then fences the operands (finish_gemm).
template <bool kZeroInit, bool kRegA, class Mma, class TA, class TB, class TC>
__device__ __forceinline__ void issue_gemm(Mma& mma, TA const& a, TB const& b, TC& c) {
  if constexpr (kRegA) warpgroup_fence_operand(const_cast<TA&>(a));
  warpgroup_fence_operand(c);
  warpgroup_arrive();
  if constexpr (kZeroInit) mma.accumulate_ = GMMA::ScaleOut::Zero;
  CUTE_UNROLL
  for (int kk = 0; kk < size<2>(a); ++kk) {
    cute::gemm(mma, a(_, _, kk), b(_, _, kk), c);
    mma.accumulate_ = GMMA::ScaleOut::One;
  }
  warpgroup_commit_batch();
}

// ((2,2,N/8),1,1) accumulator layout -> ((2,2,2),1,N/16) A-operand layout of the next MMA (P in registers).
template <class Layout>
__device__ __forceinline__ auto accumulator_as_a_operand(Layout acc) {
  auto values = get<0>(acc);
  auto chunks = get<0>(logical_divide(get<2>(values), Tile<_2>{}));  // (2, N/16)
  return make_layout(make_layout(get<0>(values), get<1>(values), get<0>(chunks)), get<1>(acc),
                     make_layout(get<1>(chunks)));
}

// Sets scores of keys at or past `valid` in this block to -inf.
template <int BK, class TS>
__device__ __forceinline__ void mask_keys(TS& s, int valid, int lane) {
  if (valid >= BK) return;
  CUTE_UNROLL
  for (int j = 0; j < BK / 8; ++j) {
    CUTE_UNROLL
    for (int c = 0; c < 2; ++c) {
      const int col = 8 * j + 2 * (lane % 4) + c;
      if (col >= valid) {
        s(c + 4 * j) = -INFINITY;
        s(c + 2 + 4 * j) = -INFINITY;
      }
    }
  }
}

// 2^x in one MUFU instruction. exp2f() also handles denormal results (extra instructions per element in the softmax's
// hot loop); a probability below 2^-126 flushed to 0 changes nothing here.
__device__ __forceinline__ float exp2_approx(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}

__device__ __forceinline__ float quad_max(float x) {
  x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 1));
  return fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 2));
}
__device__ __forceinline__ float quad_sum(float x) {
  x += __shfl_xor_sync(0xffffffffu, x, 1);
  return x + __shfl_xor_sync(0xffffffffu, x, 2);
}

// The row max in the exp2 domain; 0 while the row has seen no valid key (avoids -inf - -inf).
__device__ __forceinline__ float scaled_max(float m, float scale_log2) {
  return m == -INFINITY ? 0.f : m * scale_log2;
}

// Online-softmax state of the two rows a thread holds. Sums are per-thread partials until finish().
struct RowState {
  float max[2] = {-INFINITY, -INFINITY};
  float sum[2] = {0.f, 0.f};
};

// This thread's running max of row r over one score fragment.
template <int BK, class TS>
__device__ __forceinline__ float fragment_row_max(TS const& s, int r, float m) {
  CUTE_UNROLL
  for (int j = 0; j < BK / 8; ++j) m = fmaxf(m, fmaxf(s(2 * r + 4 * j), s(1 + 2 * r + 4 * j)));
  return m;
}

// Replaces row r's scores in one fragment by exp2(score * scale - m_scaled); returns their sum.
template <int BK, class TS>
__device__ __forceinline__ float fragment_row_exp(TS& s, int r, float m_scaled, float scale_log2) {
  float sum = 0.f;
  CUTE_UNROLL
  for (int j = 0; j < BK / 8; ++j) {
    CUTE_UNROLL
    for (int c = 0; c < 2; ++c) {
      const float e = exp2_approx(fmaf(s(c + 2 * r + 4 * j), scale_log2, -m_scaled));
      s(c + 2 * r + 4 * j) = e;
      sum += e;
    }
  }
  return sum;
}

// How far (in the exp2 domain) a row's running max may lag its true max before the output is rescaled: while a step
// raises the max by at most 2^8, the old max is kept, alpha is exactly 1 and rescale_rows skips the O multiply
// (FlashAttention-4's conditional rescaling). Probabilities then reach up to 2^8 before the final division by the
// row sum: fp32 sums and bf16 P (same relative rounding at any magnitude) take that. H100, session 11: -2% time at
// 128-token blocks (v5), unchanged at 64 (v4); outputs within bf16 rounding of the exact softmax.
constexpr float kMaxLagLog2 = 8.f;

// Turns scores into probabilities against the row's reference max (the running max, or one lagging it by at most
// kMaxLagLog2); alpha[r] is the factor the output rows still have to be multiplied by (kept apart so the rescale can
// wait for a PV wgmma still in flight). The scores may come as several BK-column fragments (one step over several key
// blocks): one max and one rescale for all.
template <int BK, class... TS>
__device__ __forceinline__ void softmax_update_blocks(RowState& st, float alpha[2], float scale_log2, TS&... s) {
  CUTE_UNROLL
  for (int r = 0; r < 2; ++r) {
    float m = st.max[r];
    ((m = fragment_row_max<BK>(s, r, m)), ...);
    m = quad_max(m);
    // The quad's four threads hold the same m, so a row keeps one reference max.
    const bool keep = st.max[r] != -INFINITY && (m - st.max[r]) * scale_log2 <= kMaxLagLog2;
    if (keep) m = st.max[r];
    const float m_scaled = scaled_max(m, scale_log2);
    alpha[r] = keep ? 1.f : exp2_approx(st.max[r] * scale_log2 - m_scaled);  // 0 when the old max was -inf
    st.max[r] = m;
    float sum = 0.f;
    ((sum += fragment_row_exp<BK>(s, r, m_scaled, scale_log2)), ...);
    st.sum[r] = st.sum[r] * alpha[r] + sum;
  }
}

template <int BK, class TS>
__device__ __forceinline__ void softmax_update(TS& s, RowState& st, float alpha[2], float scale_log2) {
  softmax_update_blocks<BK>(st, alpha, scale_log2, s);
}

// Skipped when no row of the warp moved its reference max (alpha == 1 exactly: multiplying would change nothing). With
// kMaxLagLog2 that is nearly every step after a row's first, and the 64-register multiply is a large share of a
// step's softmax.
template <class TO>
__device__ __forceinline__ void rescale_rows(TO& o, const float alpha[2]) {
  if (!__any_sync(0xffffffffu, alpha[0] != 1.f || alpha[1] != 1.f)) return;
  CUTE_UNROLL
  for (int j = 0; j < size(o) / 4; ++j) {
    CUTE_UNROLL
    for (int r = 0; r < 2; ++r) {
      o(2 * r + 4 * j) *= alpha[r];
      o(1 + 2 * r + 4 * j) *= alpha[r];
    }
  }
}

template <int BK, class TS, class TO>
__device__ __forceinline__ void online_softmax(TS& s, TO& o, RowState& st, float scale_log2) {
  float alpha[2];
  softmax_update<BK>(s, st, alpha, scale_log2);
  rescale_rows(o, alpha);
}

// dst = bf16(src) for register fragments of equal size, two values per instruction (cvt.rn.bf16x2.f32).
template <class TS, class TP>
__device__ __forceinline__ void convert_to_bf16(TS const& src, TP& dst) {
  constexpr int N = decltype(size(src))::value;
  static_assert(N % 2 == 0 && N == decltype(size(dst))::value);
  using Converter = cutlass::NumericArrayConverter<Element, float, N>;
  *reinterpret_cast<typename Converter::result_type*>(raw_pointer_cast(dst.data())) =
      Converter{}(*reinterpret_cast<const typename Converter::source_type*>(raw_pointer_cast(src.data())));
}

// Completes the row sums over the quad and returns 1/sum per row (0 for a row with no valid key).
__device__ __forceinline__ void finish_rows(RowState& st, float inv_sum[2]) {
  CUTE_UNROLL
  for (int r = 0; r < 2; ++r) {
    st.sum[r] = quad_sum(st.sum[r]);
    inv_sum[r] = st.sum[r] > 0.f ? 1.f / st.sum[r] : 0.f;
  }
}

// Probabilities of a block's scores under the final row statistics, summed over this thread's valid rows.
template <int BK, class TS>
__device__ __forceinline__ float block_mass_partial(TS const& s, const RowState& st, const float inv_sum[2],
                                                    const bool row_valid[2], float scale_log2) {
  float total = 0.f;
  CUTE_UNROLL
  for (int r = 0; r < 2; ++r) {
    const float m_scaled = scaled_max(st.max[r], scale_log2);
    float sum = 0.f;
    CUTE_UNROLL
    for (int j = 0; j < BK / 8; ++j) {
      CUTE_UNROLL
      for (int c = 0; c < 2; ++c) sum += exp2_approx(fmaf(s(c + 2 * r + 4 * j), scale_log2, -m_scaled));
    }
    if (row_valid[r]) total += sum * inv_sum[r];
  }
  return total;
}

__device__ __forceinline__ float warp_sum(float x) {
  CUTE_UNROLL
  for (int o = 16; o > 0; o >>= 1) x += __shfl_xor_sync(0xffffffffu, x, o);
  return x;
}

}  // namespace sparvar::attention_cuda
