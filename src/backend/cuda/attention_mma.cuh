// Tensor-core building blocks shared by the dense attention kernels (attention_dense.cu, attention_short.cu):
// cp.async staging of bf16 row tiles into padded shared memory, ldmatrix and bf16 packing, over mma_bf16.cuh's
// cp.async and mma.sync m16n8k16 wrappers.
//
// Fragment layout of m16n8k16 (what every kernel here relies on): a thread holds rows lane / 4 and lane / 4 + 8
// of its 16-row tile, columns 8 * j + 2 * (lane % 4) + {0, 1} of each 8-column block j; a row lives in the 4
// threads of a quad.
#pragma once

#include <cuda_bf16.h>

#include <cstdint>

#include "backend/cuda/device_math.cuh"
#include "backend/cuda/mma_bf16.cuh"

namespace sparvar::cuda {

constexpr int kFlashRows = 64;   // query rows per block of the flash kernel
constexpr int kFlashKeys = 64;   // keys per tile
constexpr int kFlashThreads = 128;

// bf16 per shared-memory row: +16 bytes so the 8 rows an ldmatrix reads hit distinct banks.
template <int D>
constexpr int kFlashStride = D + 8;

__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr(p)));
}
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr(p)));
}

__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
  const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<const uint32_t*>(&v);
}

// The A fragment of O = P V for 16 keys: the S accumulators of their two 8-key blocks, rounded to bf16 (the
// accumulator layout of m16n8k16 is exactly the A layout of the next product).
__device__ __forceinline__ void scores_as_a_fragment(uint32_t (&a)[4], const float (&lo)[4], const float (&hi)[4]) {
  a[0] = pack_bf16(lo[0], lo[1]);
  a[1] = pack_bf16(lo[2], lo[3]);
  a[2] = pack_bf16(hi[0], hi[1]);
  a[3] = pack_bf16(hi[2], hi[3]);
}

// Softmax steps on the S accumulators of one 16-row tile, kBlocks n-tiles of 8 keys.

// S * scale_log2 (softmax in the exp2 domain), keys at or past a row's end set to -inf: end_a for row lane / 4,
// end_b for row lane / 4 + 8; key0 is this thread's first key (the tile's first key + 2 * (lane % 4)). Returns
// the row maxima of this thread's values in max_a / max_b (the quad then reduces them: warp_max<4>).
template <int kBlocks, typename Key>
__device__ __forceinline__ void scale_mask_max(float (&s)[kBlocks][4], Key key0, Key end_a, Key end_b,
                                               float scale_log2, float& max_a, float& max_b) {
#pragma unroll
  for (int nt = 0; nt < kBlocks; ++nt) {
#pragma unroll
    for (int e = 0; e < 2; ++e) {
      const Key key = key0 + nt * 8 + e;
      s[nt][e] = key < end_a ? s[nt][e] * scale_log2 : -INFINITY;
      s[nt][2 + e] = key < end_b ? s[nt][2 + e] * scale_log2 : -INFINITY;
      max_a = fmaxf(max_a, s[nt][e]);
      max_b = fmaxf(max_b, s[nt][2 + e]);
    }
  }
}

// P = 2^(S - row base) in place; adds this thread's part of each row's sum to sum_a / sum_b.
template <int kBlocks>
__device__ __forceinline__ void exp2_and_sum(float (&s)[kBlocks][4], float base_a, float base_b, float& sum_a,
                                             float& sum_b) {
#pragma unroll
  for (int nt = 0; nt < kBlocks; ++nt) {
    s[nt][0] = exp2f(s[nt][0] - base_a);
    s[nt][1] = exp2f(s[nt][1] - base_a);
    s[nt][2] = exp2f(s[nt][2] - base_b);
    s[nt][3] = exp2f(s[nt][3] - base_b);
    sum_a += s[nt][0] + s[nt][1];
    sum_b += s[nt][2] + s[nt][3];
  }
}

// The A fragment (16 rows x 16 columns, from column col0) of a padded [16+, D] shared tile.
template <int D>
__device__ __forceinline__ void load_a_fragment(uint32_t (&a)[4], const bf16* tile, int col0, int lane) {
  ldmatrix_x4(a, tile + ((lane % 8) + ((lane / 8) % 2) * 8) * kFlashStride<D> + col0 + (lane / 16) * 8);
}

// B fragments of S = Q K^T for keys [key0, key0 + 16) and head columns [col0, col0 + 16) of a padded K tile:
// b[0], b[1] for keys key0..+7, b[2], b[3] for keys key0+8..+15.
template <int D>
__device__ __forceinline__ void load_k_fragments(uint32_t (&b)[4], const bf16* k_tile, int key0, int col0, int lane) {
  ldmatrix_x4(b, k_tile + (key0 + (lane % 8) + (lane / 16) * 8) * kFlashStride<D> + col0 + ((lane / 8) % 2) * 8);
}

// B fragments of O = P V for keys [key0, key0 + 16) and head columns [col0, col0 + 16) of a padded V tile:
// b[0], b[1] for columns col0..+7, b[2], b[3] for columns col0+8..+15.
template <int D>
__device__ __forceinline__ void load_v_fragments(uint32_t (&b)[4], const bf16* v_tile, int key0, int col0, int lane) {
  ldmatrix_x4_trans(b, v_tile + (key0 + (lane % 8) + ((lane / 8) % 2) * 8) * kFlashStride<D> + col0 + (lane / 16) * 8);
}

// Copies rows [row0, row0 + kRows) of a [rows, D] bf16 matrix (rows `row_stride` elements apart) into a padded
// shared tile, `thread` being this thread's index among the kThreads that share the copy; rows >= rows_total
// are zero and their source is never read.
template <int D, int kRows, int kThreads>
__device__ __forceinline__ void load_rows_async(bf16* tile, const bf16* src, int64_t row0, int64_t rows_total,
                                                int64_t row_stride, int thread) {
  constexpr int kChunksPerRow = D / 8;
  constexpr int kChunks = kRows * kChunksPerRow;
  for (int c = thread; c < kChunks; c += kThreads) {
    const int r = c / kChunksPerRow, col = (c % kChunksPerRow) * 8;
    const int64_t row = row0 + r;
    const bool inside = row < rows_total;
    cp_async16(tile + r * kFlashStride<D> + col, src + (inside ? row : 0) * row_stride + col, inside ? 16 : 0);
  }
}

// A 64-row tile copied by the kFlashThreads threads of a flash-kernel block.
template <int D>
__device__ __forceinline__ void load_tile_async(bf16* tile, const bf16* src, int64_t row0, int64_t rows_total,
                                                int64_t row_stride = D) {
  load_rows_async<D, kFlashRows, kFlashThreads>(tile, src, row0, rows_total, row_stride, threadIdx.x);
}

}  // namespace sparvar::cuda
