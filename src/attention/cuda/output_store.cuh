// The epilogue store of one consumer's finished 64 x D output tile (scaled by 1/row sum, in bf16), shared by the
// simple and pipelined kernels. Two destinations:
//  - row-major out [B*H, nq, D]: the tile's 64 query slots in place (padding slots included);
//  - with p.out_rows, token-major out [B, out_tokens, heads, D] at the token each slot holds (padding slots,
//    -1, are skipped), so the output projection reads it with no scatter pass in between.
// Fragment indexing as in attention_tile.cuh: value c + 2*r + 4*j is row 16*warp + lane/4 + 8*r, column
// 8*j + 2*(lane%4) + c, so each thread stores 2-element runs.
#pragma once

#include "attention_tile.cuh"
#include "kernel_params.cuh"

#include <cstdint>

namespace sparvar::attention_cuda {

// out: the finished tile (bf16 fragment of the PV accumulator's layout); tid: thread index in the warpgroup.
template <int D, class Frag>
__device__ __forceinline__ void store_out_tile(const KernelParams& p, int bh, int qtile, const Frag& out, int tid) {
  const int warp = tid / 32, lane = tid % 32;
  const int b = bh / p.heads, h = bh % p.heads;
  CUTE_UNROLL
  for (int r = 0; r < 2; ++r) {
    const int slot = qtile * kTileM + 16 * warp + lane / 4 + 8 * r;
    long long base;
    if (p.out_rows) {
      const int token = p.out_rows[slot];
      if (token < 0 || token >= p.out_tokens) continue;
      base = ((static_cast<long long>(b) * p.out_tokens + token) * p.heads + h) * D;
    } else {
      base = (static_cast<long long>(bh) * p.nq + slot) * D;
    }
    Element* row = reinterpret_cast<Element*>(p.out) + base + 2 * (lane % 4);
    CUTE_UNROLL
    for (int j = 0; j < D / 8; ++j) {
      const uint32_t pair = static_cast<uint32_t>(out(2 * r + 4 * j).raw()) |
                            (static_cast<uint32_t>(out(1 + 2 * r + 4 * j).raw()) << 16);
      *reinterpret_cast<uint32_t*>(row + 8 * j) = pair;
    }
  }
}

}  // namespace sparvar::attention_cuda
