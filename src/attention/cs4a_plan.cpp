#include "attention/cs4a_plan.h"

#include <algorithm>
#include <functional>
#include <limits>

#include "core/error.h"

namespace sparvar {
namespace {

void append_words(const BlockSet& set, std::vector<uint64_t>& out) {
  out.insert(out.end(), set.words().begin(), set.words().end());
}

bool same_selection(const Cs4aOptions& a, const Cs4aOptions& b) {
  return a.q_tile == b.q_tile && a.k_tile == b.k_tile && a.packed_scales == b.packed_scales && a.tau == b.tau &&
         a.max_blocks_per_row == b.max_blocks_per_row && a.sink_scales == b.sink_scales &&
         a.keep_own_block == b.keep_own_block && a.union_own_window == b.union_own_window &&
         a.own_radius_tiles == b.own_radius_tiles;
}

// Bounds of one scale's rows (see the header): per decision row the size of its forced blocks' expansion and
// the sum of the `extra` largest single-block expansions among the others.
void fill_bounds(const Cs4aMapper& m, const std::vector<BlockSet>& forced, int cap, int heads, Cs4aPlanScale& ps) {
  const int nk_d = m.decision_layouts().k.num_blocks(), first = m.decision_first_block();
  auto expansion_size = [&](int c) { return c < first ? 1 : m.cover()[static_cast<size_t>(c - first)].count(); };
  const size_t nq_d = forced.size();
  std::vector<int> decision_bound(nq_d);
  BlockSet expanded(ps.num_k_blocks);
  std::vector<int> others;
  for (size_t dq = 0; dq < nq_d; ++dq) {
    const BlockSet& f = forced[dq];
    expanded.clear();
    others.clear();
    for (int c = 0; c < nk_d; ++c) {
      if (!f.test(c)) others.push_back(expansion_size(c));
      else if (c < first) expanded.set(c);
      else expanded.merge(m.cover()[static_cast<size_t>(c - first)]);
    }
    const int fc = nk_d - static_cast<int>(others.size());
    const int extra = std::min(static_cast<int>(others.size()), std::max(0, cap - fc));
    std::partial_sort(others.begin(), others.begin() + extra, others.end(), std::greater<>());
    int64_t bound = expanded.count();
    for (int i = 0; i < extra; ++i) bound += others[static_cast<size_t>(i)];
    decision_bound[dq] = static_cast<int>(std::min<int64_t>(bound, ps.num_k_blocks));
  }
  int64_t per_head = 0;
  ps.row_bound.resize(static_cast<size_t>(ps.num_q_blocks));
  for (int qb = 0; qb < ps.num_q_blocks; ++qb) {
    int64_t b = decision_bound[static_cast<size_t>(ps.decision_row[static_cast<size_t>(qb)])];
    if (!m.own_window().empty()) b += m.own_window()[static_cast<size_t>(qb)].count();
    ps.row_bound[static_cast<size_t>(qb)] = static_cast<int32_t>(std::min<int64_t>(b, ps.num_k_blocks));
    per_head += ps.row_bound[static_cast<size_t>(qb)];
  }
  ps.nnz_bound = per_head * heads;
  SPARVAR_CHECK(ps.nnz_bound <= std::numeric_limits<int32_t>::max(),
                "CS4A plan: scale {} could list {} blocks, more than int32 CSR offsets hold", ps.scale, ps.nnz_bound);
}

}  // namespace

Cs4aPlan make_cs4a_plan(std::span<const Cs4aMapper* const> mappers, int heads) {
  SPARVAR_CHECK(!mappers.empty() && mappers.front() != nullptr, "CS4A plan: needs at least one mapper");
  SPARVAR_CHECK(heads >= 1, "CS4A plan: heads must be >= 1, got {}", heads);
  const Cs4aMapper& m0 = *mappers.front();
  const Cs4aOptions& o = m0.options();
  const ScaleLayouts& dl = m0.decision_layouts();
  Cs4aPlan plan;
  plan.heads = heads;
  plan.decision_scale = m0.decision_scale();
  plan.num_q_blocks = dl.q.num_blocks();
  plan.num_k_blocks = dl.k.num_blocks();
  plan.words = (plan.num_k_blocks + 63) / 64;
  plan.decision_first_block = m0.decision_first_block();
  plan.tau = o.tau;
  plan.cap = o.max_blocks_per_row > 0 ? o.max_blocks_per_row : plan.num_k_blocks;
  SPARVAR_CHECK(o.tau > 0.0f && o.tau <= 1.0f, "CS4A plan: tau must be in (0, 1], got {}", o.tau);
  SPARVAR_CHECK(o.max_blocks_per_row >= 0, "CS4A plan: max_blocks_per_row must be >= 0, got {}", o.max_blocks_per_row);
  const std::vector<BlockSet> forced = cs4a_forced_blocks(dl, o);
  for (const BlockSet& f : forced) append_words(f, plan.forced);

  for (const Cs4aMapper* mp : mappers) {
    SPARVAR_CHECK(mp != nullptr, "CS4A plan: null mapper");
    const Cs4aMapper& m = *mp;
    SPARVAR_CHECK(m.decision_scale() == plan.decision_scale && same_selection(m.options(), o) &&
                      m.decision_layouts().k.num_blocks() == plan.num_k_blocks &&
                      m.decision_layouts().q.num_blocks() == plan.num_q_blocks,
                  "CS4A plan: the mapper of scale {} was built with other options or another decision scale",
                  m.query_scale());
    Cs4aPlanScale ps;
    ps.scale = m.query_scale();
    ps.num_q_blocks = m.layouts().q.num_blocks();
    ps.num_k_blocks = m.layouts().k.num_blocks();
    ps.words = (ps.num_k_blocks + 63) / 64;
    ps.decision_row.resize(static_cast<size_t>(ps.num_q_blocks));
    ps.rows_by_decision_offsets.assign(static_cast<size_t>(plan.num_q_blocks) + 1, 0);
    for (int qb = 0; qb < ps.num_q_blocks; ++qb) {
      const int dq = m.decision_block_of(qb);
      ps.decision_row[static_cast<size_t>(qb)] = dq;
      ++ps.rows_by_decision_offsets[static_cast<size_t>(dq) + 1];
    }
    for (int dq = 0; dq < plan.num_q_blocks; ++dq)
      ps.rows_by_decision_offsets[static_cast<size_t>(dq) + 1] += ps.rows_by_decision_offsets[static_cast<size_t>(dq)];
    ps.rows_by_decision.resize(static_cast<size_t>(ps.num_q_blocks));
    std::vector<int32_t> fill(ps.rows_by_decision_offsets.begin(), ps.rows_by_decision_offsets.end() - 1);
    for (int qb = 0; qb < ps.num_q_blocks; ++qb)
      ps.rows_by_decision[static_cast<size_t>(fill[static_cast<size_t>(ps.decision_row[static_cast<size_t>(qb)])]++)] = qb;
    for (const BlockSet& c : m.cover()) append_words(c, ps.cover);
    for (const BlockSet& w : m.own_window()) append_words(w, ps.own);
    fill_bounds(m, forced, plan.cap, heads, ps);
    plan.scales.push_back(std::move(ps));
  }
  return plan;
}

}  // namespace sparvar
