// CS4A's static tables (forced blocks, decision rows, cover sets, own windows) as flat arrays, for a builder
// that cannot use BlockSet / Cs4aMapper: the GPU one (cuda/cs4a_device.h). Bitset rows are 64-bit words,
// block i at bit i % 64 of word i / 64. Built once per resolution from the mappers of the scales to build;
// nothing in it depends on an image.
//
// Also the capacity each mapped pattern can need (nnz_bound): a decision row keeps its forced blocks plus at
// most max(0, cap - forced) others (all others without a cap); its mapped row is bounded by the forced
// blocks' expansion, the largest expansions of that many others and the own window. So output buffers can be
// allocated once, before any mass is seen.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "attention/pattern_cs4a.h"

namespace sparvar {

// One query scale k >= k_d to map to.
struct Cs4aPlanScale {
  int scale = 0;
  int num_q_blocks = 0;   // query blocks of scale k
  int num_k_blocks = 0;   // key blocks of scales 0..k
  int words = 0;          // words per bitset row: ceil(num_k_blocks / 64)
  std::vector<int32_t> decision_row;              // [q blocks]: decision query block whose row it takes
  std::vector<int32_t> rows_by_decision_offsets;  // [decision q blocks + 1]: CSR of the inverse map
  std::vector<int32_t> rows_by_decision;          // [q blocks]: grouped by decision row, ascending inside
  std::vector<uint64_t> cover;                    // [(decision k blocks - decision_first_block) * words]
  std::vector<uint64_t> own;                      // [q blocks * words]; empty without union_own_window
  std::vector<int32_t> row_bound;                 // [q blocks]: most key blocks the row can list
  int64_t nnz_bound = 0;                          // heads * sum(row_bound): capacity of col_blocks
};

struct Cs4aPlan {
  int heads = 0;
  int decision_scale = 0;
  int num_q_blocks = 0;          // of the decision scale
  int num_k_blocks = 0;          // key blocks of scales 0..k_d
  int words = 0;                 // ceil(num_k_blocks / 64)
  int decision_first_block = 0;  // decision key blocks below it map to themselves
  float tau = 0;
  int cap = 0;                   // most blocks per decision row (forced beyond it); num_k_blocks when no cap
  std::vector<uint64_t> forced;  // [decision q blocks * words]: cs4a_forced_blocks
  std::vector<Cs4aPlanScale> scales;  // in the order of the mappers given
};

// mappers: one per scale to build, all of one schedule, decision scale and options (checked).
Cs4aPlan make_cs4a_plan(std::span<const Cs4aMapper* const> mappers, int heads);

}  // namespace sparvar
