#include <gtest/gtest.h>

#include "attention/pattern.h"
#include "core/error.h"

using namespace sparvar;

namespace {
BlockPattern small_pattern() {
  // 2 heads x 2 query blocks over 3 key blocks.
  BlockPattern p;
  p.num_q_blocks = 2;
  p.num_k_blocks = 3;
  p.heads = 2;
  p.shared_across_heads = false;
  p.row_offsets = {0, 2, 3, 6, 7};
  p.col_blocks = {0, 2, 1, 0, 1, 2, 2};
  return p;
}
}  // namespace

TEST(Pattern, ValidateAcceptsGoodAndNamesBadPatterns) {
  BlockPattern p = small_pattern();
  EXPECT_NO_THROW(validate(p));
  EXPECT_EQ(p.row(1, 0).size(), 3u);
  EXPECT_EQ(p.row(1, 1)[0], 2);
  EXPECT_EQ(p.nnz(), 7);

  auto expect_bad = [](BlockPattern q, const char* needle) {
    try {
      validate(q);
      ADD_FAILURE() << "accepted a pattern that should fail with '" << needle << "'";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  BlockPattern q = small_pattern();
  q.col_blocks = {2, 0, 1, 0, 1, 2, 2};
  expect_bad(q, "ascending");
  q = small_pattern();
  q.col_blocks = {0, 0, 1, 0, 1, 2, 2};
  expect_bad(q, "ascending");  // duplicate
  q = small_pattern();
  q.col_blocks[6] = 3;
  expect_bad(q, "lists key block 3");
  q = small_pattern();
  q.col_blocks[0] = -1;
  expect_bad(q, "lists key block -1");
  q = small_pattern();
  q.row_offsets = {0, 2, 2, 6, 7};
  q.col_blocks = {0, 2, 0, 1, 2, 2, 1};
  expect_bad(q, "empty");
  q = small_pattern();
  q.row_offsets.pop_back();
  expect_bad(q, "row_offsets has 4 entries");
  q = small_pattern();
  q.shared_across_heads = true;  // then only 2 rows are expected
  expect_bad(q, "row_offsets has 5 entries");
  q = small_pattern();
  q.col_blocks.push_back(0);
  expect_bad(q, "col_blocks has 8");
  q = small_pattern();
  q.row_offsets = {1, 2, 3, 6, 7};
  expect_bad(q, "row_offsets[0]");
}

TEST(Pattern, DenseAndDensity) {
  ScaleSchedule s("t", {{1, 1}, {3, 5}, {10, 9}});
  ScaleLayouts l = make_scale_layouts(s, 2, {4, 4}, {4, 8}, 0);
  EXPECT_EQ(l.q.num_blocks(), 9);
  EXPECT_EQ(l.k.num_blocks(), 1 + 1 + 3 * 2);
  BlockSparseLayout dense = make_block_sparse_layout(dense_pattern(9, 8, 4), l.q, l.k);
  EXPECT_EQ(dense.max_row_blocks, 8);
  EXPECT_EQ(dense.q_block_size, 16);
  EXPECT_EQ(dense.k_block_size, 32);
  PatternDensity d = measure_density(dense);
  EXPECT_DOUBLE_EQ(d.pair_fraction(), 1.0);
  EXPECT_DOUBLE_EQ(d.block_fraction(), 1.0);
  EXPECT_DOUBLE_EQ(d.total_pairs, 4.0 * 90 * (1 + 15 + 90));
  EXPECT_DOUBLE_EQ(d.listed_slots, 4.0 * 9 * 8 * 16 * 32);
  EXPECT_GT(d.cost_fraction(), 1.0);  // padding costs

  // One head-specific pattern: head 0 lists block 0 only, head 1 everything.
  BlockPattern p;
  p.num_q_blocks = 9;
  p.num_k_blocks = 8;
  p.heads = 2;
  p.shared_across_heads = false;
  p.row_offsets.push_back(0);
  for (int r = 0; r < 9; ++r) { p.col_blocks.push_back(0); p.row_offsets.push_back(p.col_blocks.size()); }
  for (int r = 0; r < 9; ++r) {
    for (int c = 0; c < 8; ++c) p.col_blocks.push_back(c);
    p.row_offsets.push_back(p.col_blocks.size());
  }
  BlockSparseLayout sl = make_block_sparse_layout(p, l.q, l.k);
  PatternDensity ds = measure_density(sl);
  EXPECT_EQ(ds.listed_blocks, 9 + 72);
  EXPECT_DOUBLE_EQ(ds.listed_pairs, 90.0 * 1 + 90.0 * 106);
  EXPECT_DOUBLE_EQ(ds.pair_fraction(), (1.0 + 106.0) / (2 * 106.0));
  PatternDensity sum = d;
  sum += ds;
  EXPECT_EQ(sum.listed_blocks, d.listed_blocks + ds.listed_blocks);

  EXPECT_THROW(make_block_sparse_layout(dense_pattern(8, 8), l.q, l.k), Error);
  BlockSparseLayout bad = dense;
  bad.k_block_valid[3] = 33;
  EXPECT_THROW(validate(bad), Error);
  bad = dense;
  bad.max_row_blocks = 7;
  EXPECT_THROW(validate(bad), Error);
  EXPECT_THROW(dense_pattern(0, 3), Error);
}
