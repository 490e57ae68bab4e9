// Helpers shared by the attention tests: random data, random schedules, token-level brute force.
#pragma once

#include <cmath>
#include <random>
#include <vector>

#include "attention/pattern.h"
#include "attention/tile_order.h"

namespace sparvar::test {

// A per-head pattern with no rows yet (row_offsets = {0}): push each row's columns, then its end offset.
inline BlockPattern empty_per_head_pattern(int heads, int num_q_blocks, int num_k_blocks) {
  BlockPattern p;
  p.num_q_blocks = num_q_blocks;
  p.num_k_blocks = num_k_blocks;
  p.heads = heads;
  p.shared_across_heads = false;
  p.row_offsets.push_back(0);
  return p;
}

inline std::vector<float> random_floats(size_t n, std::mt19937& rng, float scale = 1.0f) {
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

// A schedule of n random grids with sides in [1, max_side] (not monotone: the code must not care).
inline ScaleSchedule random_schedule(int n, int max_side, std::mt19937& rng) {
  std::uniform_int_distribution<int> side(1, max_side);
  std::vector<ScaleGrid> grids;
  for (int i = 0; i < n; ++i) grids.push_back({side(rng), side(rng)});
  return ScaleSchedule("random", grids);
}

// Block of each row-major token of a layout.
inline std::vector<int> block_of_row(const TileLayout& l) {
  std::vector<int> out;
  for (int32_t s : l.slot_of_row()) out.push_back(s / l.block_size());
  return out;
}

// Token-level mask [heads][Nq rows][Nk rows] (row-major tokens) implied by a block pattern.
inline std::vector<std::vector<std::vector<char>>> token_mask(const BlockPattern& p, const TileLayout& q,
                                                               const TileLayout& k) {
  std::vector<int> qb = block_of_row(q), kb = block_of_row(k);
  std::vector<std::vector<std::vector<char>>> mask(p.heads);
  for (int h = 0; h < p.heads; ++h) {
    mask[h].assign(qb.size(), std::vector<char>(kb.size(), 0));
    for (size_t i = 0; i < qb.size(); ++i) {
      std::vector<char> listed(p.num_k_blocks, 0);
      for (int32_t c : p.row(h, qb[i])) listed[c] = 1;
      for (size_t j = 0; j < kb.size(); ++j) mask[h][i][j] = listed[kb[j]];
    }
  }
  return mask;
}

}  // namespace sparvar::test
