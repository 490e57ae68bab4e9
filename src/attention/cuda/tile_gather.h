// Tile-order gather / scatter on the GPU: the CUDA side of tile_order.h's rows_to_padded / padded_to_rows,
// for the sparse attention runner. The block-sparse kernel wants bf16 q/k/v in padded tile order; the model
// keeps row-major [B, H, N, D] (q) and a row-major KV cache [B, H, capacity, D]. The permutation tables are
// the TileLayout's (uploaded once per resolution by the caller).
// fmt-free (nvcc's C++20 front end cannot compile fmt 9): launch failures come back as cudaError_t.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace sparvar::attn_cuda {

// For every (bh, slot): dst[bh, slot, :] = src[bh, row_of_slot[slot], :] when row_of_slot[slot] >= 0, else 0
// (padding is written too, so dst is fully defined). src: [bh_count, src_rows, dim] in bf16 or f32 (src_f32),
// of which only the rows named by row_of_slot are read; dst: bf16 [bh_count, slots, dim].
cudaError_t gather_rows_to_tiles_bf16(const void* src, bool src_f32, int64_t src_rows, const int32_t* row_of_slot,
                                      int64_t slots, void* dst, int64_t bh_count, int dim, cudaStream_t stream);

// For every (bh, row < rows): dst[bh, row, :] = src[bh, slot_of_row[row], :]. src: bf16 [bh_count, src_slots,
// dim]; dst: [bh_count, rows, dim] in bf16 or f32 (dst_f32), or with dst_heads > 0 token-major
// [bh_count / dst_heads, rows, dst_heads, dim] (bh = batch * dst_heads + head: what the output projection reads).
cudaError_t scatter_tiles_to_rows(const void* src, int64_t src_slots, const int32_t* slot_of_row, int64_t rows,
                                  void* dst, bool dst_f32, int64_t bh_count, int dim, cudaStream_t stream,
                                  int64_t dst_heads = 0);

}  // namespace sparvar::attn_cuda
