#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "attention/tile_order.h"
#include "attention_test_util.h"
#include "core/error.h"

using namespace sparvar;

namespace {

// Structural invariants of any layout.
void check_structure(const TileLayout& L) {
  ASSERT_EQ(L.num_slots(), int64_t{L.num_blocks()} * L.block_size());
  ASSERT_EQ(static_cast<int64_t>(L.row_of_slot().size()), L.num_slots());
  int64_t tokens = 0;
  for (int b = 0; b < L.num_blocks(); ++b) {
    const int valid = L.block_valid()[b];
    ASSERT_GE(valid, 1);
    ASSERT_LE(valid, L.block_size());
    for (int s = 0; s < L.block_size(); ++s) {
      const int64_t slot = int64_t{b} * L.block_size() + s;
      // Valid tokens are exactly the prefix [0, valid) of every block.
      ASSERT_EQ(L.row_of_slot()[slot] >= 0, s < valid) << "block " << b << " slot " << s;
      if (s < valid) {
        EXPECT_EQ(L.slot_of_row()[L.row_of_slot()[slot]], slot);
        EXPECT_EQ(L.compact_of_slot(slot), tokens + s);
      }
    }
    EXPECT_EQ(L.compact_block_start(b), tokens);
    tokens += valid;
  }
  EXPECT_EQ(tokens, L.num_rows());
}

void check_round_trip(const TileLayout& L, std::mt19937& rng) {
  const int64_t D = 3;
  std::vector<float> rows = test::random_floats(L.num_rows() * D, rng);
  std::vector<float> padded(L.num_slots() * D, 123.0f), back(rows.size(), NAN), compact(rows.size(), NAN);
  rows_to_padded(L, rows, padded, D, NAN);
  padded_to_rows(L, padded, back, D);
  EXPECT_EQ(back, rows);
  for (int64_t s = 0; s < L.num_slots(); ++s)
    if (L.row_of_slot()[s] < 0) { EXPECT_TRUE(std::isnan(padded[s * D])) << "padding slot " << s << " not written"; }
  rows_to_compact(L, rows, compact, D);
  std::fill(back.begin(), back.end(), NAN);
  compact_to_rows(L, compact, back, D);
  EXPECT_EQ(back, rows);
  // Compact = padded with padding dropped.
  std::vector<float> squeezed;
  for (int64_t s = 0; s < L.num_slots(); ++s)
    if (L.row_of_slot()[s] >= 0) squeezed.insert(squeezed.end(), &padded[s * D], &padded[s * D] + D);
  EXPECT_EQ(squeezed, compact);
}

}  // namespace

TEST(TileOrder, HandCheckedSmallGrid) {
  // 3x5 grid, 2x2 tiles: tiles (row-major) cover cols 0-1, 2-3, 4 of rows 0-1, then of row 2.
  ScaleSchedule s("t", {{3, 5}});
  TileLayout L = TileLayout::build(s, 0, 0, {2, 2});
  EXPECT_EQ(L.num_blocks(), 6);
  EXPECT_EQ(L.block_valid(), (std::vector<int32_t>{4, 4, 2, 2, 2, 1}));
  // Row-major token -> slot. Token (r,c) = r*5+c.
  std::vector<int32_t> expect = {0, 1, 4, 5, 8,     // row 0
                                 2, 3, 6, 7, 9,     // row 1
                                 12, 13, 16, 17, 20};  // row 2
  EXPECT_EQ(L.slot_of_row(), expect);
  EXPECT_EQ(L.blocks()[2].rect.x0, 4);
  EXPECT_EQ(L.blocks()[2].rect.x1, 5);
  EXPECT_EQ(L.scale(0).block_of_tile(1, 2), 5);
  check_structure(L);
}

TEST(TileOrder, RoundTripManyGrids) {
  std::mt19937 rng(7);
  std::vector<ScaleGrid> grids = {{1, 1}, {3, 5}, {64, 64}, {13, 7}, {8, 16}, {17, 9}, {40, 40}, {1, 23}, {23, 1}};
  std::vector<TileShape> tiles = {{8, 8}, {8, 16}, {3, 5}, {1, 1}, {16, 8}, {5, 3}};
  for (ScaleGrid g : grids) {
    for (TileShape t : tiles) {
      TileLayout L = TileLayout::build(ScaleSchedule("one", {g}), 0, 0, t);
      check_structure(L);
      check_round_trip(L, rng);
      EXPECT_EQ(L.num_blocks(), ((g.h + t.h - 1) / t.h) * ((g.w + t.w - 1) / t.w));
    }
  }
  for (int trial = 0; trial < 30; ++trial) {
    ScaleSchedule s = test::random_schedule(1 + trial % 6, 30, rng);
    TileShape t{1 + int(rng() % 9), 1 + int(rng() % 17)};
    for (int packed : {0, 2}) {
      TileLayout L = TileLayout::build(s, 0, s.num_scales() - 1, t, packed);
      check_structure(L);
      check_round_trip(L, rng);
    }
  }
  TileLayout big = TileLayout::build(infinity_schedule(1.0, PixelBudget::M1), 0, 12, {8, 16}, 5);
  check_structure(big);
  check_round_trip(big, rng);
}

TEST(TileOrder, ScalePrefixIsALayoutPrefix) {
  ScaleSchedule s = infinity_schedule(0.75, PixelBudget::M1);
  for (int packed : {0, 4}) {
    TileLayout full = TileLayout::build(s, 0, 12, {8, 8}, packed);
    for (int k = 0; k < 13; ++k) {
      TileLayout part = TileLayout::build(s, 0, k, {8, 8}, packed);
      ASSERT_EQ(part.blocks_below(k + 1), part.num_blocks());
      ASSERT_EQ(part.num_blocks(), full.blocks_below(k + 1));
      for (int64_t r = 0; r < part.num_rows(); ++r) ASSERT_EQ(part.slot_of_row()[r], full.slot_of_row()[r]);
      for (int b = 0; b < part.num_blocks(); ++b) {
        // Inside the packed prefix the shorter layout's last block is partly filled; elsewhere equal.
        if (k + 1 < packed && b == part.num_blocks() - 1) { ASSERT_LT(part.block_valid()[b], full.block_valid()[b]); }
        else { ASSERT_EQ(part.block_valid()[b], full.block_valid()[b]); }
      }
    }
  }
}

TEST(TileOrder, PackedPrefixFillsBlocksDensely) {
  ScaleSchedule s = infinity_schedule(1.0, PixelBudget::M1);  // 1+4+16+36+64 = 121 tokens in scales 0..4
  TileLayout L = TileLayout::build(s, 0, 12, {8, 8}, 5);
  EXPECT_EQ(L.blocks_below(5), 2);  // 121 tokens -> 2 blocks of 64
  EXPECT_EQ(L.block_valid()[0], 64);
  EXPECT_EQ(L.block_valid()[1], 57);
  for (int r = 0; r < 121; ++r) EXPECT_EQ(L.slot_of_row()[r], r);  // row-major, scale after scale
  EXPECT_TRUE(L.scale(3).packed);
  EXPECT_FALSE(L.scale(5).packed);
  EXPECT_EQ(L.scale(5).first_block, 2);
  EXPECT_EQ(L.blocks_below(4), 1);  // 57 tokens of scales 0..3 need one block
  EXPECT_EQ(L.blocks()[1].scale, 4);  // block 1 starts at token 64, inside scale 4 (tokens 57..120)
  // Unpacked, the same scales take five blocks.
  EXPECT_EQ(TileLayout::build(s, 0, 12, {8, 8}, 0).blocks_below(5), 5);
  EXPECT_THROW(TileLayout::build(s, 2, 12, {8, 8}, 5), Error);
  TileLayout lone = TileLayout::build(s, 3, 3, {4, 4}, 5);  // a packed query scale alone: 36 tokens row-major
  EXPECT_TRUE(lone.scale(3).packed);
  EXPECT_EQ(lone.block_valid(), (std::vector<int32_t>{16, 16, 4}));
  for (int r = 0; r < 36; ++r) EXPECT_EQ(lone.slot_of_row()[r], r);
  EXPECT_NO_THROW(TileLayout::build(s, 5, 5, {8, 8}, 5));
}

TEST(TileOrder, RejectsBadArguments) {
  ScaleSchedule s("t", {{4, 4}, {8, 8}});
  EXPECT_THROW(TileLayout::build(s, 0, 2, {8, 8}), Error);
  EXPECT_THROW(TileLayout::build(s, 1, 0, {8, 8}), Error);
  EXPECT_THROW(TileLayout::build(s, 0, 1, {0, 8}), Error);
  TileLayout L = TileLayout::build(s, 0, 1, {8, 8});
  std::vector<float> rows(80 * 2), padded(128 * 2);
  EXPECT_THROW(rows_to_padded(L, rows, padded, 3), Error);
  EXPECT_THROW(rows_to_padded(L, std::span<const float>(rows).first(10), padded, 2), Error);
  EXPECT_THROW(L.scale(2), Error);
  EXPECT_THROW(L.compact_of_slot(16), Error);  // padding slot of block 0 (4x4 scale: 16 valid)
}
