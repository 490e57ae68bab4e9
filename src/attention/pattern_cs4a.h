// CS4A (a.k.a. CSSSA), cross-scale self-similar attention: a dynamic pattern, per image, layer and head.
//  1. At the decision scale k_d attention runs dense and emits the block-level mass (reference.h / the
//     kernel): for each (query block, key block) the share of the query block's softmax mass in that key
//     block, averaged over the block's valid queries.
//  2. cs4a_select: per head and decision query block, keep the smallest set of key blocks whose mass reaches
//     tau, always including the sink blocks (scales < sink_scales) and the query block's own-position key
//     blocks (the key blocks of scale k_d covering its tokens); optional cap on the row length.
//  3. Cs4aMapper::map: at a later scale k, a query block takes the row of the decision query block that
//     contains its centre (in normalised image coordinates). A selected key block of a scale j < k_d stays
//     itself; a selected key block of scale k_d stands for its region and selects, in every scale j with
//     k_d <= j <= k, the key blocks covering that region. Optionally the CSLA own-scale window is added.
// Cost: the mapper's tables are static (build once per resolution); map() is a few word ORs per row plus
// writing the CSR; see docs/attention.md for measured times.
#pragma once

#include <memory>
#include <span>
#include <vector>

#include "attention/block_set.h"
#include "attention/pattern.h"

namespace sparvar {

struct Cs4aOptions {
  TileShape q_tile{8, 8};
  TileShape k_tile{8, 8};
  int packed_scales = 0;       // layout option (tile_order.h); must be <= decision scale
  int decision_scale = -1;     // k_d; -1 = num_scales - 4 (the 32x32 scale of Infinity 1M, then 3 scales follow)
  float tau = 0.95f;           // mass to keep per decision row, in (0, 1]
  int max_blocks_per_row = 0;  // cap on a decision row's length (forced blocks are kept beyond it); 0 = none
  int sink_scales = 6;         // key blocks of scales below this are always kept
  bool keep_own_block = true;  // always keep the key blocks at the query block's own position
  bool union_own_window = false;  // add CSLA's own-scale window at the mapped scale
  int own_radius_tiles = 1;       // its radius in query tiles

  int resolve_decision_scale(const ScaleSchedule& schedule) const;
};

// Step 2. mass: [heads, q blocks of k_d, key blocks of 0..k_d] (row-major), every row non-negative and
// summing to 1 (within 1e-2). Layouts: the decision scale's (make_scale_layouts(schedule, k_d, ...)).
// Returns a per-head pattern (shared_across_heads = false) of the decision scale. The exact rule (visiting
// order, ties, fixed-point mass) is cs4a_rule.h's, which the GPU builder (cuda/cs4a_device.h) shares.
BlockPattern cs4a_select(std::span<const float> mass, int heads, const ScaleLayouts& decision,
                         const Cs4aOptions& options);

// The blocks cs4a_select always keeps, per decision query block: the sinks and, with keep_own_block, the key
// blocks of scale k_d covering the query block's tokens. [q blocks of k_d], sets over the key blocks of 0..k_d.
std::vector<BlockSet> cs4a_forced_blocks(const ScaleLayouts& decision, const Cs4aOptions& options);

// Step 3, for one later query scale k >= k_d. Holds the static tables; map() is per image and layer.
class Cs4aMapper {
 public:
  Cs4aMapper(const ScaleSchedule& schedule, int query_scale, const Cs4aOptions& options);

  int decision_scale() const { return decision_scale_; }
  int query_scale() const { return query_scale_; }
  const ScaleLayouts& decision_layouts() const { return decision_; }
  const ScaleLayouts& layouts() const { return target_; }  // of the query scale k
  const Cs4aOptions& options() const { return options_; }
  // The decision query block whose row a query block of scale k takes.
  int decision_block_of(int q_block) const { return decision_q_of_q_[q_block]; }
  // Static tables, for builders that map without this class (cs4a_plan.h): decision key blocks below
  // decision_first_block() map to themselves; decision key block decision_first_block() + i maps to cover()[i]
  // (key blocks of scales k_d..k); own_window()[q block] is added to every row (empty without union_own_window).
  int decision_first_block() const { return decision_first_block_; }
  const std::vector<BlockSet>& cover() const { return cover_; }
  const std::vector<BlockSet>& own_window() const { return own_window_; }

  // A decision pattern (from cs4a_select, or any pattern on the decision layouts) -> pattern at scale k.
  BlockPattern map(const BlockPattern& decision) const;
  BlockSparseLayout map_layout(const BlockPattern& decision) const;

 private:
  Cs4aOptions options_;
  int decision_scale_ = 0, query_scale_ = 0;
  ScaleLayouts decision_, target_;
  int decision_first_block_ = 0;           // first key block of scale k_d (same id in both key layouts)
  std::vector<int32_t> decision_q_of_q_;   // [q blocks of k]
  std::vector<BlockSet> cover_;            // [key blocks of k_d]: their region's blocks in scales k_d..k
  std::vector<BlockSet> own_window_;       // [q blocks of k] when union_own_window
};

}  // namespace sparvar
