#include "attention/pattern_cs4a.h"

#include <algorithm>
#include <bit>
#include <cmath>

#include "attention/cs4a_rule.h"
#include "attention/region.h"
#include "core/error.h"

namespace sparvar {

namespace {

// Masses grouped by magnitude (1/8 octave per bucket, everything below 2^-30 in bucket 0), so the
// heaviest blocks can be taken a bucket at a time. Sums are fixed point (cs4a_rule.h), so taking a bucket
// whole gives exactly what taking its blocks one by one would. Only touched buckets are reset.
class MassBuckets {
 public:
  static constexpr int kCount = 256;
  static int bucket(float v) {
    const int b = static_cast<int>(std::bit_cast<uint32_t>(v) >> 20) - ((127 - 30) << 3);
    return std::clamp(b, 0, kCount - 1);
  }
  void add(float v) {
    const int b = bucket(v);
    if (count_[b]++ == 0) used_.push_back(b);
    sum_[b] += cs4a_rule::to_fixed(v);
    top_ = std::max(top_, b);
  }
  int top() const { return top_; }
  uint64_t sum(int b) const { return sum_[b]; }
  int count(int b) const { return count_[b]; }
  void clear_used() {
    for (int b : used_) sum_[b] = 0, count_[b] = 0;
    used_.clear();
    top_ = -1;
  }

 private:
  uint64_t sum_[kCount] = {};
  int count_[kCount] = {};
  std::vector<int> used_;
  int top_ = -1;
};

}  // namespace

int Cs4aOptions::resolve_decision_scale(const ScaleSchedule& schedule) const {
  const int kd = decision_scale >= 0 ? decision_scale : std::max(0, schedule.num_scales() - 4);
  SPARVAR_CHECK(kd < schedule.num_scales(), "CS4A: decision scale {} out of range ({} scales in '{}')", kd,
                schedule.num_scales(), schedule.name());
  SPARVAR_CHECK(kd >= packed_scales, "CS4A: decision scale {} lies in the packed prefix ({} scales)", kd,
                packed_scales);
  return kd;
}

std::vector<BlockSet> cs4a_forced_blocks(const ScaleLayouts& decision, const Cs4aOptions& o) {
  const TileLayout& ql = decision.q;
  const TileLayout& kl = decision.k;
  const int kd = ql.first_scale();
  SPARVAR_CHECK(!ql.scale(kd).packed, "CS4A: decision scale {} must be tiled, not packed", kd);
  const int sink_blocks = kl.blocks_below(std::min(o.sink_scales, kd + 1));
  std::vector<BlockSet> forced(static_cast<size_t>(ql.num_blocks()), BlockSet(kl.num_blocks()));
  for (int qb = 0; qb < ql.num_blocks(); ++qb) {
    forced[static_cast<size_t>(qb)].set_range(0, sink_blocks);
    if (o.keep_own_block)
      add_covering_tiles(kl.scale(kd), kl.tile(), ql.blocks()[static_cast<size_t>(qb)].rect, forced[static_cast<size_t>(qb)]);
  }
  return forced;
}

BlockPattern cs4a_select(std::span<const float> mass, int heads, const ScaleLayouts& decision, const Cs4aOptions& o) {
  using namespace cs4a_rule;
  const TileLayout& ql = decision.q;
  const TileLayout& kl = decision.k;
  const int nq = ql.num_blocks(), nk = kl.num_blocks();
  SPARVAR_CHECK(heads >= 1, "CS4A select: heads must be >= 1, got {}", heads);
  SPARVAR_CHECK(mass.size() == size_t(heads) * nq * nk,
                "CS4A select: mass has {} values, expected [{} heads, {} query blocks, {} key blocks]", mass.size(),
                heads, nq, nk);
  SPARVAR_CHECK(o.tau > 0.0f && o.tau <= 1.0f, "CS4A select: tau must be in (0, 1], got {}", o.tau);
  SPARVAR_CHECK(o.max_blocks_per_row >= 0, "CS4A select: max_blocks_per_row must be >= 0, got {}", o.max_blocks_per_row);

  // Forced blocks per query block: sinks and the own-position key blocks.
  const std::vector<BlockSet> forced = cs4a_forced_blocks(decision, o);

  BlockPattern p;
  p.num_q_blocks = nq;
  p.num_k_blocks = nk;
  p.heads = heads;
  p.shared_across_heads = false;
  p.row_offsets.reserve(size_t(heads) * nq + 1);
  p.row_offsets.push_back(0);
  p.col_blocks.reserve(size_t(heads) * nq * std::min(nk, 64));
  std::vector<uint32_t> candidates(nk);  // non-forced blocks with positive mass: block ids
  std::vector<uint64_t> boundary;
  MassBuckets buckets;
  BlockSet row(nk);
  const int cap = o.max_blocks_per_row > 0 ? o.max_blocks_per_row : nk;
  const uint64_t tau = tau_fixed(o.tau);
  for (int h = 0; h < heads; ++h) {
    for (int qb = 0; qb < nq; ++qb) {
      const float* m = mass.data() + (size_t(h) * nq + qb) * nk;
      const BlockSet& f = forced[qb];
      uint64_t kept = 0, total = 0;
      int kept_count = 0, n = 0;
      for (int c = 0; c < nk; ++c) {
        const float v = m[c];
        SPARVAR_CHECK(is_share(v), "CS4A select: mass[{}, {}, {}] = {} is not a share", h, qb, c, v);
        total += to_fixed(v);
        if (f.test(c)) {
          kept += to_fixed(v);
          ++kept_count;
        } else if (v > 0.0f) {
          candidates[n++] = uint32_t(c);
        }
      }
      SPARVAR_CHECK(row_sum_ok(total), "CS4A select: mass row of head {} query block {} sums to {}, not 1", h, qb,
                    double(total) / double(kFixedOne));
      row.clear();
      row.merge(f);
      if (kept < tau && kept_count < cap && n > 0) {
        // Heaviest first, without sorting the row: whole buckets of mass while they fit, then sort only
        // the bucket where tau or the cap is reached.
        for (int i = 0; i < n; ++i) buckets.add(m[candidates[i]]);
        int b = buckets.top();  // after the loop: buckets above b were taken whole
        for (; b >= 0; --b) {
          const uint64_t bs = buckets.sum(b);
          const int bc = buckets.count(b);
          if (bc == 0) continue;
          if (kept + bs >= tau || kept_count + bc >= cap) break;
          kept += bs;
          kept_count += bc;
        }
        boundary.clear();
        for (int i = 0; i < n; ++i) {
          const float v = m[candidates[i]];
          const int vb = MassBuckets::bucket(v);
          if (vb > b) row.set(int(candidates[i]));
          else if (vb == b) boundary.push_back((uint64_t{std::bit_cast<uint32_t>(v)} << 32) | (0xffffffffu - candidates[i]));
        }
        // Heavier first; equal masses to the lower block id (cs4a_rule::heavier).
        std::sort(boundary.begin(), boundary.end(), std::greater<>());
        for (size_t i = 0; i < boundary.size() && kept < tau && kept_count < cap; ++i) {
          row.set(static_cast<int>(0xffffffffu - uint32_t(boundary[i])));
          kept += to_fixed(std::bit_cast<float>(uint32_t(boundary[i] >> 32)));
          ++kept_count;
        }
        buckets.clear_used();
      }
      row.append_to(p.col_blocks);
      p.row_offsets.push_back(static_cast<int32_t>(p.col_blocks.size()));
    }
  }
  return p;
}

Cs4aMapper::Cs4aMapper(const ScaleSchedule& schedule, int query_scale, const Cs4aOptions& o) : options_(o) {
  decision_scale_ = o.resolve_decision_scale(schedule);
  query_scale_ = query_scale;
  SPARVAR_CHECK(query_scale >= decision_scale_ && query_scale < schedule.num_scales(),
                "CS4A: query scale {} must lie in {}..{} (decision scale .. last scale)", query_scale,
                decision_scale_, schedule.num_scales() - 1);
  decision_ = make_scale_layouts(schedule, decision_scale_, o.q_tile, o.k_tile, o.packed_scales);
  target_ = make_scale_layouts(schedule, query_scale, o.q_tile, o.k_tile, o.packed_scales);
  const int kd = decision_scale_, k = query_scale;
  const ScaleBlocks& dks = target_.k.scale(kd);
  decision_first_block_ = dks.first_block;
  SPARVAR_CHECK(decision_first_block_ == decision_.k.scale(kd).first_block &&
                    decision_.k.num_blocks() == dks.first_block + dks.num_blocks,
                "CS4A: key layouts of scales 0..{} and 0..{} disagree on their common prefix", kd, k);

  const TileShape kt = target_.k.tile();
  const int nk = target_.k.num_blocks();
  cover_.assign(dks.num_blocks, BlockSet(nk));
  for (int i = 0; i < dks.num_blocks; ++i) {
    const BlockInfo& b = target_.k.blocks()[dks.first_block + i];
    for (int j = kd; j <= k; ++j) {
      const ScaleBlocks& js = target_.k.scale(j);
      add_covering_tiles(js, kt, map_rect(b.rect, dks.grid, js.grid, 0, 0), cover_[i]);
    }
  }

  const ScaleBlocks& qs = target_.q.scale(k);
  const ScaleBlocks& ds = decision_.q.scale(kd);
  const TileShape qt = target_.q.tile();
  for (const BlockInfo& qb : target_.q.blocks()) {
    // Decision token under the block's centre, then its tile.
    const int dy = static_cast<int>(int64_t{qb.rect.y0 + qb.rect.y1} * ds.grid.h / (2 * int64_t{qs.grid.h}));
    const int dx = static_cast<int>(int64_t{qb.rect.x0 + qb.rect.x1} * ds.grid.w / (2 * int64_t{qs.grid.w}));
    decision_q_of_q_.push_back(ds.block_of_tile(std::min(dy, ds.grid.h - 1) / qt.h, std::min(dx, ds.grid.w - 1) / qt.w));
    if (o.union_own_window) {
      own_window_.emplace_back(nk);
      const int ry = o.own_radius_tiles * qt.h, rx = o.own_radius_tiles * qt.w;
      add_covering_tiles(target_.k.scale(k), kt, map_rect(qb.rect, qs.grid, qs.grid, ry, rx), own_window_.back());
    }
  }
}

BlockPattern Cs4aMapper::map(const BlockPattern& d) const {
  SPARVAR_CHECK(d.num_q_blocks == decision_.q.num_blocks() && d.num_k_blocks == decision_.k.num_blocks(),
                "CS4A map: decision pattern is {} x {} blocks, the decision scale {} has {} x {}", d.num_q_blocks,
                d.num_k_blocks, decision_scale_, decision_.q.num_blocks(), decision_.k.num_blocks());
  const int nq = target_.q.num_blocks(), nk = target_.k.num_blocks();
  BlockPattern p;
  p.num_q_blocks = nq;
  p.num_k_blocks = nk;
  p.heads = d.heads;
  p.shared_across_heads = d.shared_across_heads;
  p.row_offsets.reserve(size_t(p.pattern_heads()) * nq + 1);
  p.row_offsets.push_back(0);
  // Each decision row is expanded to scale k once and copied to every query block that maps to it.
  std::vector<std::vector<int32_t>> lists(d.num_q_blocks);
  std::vector<BlockSet> expanded_rows(own_window_.empty() ? 0 : d.num_q_blocks);  // with the own window
  BlockSet expanded(nk), row(nk);
  for (int h = 0; h < d.pattern_heads(); ++h) {
    for (int dq = 0; dq < d.num_q_blocks; ++dq) {
      expanded.clear();
      for (int32_t c : d.row(h, dq)) {
        if (c < decision_first_block_) expanded.set(c);
        else expanded.merge(cover_[c - decision_first_block_]);
      }
      lists[dq].clear();
      if (own_window_.empty()) expanded.append_to(lists[dq]);
      else expanded_rows[dq] = expanded;
    }
    for (int qb = 0; qb < nq; ++qb) {
      const int dq = decision_q_of_q_[qb];
      if (own_window_.empty()) {
        p.col_blocks.insert(p.col_blocks.end(), lists[dq].begin(), lists[dq].end());
      } else {
        row = expanded_rows[dq];
        row.merge(own_window_[qb]);
        row.append_to(p.col_blocks);
      }
      p.row_offsets.push_back(static_cast<int32_t>(p.col_blocks.size()));
    }
  }
  return p;
}

BlockSparseLayout Cs4aMapper::map_layout(const BlockPattern& decision) const {
  return make_block_sparse_layout(map(decision), target_.q, target_.k);
}

}  // namespace sparvar
