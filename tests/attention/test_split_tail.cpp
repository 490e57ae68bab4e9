// The split tail's arithmetic (src/attention/cuda/split_tail.h), on the CPU: every tail tile is cut into parts that
// cover it exactly once, in order, with the counts and workspace slots the GPU epilogue relies on; and when the
// launcher's cost model splits.
#include <gtest/gtest.h>

#include <set>
#include <vector>

#include "attention/cuda/split_tail.h"

namespace {

using sparvar::attention_cuda::plan_split_tail;
using sparvar::attention_cuda::split_item_segments;
using sparvar::attention_cuda::split_segment;
using sparvar::attention_cuda::split_segment_id;
using sparvar::attention_cuda::split_segment_steps;
using sparvar::attention_cuda::split_whole_tiles;
using sparvar::attention_cuda::split_work_items;
using sparvar::attention_cuda::SplitTail;
using sparvar::attention_cuda::WorkSegment;

// Walks every work item's segments as the producer does and checks what the consumers derive from them.
void check_cover(int tiles, int ctas, int steps) {
  SCOPED_TRACE(testing::Message() << tiles << " tiles on " << ctas << " CTAs, " << steps << " steps");
  const SplitTail s = plan_split_tail(tiles, ctas, steps, /*force=*/true, 256);
  if (tiles % ctas == 0 || tiles % ctas > 256) {
    EXPECT_EQ(s.tiles, 0);
    return;
  }
  ASSERT_EQ(s.tiles, tiles % ctas);
  ASSERT_GT(s.ranges, s.tiles);
  const int whole = split_whole_tiles(s, tiles);
  struct Seen {
    std::vector<WorkSegment> parts;
  };
  std::vector<Seen> tail(s.tiles);
  std::set<int> ids, slots;
  for (int item = 0; item < split_work_items(s, tiles); ++item) {
    const int n = split_item_segments(s, tiles, item);
    ASSERT_GE(n, 1);
    ASSERT_LE(n, 2);
    if (item < whole) {
      ASSERT_EQ(n, 1);
    }
    for (int k = 0; k < n; ++k) {
      const int id = split_segment_id(s, tiles, item, k);
      ASSERT_TRUE(ids.insert(id).second) << "segment id " << id << " twice";
      const WorkSegment w = split_segment(s, tiles, id);
      if (item < whole) {
        EXPECT_EQ(w.tile, item);
        EXPECT_EQ(w.part, -1);
        continue;
      }
      ASSERT_GE(w.tile, whole);
      ASSERT_LT(w.tile, tiles);
      EXPECT_EQ(w.tail, w.tile - whole);
      ASSERT_LT(w.lo, w.hi);
      EXPECT_GE(w.lo, 0);
      EXPECT_LE(w.hi, s.ranges);
      EXPECT_GE(w.parts, 2);  // a range is less than a tile: no tail tile stays whole
      EXPECT_LE(w.parts, s.max_parts);
      EXPECT_EQ(w.slot, w.tail * s.max_parts + w.part);
      EXPECT_TRUE(slots.insert(w.slot).second) << "slot " << w.slot << " twice";
      tail[w.tail].parts.push_back(w);
    }
  }
  for (int t = 0; t < s.tiles; ++t) {
    const auto& parts = tail[t].parts;
    ASSERT_FALSE(parts.empty()) << "tail tile " << t << " has no part";
    int next_lo = 0;
    for (size_t i = 0; i < parts.size(); ++i) {  // the producer meets a tile's parts in order
      EXPECT_EQ(parts[i].part, static_cast<int>(i));
      EXPECT_EQ(parts[i].parts, static_cast<int>(parts.size()));
      EXPECT_EQ(parts[i].lo, next_lo);
      next_lo = parts[i].hi;
    }
    EXPECT_EQ(next_lo, s.ranges) << "tail tile " << t << " not covered";
    for (int tile_steps : {0, 1, 2, 3, steps, steps + 7}) {  // step ranges partition the tile, whatever its length
      int covered = 0;
      for (const WorkSegment& w : parts) {
        int begin = -1, end = -1;
        split_segment_steps(s, w, tile_steps, begin, end);
        EXPECT_EQ(begin, covered);
        EXPECT_LE(begin, end);
        covered = end;
      }
      EXPECT_EQ(covered, tile_steps);
    }
  }
}

TEST(SplitTail, PartsCoverEveryTailTileOnce) {
  for (int ctas : {2, 3, 5, 7, 132})
    for (int tiles : {1, 2, 3, 4, 5, 9, 31, 64, 100, 131, 133, 1024, 1792, 2000})
      for (int steps : {1, 4, 83}) check_cover(tiles, ctas, steps);
}

TEST(SplitTail, WholeTilesUnchanged) {
  const SplitTail none{};
  EXPECT_EQ(split_work_items(none, 1024), 1024);
  for (int item : {0, 5, 1023}) {
    EXPECT_EQ(split_item_segments(none, 1024, item), 1);
    EXPECT_EQ(split_segment_id(none, 1024, item, 0), item);
    EXPECT_EQ(split_segment(none, 1024, item).part, -1);
  }
  int begin = -1, end = -1;
  split_segment_steps(none, split_segment(none, 1024, 3), 83, begin, end);
  EXPECT_EQ(begin, 0);
  EXPECT_EQ(end, 83);
}

TEST(SplitTail, CostModel) {
  // The H100 A/B runs the model was fitted to (dense, 132 CTAs, 128-key steps per tile): split where it measured 3-8%
  // faster, not where it measured within +-1% or slower.
  EXPECT_GT(plan_split_tail(416, 132, 33, false, 256).tiles, 0);   // 40x40, 16 heads: 20 tail tiles, -2..-8%
  EXPECT_GT(plan_split_tail(576, 132, 51, false, 256).tiles, 0);   // 48x48, 16 heads: 48 tail tiles, -4..-6%
  EXPECT_EQ(plan_split_tail(1024, 132, 83, false, 256).tiles, 0);  // 64x64, 16 heads: 100 tail tiles, +-1%
  EXPECT_EQ(plan_split_tail(1792, 132, 83, false, 256).tiles, 0);  // 64x64, 28 heads
  EXPECT_EQ(plan_split_tail(1008, 132, 51, false, 256).tiles, 0);  // 48x48, 28 heads
  EXPECT_EQ(plan_split_tail(448, 132, 22, false, 256).tiles, 0);   // 32x32, 28 heads: +3% when split
  // Pairs of 64-row blocks need ranges of 12 steps or more: 48x48 splits (-3..-5%), 40x40 does not (+13% split).
  EXPECT_GT(plan_split_tail(576, 132, 51, false, 256, 12).tiles, 0);
  EXPECT_EQ(plan_split_tail(416, 132, 33, false, 256, 12).tiles, 0);
  EXPECT_EQ(plan_split_tail(528, 132, 51, false, 256).tiles, 0);  // whole waves: nothing to split
  EXPECT_EQ(plan_split_tail(64, 132, 2, false, 256).tiles, 0);     // short tiles: the parts' fixed cost dominates
  EXPECT_EQ(plan_split_tail(576, 132, 51, false, 32).tiles, 0);    // more tail tiles than counters
  const SplitTail forced = plan_split_tail(1055, 132, 83, true, 256);
  EXPECT_EQ(forced.tiles, 131);
  EXPECT_EQ(forced.ranges, 132);
  EXPECT_EQ(split_work_items(forced, 1055), 924 + 132);
}

}  // namespace
