#include "attention/pattern.h"

#include <algorithm>

#include "core/error.h"

namespace sparvar {

void validate(const BlockPattern& p) {
  SPARVAR_CHECK(p.num_q_blocks >= 1 && p.num_k_blocks >= 1 && p.heads >= 1,
                "block pattern: need >= 1 query block, key block and head (got {}, {}, {})", p.num_q_blocks,
                p.num_k_blocks, p.heads);
  const int rows = p.num_rows();
  SPARVAR_CHECK(p.row_offsets.size() == static_cast<size_t>(rows) + 1,
                "block pattern: row_offsets has {} entries, expected {} ({} heads x {} query blocks + 1)",
                p.row_offsets.size(), rows + 1, p.pattern_heads(), p.num_q_blocks);
  SPARVAR_CHECK(p.row_offsets[0] == 0, "block pattern: row_offsets[0] = {}, expected 0", p.row_offsets[0]);
  SPARVAR_CHECK(static_cast<size_t>(p.row_offsets.back()) == p.col_blocks.size(),
                "block pattern: row_offsets ends at {} but col_blocks has {} entries", p.row_offsets.back(),
                p.col_blocks.size());
  for (int r = 0; r < rows; ++r) {
    const int32_t b = p.row_offsets[r], e = p.row_offsets[r + 1];
    const int head = r / p.num_q_blocks, qb = r % p.num_q_blocks;
    SPARVAR_CHECK(e > b, "block pattern: row of head {} query block {} is empty (offsets {}..{})", head, qb, b, e);
    for (int32_t i = b; i < e; ++i) {
      const int32_t c = p.col_blocks[i];
      SPARVAR_CHECK(c >= 0 && c < p.num_k_blocks, "block pattern: head {} query block {} lists key block {} of {}",
                    head, qb, c, p.num_k_blocks);
      SPARVAR_CHECK(i == b || c > p.col_blocks[i - 1],
                    "block pattern: head {} query block {}: key blocks not strictly ascending ({} after {})", head,
                    qb, c, p.col_blocks[i - 1]);
    }
  }
}

void validate(const BlockSparseLayout& l) {
  validate(l.pattern);
  SPARVAR_CHECK(l.q_block_size >= 1 && l.k_block_size >= 1, "block sparse layout: block sizes {} / {} must be >= 1",
                l.q_block_size, l.k_block_size);
  SPARVAR_CHECK(l.q_block_valid.size() == static_cast<size_t>(l.pattern.num_q_blocks) &&
                    l.k_block_valid.size() == static_cast<size_t>(l.pattern.num_k_blocks),
                "block sparse layout: valid lengths for {} query / {} key blocks, pattern has {} / {}",
                l.q_block_valid.size(), l.k_block_valid.size(), l.pattern.num_q_blocks, l.pattern.num_k_blocks);
  for (size_t i = 0; i < l.q_block_valid.size(); ++i)
    SPARVAR_CHECK(l.q_block_valid[i] >= 1 && l.q_block_valid[i] <= l.q_block_size,
                  "block sparse layout: query block {} has {} valid tokens of {}", i, l.q_block_valid[i], l.q_block_size);
  for (size_t i = 0; i < l.k_block_valid.size(); ++i)
    SPARVAR_CHECK(l.k_block_valid[i] >= 1 && l.k_block_valid[i] <= l.k_block_size,
                  "block sparse layout: key block {} has {} valid tokens of {}", i, l.k_block_valid[i], l.k_block_size);
  int32_t longest = 0;
  for (int r = 0; r < l.pattern.num_rows(); ++r)
    longest = std::max(longest, l.pattern.row_offsets[r + 1] - l.pattern.row_offsets[r]);
  SPARVAR_CHECK(longest == l.max_row_blocks, "block sparse layout: max_row_blocks = {}, longest row has {}",
                l.max_row_blocks, longest);
}

BlockSparseLayout make_block_sparse_layout(BlockPattern pattern, const TileLayout& q_layout,
                                           const TileLayout& k_layout) {
  SPARVAR_CHECK(pattern.num_q_blocks == q_layout.num_blocks() && pattern.num_k_blocks == k_layout.num_blocks(),
                "block pattern is {} x {} blocks but the layouts have {} query and {} key blocks",
                pattern.num_q_blocks, pattern.num_k_blocks, q_layout.num_blocks(), k_layout.num_blocks());
  BlockSparseLayout l;
  l.q_block_size = q_layout.block_size();
  l.k_block_size = k_layout.block_size();
  l.q_block_valid = q_layout.block_valid();
  l.k_block_valid = k_layout.block_valid();
  for (int r = 0; r < pattern.num_rows(); ++r)
    l.max_row_blocks = std::max(l.max_row_blocks, pattern.row_offsets[r + 1] - pattern.row_offsets[r]);
  l.pattern = std::move(pattern);
  validate(l);
  return l;
}

BlockPattern dense_pattern(int num_q_blocks, int num_k_blocks, int heads) {
  SPARVAR_CHECK(num_q_blocks >= 1 && num_k_blocks >= 1 && heads >= 1,
                "dense pattern needs >= 1 query block, key block and head (got {}, {}, {})", num_q_blocks,
                num_k_blocks, heads);
  BlockPattern p;
  p.num_q_blocks = num_q_blocks;
  p.num_k_blocks = num_k_blocks;
  p.heads = heads;
  p.shared_across_heads = true;
  p.row_offsets.resize(num_q_blocks + 1);
  p.col_blocks.resize(int64_t{num_q_blocks} * num_k_blocks);
  for (int r = 0; r <= num_q_blocks; ++r) p.row_offsets[r] = r * num_k_blocks;
  for (int r = 0; r < num_q_blocks; ++r)
    for (int c = 0; c < num_k_blocks; ++c) p.col_blocks[int64_t{r} * num_k_blocks + c] = c;
  return p;
}

ScaleLayouts make_scale_layouts(const ScaleSchedule& schedule, int query_scale, TileShape q_tile, TileShape k_tile,
                                int packed_scales) {
  ScaleLayouts s;
  s.q = TileLayout::build(schedule, query_scale, query_scale, q_tile, packed_scales);
  s.k = TileLayout::build(schedule, 0, query_scale, k_tile, packed_scales);
  return s;
}

PatternDensity& PatternDensity::operator+=(const PatternDensity& o) {
  listed_blocks += o.listed_blocks;
  total_blocks += o.total_blocks;
  listed_pairs += o.listed_pairs;
  total_pairs += o.total_pairs;
  listed_slots += o.listed_slots;
  return *this;
}

PatternDensity measure_density(const BlockSparseLayout& l) {
  const BlockPattern& p = l.pattern;
  double q_tokens = 0, k_tokens = 0;
  for (int32_t v : l.q_block_valid) q_tokens += v;
  for (int32_t v : l.k_block_valid) k_tokens += v;
  PatternDensity d;
  for (int h = 0; h < p.pattern_heads(); ++h) {
    for (int qb = 0; qb < p.num_q_blocks; ++qb) {
      double keys = 0;
      auto row = p.row(h, qb);
      for (int32_t c : row) keys += l.k_block_valid[c];
      d.listed_pairs += keys * l.q_block_valid[qb];
      d.listed_blocks += static_cast<int64_t>(row.size());
    }
  }
  // A shared pattern stands for every head.
  const int mult = p.shared_across_heads ? p.heads : 1;
  d.listed_blocks *= mult;
  d.listed_pairs *= mult;
  d.listed_slots = double(d.listed_blocks) * l.q_block_size * l.k_block_size;
  d.total_blocks = int64_t{p.heads} * p.num_q_blocks * p.num_k_blocks;
  d.total_pairs = double(p.heads) * q_tokens * k_tokens;
  return d;
}

}  // namespace sparvar
