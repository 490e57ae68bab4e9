// The epilogue store of one consumer's finished 64 x D output tile (scaled by 1/row sum, in bf16), shared by every
// kernel. Two destinations:
//  - row-major out [B*H, nq, D]: the tile's 64 query slots in place (padding slots included);
//  - with p.out_rows, token-major out [B, out_tokens, heads, D] at the token each slot holds (padding slots,
//    -1, are skipped), so the output projection reads it with no scatter pass in between.
// Fragment indexing as in attention_tile.cuh: value c + 2*r + 4*j is row 16*warp + lane/4 + 8*r, column
// 8*j + 2*(lane%4) + c. Every lane of the warp runs the shuffles (rows that are not written included); out must be
// 16-byte aligned (the launcher checks).
#pragma once

#include "attention_tile.cuh"
#include "kernel_params.cuh"

#include <cstdint>

namespace sparvar::attention_cuda {

// Where query slot `slot` of (batch*head) bh writes its D values, or null for a padding slot of out_rows.
template <int D>
__device__ __forceinline__ Element* output_row(const KernelParams& p, int bh, int slot) {
  if (!p.out_rows) return reinterpret_cast<Element*>(p.out) + (static_cast<long long>(bh) * p.nq + slot) * D;
  const int token = p.out_rows[slot];
  if (token < 0 || token >= p.out_tokens) return nullptr;
  const int b = bh / p.heads, h = bh % p.heads;
  return reinterpret_cast<Element*>(p.out) + ((static_cast<long long>(b) * p.out_tokens + token) * p.heads + h) * D;
}

// out: the finished tile (bf16 fragment of the PV accumulator's layout); tid: thread index in the warpgroup.
template <int D, class Frag>
__device__ __forceinline__ void store_out_tile(const KernelParams& p, int bh, int qtile, const Frag& out, int tid) {
  const int warp = tid / 32, lane = tid % 32;
  CUTE_UNROLL
  for (int r = 0; r < 2; ++r) {
    // null: a padding slot of out_rows (its lanes still take part in the shuffles)
    Element* row = output_row<D>(p, bh, qtile * kTileM + 16 * warp + lane / 4 + 8 * r);
    const bool write = row != nullptr;
    // A quad holds a row; thread q has columns 8j + 2q, +1 for every j. Transposed within the quad (two shuffle
    // rounds per 4 j), thread q gets columns 8(4k + q) .. +7: one 16-byte store instead of four 4-byte ones.
    // H100 (session 11): -11% time at 5% density, -5% at 10%, bit-identical outputs; 4-byte stores cost 20% there.
    const int q = lane % 4;
    const bool hi = q & 2, odd = q & 1;
    CUTE_UNROLL
    for (int k = 0; k < D / 32; ++k) {
      uint32_t a[4];  // a[i]: columns 8(4k + i) + 2q, +1
      CUTE_UNROLL
      for (int i = 0; i < 4; ++i)
        a[i] = static_cast<uint32_t>(out(2 * r + 4 * (4 * k + i)).raw()) |
               (static_cast<uint32_t>(out(1 + 2 * r + 4 * (4 * k + i)).raw()) << 16);
      // Round 1, partner q ^ 2: swap the off-diagonal 2 x 2 blocks.
      const uint32_t r0 = __shfl_xor_sync(0xffffffffu, hi ? a[0] : a[2], 2);
      const uint32_t r1 = __shfl_xor_sync(0xffffffffu, hi ? a[1] : a[3], 2);
      const uint32_t c0 = hi ? r0 : a[0], c1 = hi ? r1 : a[1], c2 = hi ? a[2] : r0, c3 = hi ? a[3] : r1;
      // Round 2, partner q ^ 1: swap within the 2 x 2 blocks.
      const uint32_t s0 = __shfl_xor_sync(0xffffffffu, odd ? c0 : c1, 1);
      const uint32_t s1 = __shfl_xor_sync(0xffffffffu, odd ? c2 : c3, 1);
      uint4 v;  // from threads 0..3 of the quad: columns 8(4k + q) + 0..7
      v.x = odd ? s0 : c0;
      v.y = odd ? c1 : s0;
      v.z = odd ? s1 : c2;
      v.w = odd ? c3 : s1;
      if (write) *reinterpret_cast<uint4*>(row + 8 * (4 * k + q)) = v;
    }
  }
}

// The finished PV accumulator o scaled by 1/row sum (inv_sum from finish_rows), in bf16, then store_out_tile.
template <int D, class Acc>
__device__ __forceinline__ void store_scaled_tile(const KernelParams& p, int bh, int qtile, const Acc& o,
                                                  const float inv_sum[2], int tid) {
  Tensor out = make_fragment_like<Element>(o);
  CUTE_UNROLL
  for (int e = 0; e < size(o); ++e) out(e) = Element(o(e) * inv_sum[(e / 2) % 2]);
  store_out_tile<D>(p, bh, qtile, out, tid);
}

}  // namespace sparvar::attention_cuda
