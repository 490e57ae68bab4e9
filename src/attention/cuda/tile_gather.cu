// Tile-order gather / scatter kernels (see tile_gather.h). Pure memory movement: one thread moves VEC
// consecutive elements of one row (16 bytes of bf16 when VEC = 8), grid-stride over (bh, row, chunk).
#include <cuda_bf16.h>

#include "tile_gather.h"

namespace sparvar::attn_cuda {
namespace {

using bf16 = __nv_bfloat16;

template <typename T> __device__ inline float to_float(T x);
template <> __device__ inline float to_float<float>(float x) { return x; }
template <> __device__ inline float to_float<bf16>(bf16 x) { return __bfloat162float(x); }
template <typename T> __device__ inline T from_float(float x);
template <> __device__ inline float from_float<float>(float x) { return x; }
template <> __device__ inline bf16 from_float<bf16>(float x) { return __float2bfloat16_rn(x); }

// Moves VEC elements; same-type copies go through one aligned vector load/store.
template <typename Src, typename Dst, int VEC>
__device__ inline void move(const Src* s, Dst* d) {
  if constexpr (sizeof(Src) == sizeof(Dst) && VEC * sizeof(Src) == 16) {
    *reinterpret_cast<uint4*>(d) = *reinterpret_cast<const uint4*>(s);
  } else {
#pragma unroll
    for (int i = 0; i < VEC; ++i) d[i] = from_float<Dst>(to_float<Src>(s[i]));
  }
}

template <typename Src, int VEC>
__global__ void gather_kernel(const Src* __restrict__ src, int64_t src_rows, const int32_t* __restrict__ row_of_slot,
                              int64_t slots, bf16* __restrict__ dst, int64_t bh_count, int dim) {
  const int chunks = dim / VEC;
  const int64_t total = bh_count * slots * chunks;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < total; i += int64_t{gridDim.x} * blockDim.x) {
    const int c = static_cast<int>(i % chunks);
    const int64_t slot = (i / chunks) % slots, bh = i / (int64_t{chunks} * slots);
    bf16* d = dst + (bh * slots + slot) * dim + int64_t{c} * VEC;
    const int32_t row = row_of_slot[slot];
    if (row >= 0) {
      move<Src, bf16, VEC>(src + (bh * src_rows + row) * dim + int64_t{c} * VEC, d);
    } else {
#pragma unroll
      for (int e = 0; e < VEC; ++e) d[e] = __float2bfloat16_rn(0.0f);
    }
  }
}

template <typename Dst, int VEC>
__global__ void scatter_kernel(const bf16* __restrict__ src, int64_t src_slots, const int32_t* __restrict__ slot_of_row,
                               int64_t rows, Dst* __restrict__ dst, int64_t bh_count, int dim, int64_t dst_heads) {
  const int chunks = dim / VEC;
  const int64_t total = bh_count * rows * chunks;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < total; i += int64_t{gridDim.x} * blockDim.x) {
    const int c = static_cast<int>(i % chunks);
    const int64_t row = (i / chunks) % rows, bh = i / (int64_t{chunks} * rows);
    const int64_t dst_row = dst_heads > 0 ? ((bh / dst_heads) * rows + row) * dst_heads + bh % dst_heads : bh * rows + row;
    move<bf16, Dst, VEC>(src + (bh * src_slots + slot_of_row[row]) * dim + int64_t{c} * VEC,
                         dst + dst_row * dim + int64_t{c} * VEC);
  }
}

bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15) == 0; }

dim3 grid_for(int64_t work) {
  const int64_t blocks = (work + 255) / 256;
  return dim3(static_cast<unsigned>(blocks < 65535 * 8 ? (blocks > 0 ? blocks : 1) : 65535 * 8));
}

}  // namespace

cudaError_t gather_rows_to_tiles_bf16(const void* src, bool src_f32, int64_t src_rows, const int32_t* row_of_slot,
                                      int64_t slots, void* dst, int64_t bh_count, int dim, cudaStream_t stream) {
  if (dim <= 0 || slots < 0 || bh_count < 0) return cudaErrorInvalidValue;
  if (slots == 0 || bh_count == 0) return cudaSuccess;
  // Vector path needs dim % 8 == 0 and 16-byte aligned rows (row strides are then multiples of 16 bytes).
  const bool vec = dim % 8 == 0 && aligned16(src) && aligned16(dst);
  const int vw = vec ? 8 : 1;
  const dim3 grid = grid_for(bh_count * slots * (dim / vw));
  auto* d = static_cast<bf16*>(dst);
  if (src_f32) {
    const auto* s = static_cast<const float*>(src);
    if (vec) gather_kernel<float, 8><<<grid, 256, 0, stream>>>(s, src_rows, row_of_slot, slots, d, bh_count, dim);
    else gather_kernel<float, 1><<<grid, 256, 0, stream>>>(s, src_rows, row_of_slot, slots, d, bh_count, dim);
  } else {
    const auto* s = static_cast<const bf16*>(src);
    if (vec) gather_kernel<bf16, 8><<<grid, 256, 0, stream>>>(s, src_rows, row_of_slot, slots, d, bh_count, dim);
    else gather_kernel<bf16, 1><<<grid, 256, 0, stream>>>(s, src_rows, row_of_slot, slots, d, bh_count, dim);
  }
  return cudaGetLastError();
}

cudaError_t scatter_tiles_to_rows(const void* src, int64_t src_slots, const int32_t* slot_of_row, int64_t rows,
                                  void* dst, bool dst_f32, int64_t bh_count, int dim, cudaStream_t stream,
                                  int64_t dst_heads) {
  if (dim <= 0 || rows < 0 || bh_count < 0 || dst_heads < 0 || (dst_heads > 0 && bh_count % dst_heads != 0))
    return cudaErrorInvalidValue;
  if (rows == 0 || bh_count == 0) return cudaSuccess;
  const bool vec = dim % 8 == 0 && aligned16(src) && aligned16(dst);
  const int vw = vec ? 8 : 1;
  const dim3 grid = grid_for(bh_count * rows * (dim / vw));
  const auto* s = static_cast<const bf16*>(src);
  if (dst_f32) {
    auto* d = static_cast<float*>(dst);
    if (vec) scatter_kernel<float, 8><<<grid, 256, 0, stream>>>(s, src_slots, slot_of_row, rows, d, bh_count, dim, dst_heads);
    else scatter_kernel<float, 1><<<grid, 256, 0, stream>>>(s, src_slots, slot_of_row, rows, d, bh_count, dim, dst_heads);
  } else {
    auto* d = static_cast<bf16*>(dst);
    if (vec) scatter_kernel<bf16, 8><<<grid, 256, 0, stream>>>(s, src_slots, slot_of_row, rows, d, bh_count, dim, dst_heads);
    else scatter_kernel<bf16, 1><<<grid, 256, 0, stream>>>(s, src_slots, slot_of_row, rows, d, bh_count, dim, dst_heads);
  }
  return cudaGetLastError();
}

}  // namespace sparvar::attn_cuda
