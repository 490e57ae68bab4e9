// CS4A helpers shared by the CPU tests (test_cs4a_plan.cpp) and the GPU test (cuda/test_cs4a_build_cuda.cpp):
// random block masses (with exact ties), the configurations to cover, the CPU reference on a batch of masses
// (batch average as the runner does it, cs4a_select, Cs4aMapper::map), and the GPU algorithm replayed on the
// CPU (the per-candidate rank rule on the plan's flat tables), so its logic is checked without a GPU.
#pragma once

#include <cstdint>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "attention/cs4a_plan.h"
#include "attention/cs4a_rule.h"
#include "attention/pattern_cs4a.h"
#include "attention_test_util.h"

namespace sparvar::test {

// Masses [rows, nk], each row summing to 1: peaked values, about a fifth exact zeros; with `ties`, values
// from a few integer weights, so many entries of a row are exactly equal.
inline std::vector<float> cs4a_random_mass(size_t rows, int nk, std::mt19937& rng, bool ties) {
  std::exponential_distribution<float> e(1.0f);
  std::vector<float> m(rows * static_cast<size_t>(nk));
  for (size_t r = 0; r < rows; ++r) {
    float* row = m.data() + r * static_cast<size_t>(nk);
    double sum = 0;
    for (int c = 0; c < nk; ++c) {
      const float x = e(rng);
      row[c] = rng() % 5 == 0 ? 0.0f : ties ? static_cast<float>(1 + rng() % 4) : x * x * x * x;
      sum += row[c];
    }
    if (sum == 0) row[0] = 1.0f, sum = 1.0;
    for (int c = 0; c < nk; ++c) row[c] = static_cast<float>(row[c] / sum);
  }
  return m;
}

struct Cs4aCase {
  std::string name;
  ScaleSchedule schedule;
  Cs4aOptions options;
};

// Infinity 1M (both tile sizes, the runner's defaults and a cap), odd shapes with packed sinks and partial
// tiles, no forced blocks at all, tau 1 (keep every block with mass) and a cap below the forced count.
inline std::vector<Cs4aCase> cs4a_cases() {
  std::vector<Cs4aCase> cases;
  auto add = [&](std::string name, ScaleSchedule s, auto&& tweak) {
    Cs4aOptions o;
    tweak(o);
    cases.push_back({std::move(name), std::move(s), o});
  };
  const ScaleSchedule m1 = infinity_schedule(1.0, PixelBudget::M1);
  add("1M 8x8 own window", m1, [](Cs4aOptions& o) { o.union_own_window = true; });
  add("1M 8x8 cap 24 tau 0.9", m1, [](Cs4aOptions& o) { o.max_blocks_per_row = 24, o.tau = 0.9f; });
  add("1M 8x16 own window", m1, [](Cs4aOptions& o) { o.q_tile = o.k_tile = {8, 16}, o.union_own_window = true; });
  add("1M 8x16 q x 8x8 k packed 5 cap 12", m1, [](Cs4aOptions& o) {
    o.q_tile = {8, 16}, o.k_tile = {8, 8}, o.packed_scales = 5, o.max_blocks_per_row = 12;
  });
  add("0.4 aspect 8x8 tau 1", infinity_schedule(0.4, PixelBudget::M1), [](Cs4aOptions& o) { o.tau = 1.0f; });
  add("1.75 aspect packed 3 own window", infinity_schedule(1.75, PixelBudget::M1), [](Cs4aOptions& o) {
    o.packed_scales = 3, o.union_own_window = true, o.own_radius_tiles = 2;
  });
  add("odd tiles 4x4 / 3x5, no forced blocks", ScaleSchedule("odd", {{1, 1}, {2, 3}, {5, 4}, {9, 7}, {13, 11}, {19, 17}, {25, 23}}),
      [](Cs4aOptions& o) {
        o.q_tile = {4, 4}, o.k_tile = {3, 5}, o.sink_scales = 0, o.keep_own_block = false, o.tau = 0.8f;
      });
  add("odd, cap 3 below the forced count", ScaleSchedule("odd", {{1, 1}, {2, 3}, {5, 4}, {9, 7}, {13, 11}, {19, 17}, {25, 23}}),
      [](Cs4aOptions& o) { o.q_tile = {4, 4}, o.k_tile = {4, 4}, o.sink_scales = 3, o.max_blocks_per_row = 3; });
  add("0.25M decide at 16x16 of 32x32", infinity_schedule(1.0, PixelBudget::M0_25), [](Cs4aOptions& o) {
    o.decision_scale = 6, o.sink_scales = 4, o.union_own_window = true, o.tau = 0.7f;
  });
  return cases;
}

// The mappers of every scale after the decision scale (what the runner builds).
inline std::vector<Cs4aMapper> cs4a_later_mappers(const Cs4aCase& c) {
  std::vector<Cs4aMapper> out;
  const int kd = c.options.resolve_decision_scale(c.schedule);
  for (int k = kd + 1; k < c.schedule.num_scales(); ++k) out.emplace_back(c.schedule, k, c.options);
  return out;
}

inline std::vector<const Cs4aMapper*> pointers(const std::vector<Cs4aMapper>& mappers) {
  std::vector<const Cs4aMapper*> out;
  for (const Cs4aMapper& m : mappers) out.push_back(&m);
  return out;
}

// The runner's batch average of masses [batch, rest]: float sums in batch order, then one division.
inline std::vector<float> batch_average(std::span<const float> mass, int batch) {
  const size_t per = mass.size() / static_cast<size_t>(batch);
  std::vector<float> avg(per, 0.0f);
  for (int b = 0; b < batch; ++b)
    for (size_t i = 0; i < per; ++i) avg[i] += mass[static_cast<size_t>(b) * per + i];
  for (float& m : avg) m /= static_cast<float>(batch);
  return avg;
}

struct Cs4aPatterns {
  BlockPattern selected;              // per head, decision scale
  std::vector<BlockPattern> mapped;   // per mapper / plan scale
};

// The reference: the CPU builders on the batch-averaged mass.
inline Cs4aPatterns cs4a_reference(const std::vector<Cs4aMapper>& mappers, std::span<const float> mass, int batch,
                                   int heads) {
  const std::vector<float> avg = batch_average(mass, batch);
  Cs4aPatterns out;
  out.selected = cs4a_select(avg, heads, mappers.front().decision_layouts(), mappers.front().options());
  for (const Cs4aMapper& m : mappers) out.mapped.push_back(m.map(out.selected));
  return out;
}

inline BlockPattern pattern_from_bits(const std::vector<uint64_t>& bits, int heads, int nq, int nk, int words) {
  BlockPattern p = empty_per_head_pattern(heads, nq, nk);
  for (size_t r = 0; r < static_cast<size_t>(heads) * nq; ++r) {
    for (int c = 0; c < nk; ++c)
      if ((bits[r * static_cast<size_t>(words) + static_cast<size_t>(c >> 6)] >> (c & 63)) & 1) p.col_blocks.push_back(c);
    p.row_offsets.push_back(static_cast<int32_t>(p.col_blocks.size()));
  }
  return p;
}

// The GPU builder's algorithm, written plainly: per candidate, its rank and the mass of the candidates heavier
// than it decide (cs4a_rule.h); the map ORs the plan's cover / own-window words. `avg`: [heads, nq, nk].
inline Cs4aPatterns cs4a_replay_on_plan(const Cs4aPlan& plan, std::span<const float> avg) {
  using namespace cs4a_rule;
  const int nq = plan.num_q_blocks, nk = plan.num_k_blocks, W = plan.words, H = plan.heads;
  const uint64_t tau = tau_fixed(plan.tau);
  std::vector<uint64_t> rows(static_cast<size_t>(H) * nq * W, 0);
  for (int r = 0; r < H * nq; ++r) {
    const float* m = avg.data() + static_cast<size_t>(r) * nk;
    const uint64_t* f = plan.forced.data() + static_cast<size_t>(r % nq) * W;
    auto forced = [&](int c) { return ((f[c >> 6] >> (c & 63)) & 1) != 0; };
    uint64_t kept = 0;
    int forced_count = 0;
    for (int c = 0; c < nk; ++c)
      if (forced(c)) kept += to_fixed(m[c]), ++forced_count;
    for (int c = 0; c < nk; ++c) {
      bool take = forced(c);
      if (!take && m[c] > 0.0f) {
        uint64_t heavier_mass = 0;
        int rank = 0;
        for (int c2 = 0; c2 < nk; ++c2)
          if (!forced(c2) && m[c2] > 0.0f && heavier(m[c2], c2, m[c], c)) ++rank, heavier_mass += to_fixed(m[c2]);
        take = kept + heavier_mass < tau && forced_count + rank < plan.cap;
      }
      if (take) rows[static_cast<size_t>(r) * W + static_cast<size_t>(c >> 6)] |= uint64_t{1} << (c & 63);
    }
  }
  Cs4aPatterns out;
  out.selected = pattern_from_bits(rows, H, nq, nk, W);
  for (const Cs4aPlanScale& s : plan.scales) {
    std::vector<uint64_t> mapped(static_cast<size_t>(H) * s.num_q_blocks * s.words, 0);
    for (int h = 0; h < H; ++h)
      for (int qb = 0; qb < s.num_q_blocks; ++qb) {
        uint64_t* dst = mapped.data() + (static_cast<size_t>(h) * s.num_q_blocks + qb) * s.words;
        const uint64_t* src = rows.data() + (static_cast<size_t>(h) * nq + s.decision_row[static_cast<size_t>(qb)]) * W;
        for (int c = 0; c < nk; ++c) {
          if (!((src[c >> 6] >> (c & 63)) & 1)) continue;
          if (c < plan.decision_first_block) {
            dst[c >> 6] |= uint64_t{1} << (c & 63);
          } else {
            const uint64_t* cover = s.cover.data() + static_cast<size_t>(c - plan.decision_first_block) * s.words;
            for (int w = 0; w < s.words; ++w) dst[w] |= cover[w];
          }
        }
        if (!s.own.empty())
          for (int w = 0; w < s.words; ++w) dst[w] |= s.own[static_cast<size_t>(qb) * s.words + static_cast<size_t>(w)];
      }
    out.mapped.push_back(pattern_from_bits(mapped, H, s.num_q_blocks, s.num_k_blocks, s.words));
  }
  return out;
}

}  // namespace sparvar::test
