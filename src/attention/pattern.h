// Block-sparse attention patterns: which key blocks each query block attends to, for ONE query scale k
// against the keys of scales 0..k, per head. And the kernel-facing contract, BlockSparseLayout.
//
// Index spaces (see tile_order.h): query blocks are the blocks of TileLayout(scale k .. k, q_tile); key
// blocks are the blocks of TileLayout(scales 0..k, k_tile), i.e. ids in the concatenated padded key
// layout, which is also a prefix of the full-sequence layout the KV cache uses.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "attention/tile_order.h"

namespace sparvar {

// CSR lists of key blocks. Row r = head * num_q_blocks + q_block (head = 0 only when shared):
// col_blocks[row_offsets[r] .. row_offsets[r+1]) are the key blocks of that row, strictly ascending.
struct BlockPattern {
  int num_q_blocks = 0;
  int num_k_blocks = 0;
  int heads = 1;                     // heads of the attention this pattern drives
  bool shared_across_heads = true;   // one list set serves every head (rows = num_q_blocks)
  std::vector<int32_t> row_offsets;  // [pattern_heads() * num_q_blocks + 1], row_offsets[0] = 0
  std::vector<int32_t> col_blocks;   // [row_offsets.back()]

  int pattern_heads() const { return shared_across_heads ? 1 : heads; }
  int num_rows() const { return pattern_heads() * num_q_blocks; }
  int64_t nnz() const { return row_offsets.empty() ? 0 : row_offsets.back(); }
  // The key blocks of (head, q_block); head is any of 0..heads-1, shared patterns ignore it.
  std::span<const int32_t> row(int head, int q_block) const {
    const int r = (shared_across_heads ? 0 : head) * num_q_blocks + q_block;
    return {col_blocks.data() + row_offsets[r], col_blocks.data() + row_offsets[r + 1]};
  }
};

// Throws Error naming the first problem unless: sizes consistent, offsets start at 0 and never decrease,
// every row non-empty, columns strictly ascending and in [0, num_k_blocks). Run before any kernel launch.
void validate(const BlockPattern& pattern);

// Everything a block-sparse attention kernel needs besides the tensors. The kernel takes
//   q: [B, H, num_q_blocks * q_block_size, D]  (scale k, padded tile order),
//   k, v: [B, H, num_k_blocks * k_block_size, D]  (scales 0..k, padded tile order; the KV cache's prefix),
//   out: like q,
// and for query block qb of head h walks pattern.row(h, qb). In key block b only slots
// [0, k_block_valid[b]) are keys (the rest is padding and must be masked); in query block qb only slots
// [0, q_block_valid[qb]) are queries (outputs of padding slots are never read). Every listed block has at
// least one valid key, so every valid query has a well-defined softmax.
struct BlockSparseLayout {
  int q_block_size = 0;                // slots per query block (q tile h*w), e.g. 64 or 128
  int k_block_size = 0;                // slots per key block (k tile h*w)
  std::vector<int32_t> q_block_valid;  // [pattern.num_q_blocks], 1..q_block_size
  std::vector<int32_t> k_block_valid;  // [pattern.num_k_blocks], 1..k_block_size
  BlockPattern pattern;
  int32_t max_row_blocks = 0;          // longest row, for the kernel's work split / scratch sizing

  int64_t q_slots() const { return int64_t{pattern.num_q_blocks} * q_block_size; }
  int64_t k_slots() const { return int64_t{pattern.num_k_blocks} * k_block_size; }
};

// Attach geometry to a pattern (q_layout: the query scale alone; k_layout: scales 0..k). Validates.
BlockSparseLayout make_block_sparse_layout(BlockPattern pattern, const TileLayout& q_layout,
                                           const TileLayout& k_layout);
// validate(pattern) plus the geometry: sizes, valid lengths in range, max_row_blocks correct.
void validate(const BlockSparseLayout& layout);

// The dense pattern: every query block lists every key block (shared across heads).
BlockPattern dense_pattern(int num_q_blocks, int num_k_blocks, int heads = 1);

// The two layouts of one attention call at query scale k.
struct ScaleLayouts {
  TileLayout q;  // scale k alone, q tiles
  TileLayout k;  // scales 0..k, k tiles
};
ScaleLayouts make_scale_layouts(const ScaleSchedule& schedule, int query_scale, TileShape q_tile,
                                TileShape k_tile, int packed_scales = 0);

// How much of dense attention a pattern computes. Counted over every (head, batch-free) row.
struct PatternDensity {
  int64_t listed_blocks = 0;   // (head, q block, k block) triples listed
  int64_t total_blocks = 0;    // the same for the dense pattern
  double listed_pairs = 0;     // valid query x valid key token pairs in listed blocks
  double total_pairs = 0;      // valid query x valid key pairs of dense attention (= Nq * Nk per head)
  double listed_slots = 0;     // q_block_size x k_block_size per listed block: what a block kernel pays

  double block_fraction() const { return total_blocks ? double(listed_blocks) / total_blocks : 0; }
  // Share of the true attention pairs that are computed (what the pattern keeps).
  double pair_fraction() const { return total_pairs ? listed_pairs / total_pairs : 0; }
  // Full-block cost relative to dense unpadded attention (padding included; can exceed 1 for dense).
  double cost_fraction() const { return total_pairs ? listed_slots / total_pairs : 0; }
  PatternDensity& operator+=(const PatternDensity& o);
};
PatternDensity measure_density(const BlockSparseLayout& layout);

}  // namespace sparvar
