// The CS4A plan (flat tables for the GPU builder) and the selection rule the CPU and GPU builders share:
//  - the GPU algorithm replayed on the CPU (rank rule on the plan's tables) gives exactly cs4a_select +
//    Cs4aMapper::map, ties included, on every configuration of cs4a_test_util.h;
//  - the plan's capacity bounds hold for every row, including adversarial masses that fill the cap;
//  - the rule itself: ties go to the lower block, tau is reached in exact (fixed-point) arithmetic.
#include <gtest/gtest.h>

#include <random>

#include "attention/cs4a_plan.h"
#include "cs4a_test_util.h"
#include "core/error.h"

using namespace sparvar;

namespace {

void expect_same(const BlockPattern& got, const BlockPattern& want, const std::string& what) {
  EXPECT_EQ(got.num_q_blocks, want.num_q_blocks) << what;
  EXPECT_EQ(got.num_k_blocks, want.num_k_blocks) << what;
  EXPECT_EQ(got.row_offsets, want.row_offsets) << what;
  EXPECT_EQ(got.col_blocks, want.col_blocks) << what;
}

void expect_within_bounds(const Cs4aPlanScale& s, const BlockPattern& p, const std::string& what) {
  EXPECT_LE(p.nnz(), s.nnz_bound) << what;
  for (int h = 0; h < p.heads; ++h)
    for (int qb = 0; qb < p.num_q_blocks; ++qb)
      ASSERT_LE(static_cast<int64_t>(p.row(h, qb).size()), s.row_bound[static_cast<size_t>(qb)])
          << what << " head " << h << " q block " << qb;
}

}  // namespace

TEST(Cs4aPlan, ReplayOfTheGpuRuleEqualsTheCpuBuilders) {
  std::mt19937 rng(41);
  for (const test::Cs4aCase& c : test::cs4a_cases()) {
    const std::vector<Cs4aMapper> mappers = test::cs4a_later_mappers(c);
    const auto ptrs = test::pointers(mappers);
    for (int heads : {1, 3}) {
      const Cs4aPlan plan = make_cs4a_plan(ptrs, heads);
      ASSERT_EQ(plan.scales.size(), mappers.size());
      for (bool ties : {false, true}) {
        for (int batch : {1, 2}) {
          const size_t rows = size_t(batch) * heads * plan.num_q_blocks;
          const std::vector<float> mass = test::cs4a_random_mass(rows, plan.num_k_blocks, rng, ties);
          const test::Cs4aPatterns want = test::cs4a_reference(mappers, mass, batch, heads);
          const test::Cs4aPatterns got = test::cs4a_replay_on_plan(plan, test::batch_average(mass, batch));
          const std::string what = c.name + (ties ? " ties" : "") + " heads " + std::to_string(heads) + " batch " +
                                   std::to_string(batch);
          expect_same(got.selected, want.selected, what + " selection");
          for (size_t i = 0; i < mappers.size(); ++i) {
            const std::string w = what + " scale " + std::to_string(plan.scales[i].scale);
            expect_same(got.mapped[i], want.mapped[i], w);
            expect_within_bounds(plan.scales[i], want.mapped[i], w);
          }
        }
      }
    }
  }
}

// Rows that take as many blocks as the cap allows, each as large as possible: uniform mass and tau 1 keep
// every candidate (or the cap's worth). The bound must still hold.
TEST(Cs4aPlan, BoundsHoldWhenRowsFillTheCap) {
  for (const test::Cs4aCase& c0 : test::cs4a_cases()) {
    test::Cs4aCase c = c0;
    c.options.tau = 1.0f;
    const std::vector<Cs4aMapper> mappers = test::cs4a_later_mappers(c);
    const Cs4aPlan plan = make_cs4a_plan(test::pointers(mappers), 2);
    std::vector<float> mass(size_t(2) * plan.num_q_blocks * plan.num_k_blocks, 1.0f / float(plan.num_k_blocks));
    const test::Cs4aPatterns want = test::cs4a_reference(mappers, mass, 1, 2);
    for (size_t i = 0; i < mappers.size(); ++i)
      expect_within_bounds(plan.scales[i], want.mapped[i], c.name + " tau 1 scale " + std::to_string(plan.scales[i].scale));
  }
}

TEST(Cs4aPlan, TablesDescribeTheMapper) {
  const test::Cs4aCase c = test::cs4a_cases().front();
  const std::vector<Cs4aMapper> mappers = test::cs4a_later_mappers(c);
  const Cs4aPlan plan = make_cs4a_plan(test::pointers(mappers), 2);
  EXPECT_EQ(plan.decision_scale, 9);
  EXPECT_EQ(plan.num_q_blocks, 16);
  EXPECT_EQ(plan.words, (plan.num_k_blocks + 63) / 64);
  EXPECT_EQ(plan.cap, plan.num_k_blocks);  // no cap
  EXPECT_EQ(plan.forced.size(), size_t(plan.num_q_blocks) * plan.words);
  for (size_t i = 0; i < mappers.size(); ++i) {
    const Cs4aPlanScale& s = plan.scales[i];
    EXPECT_EQ(s.scale, mappers[i].query_scale());
    EXPECT_EQ(s.cover.size(), size_t(plan.num_k_blocks - plan.decision_first_block) * s.words);
    EXPECT_EQ(s.own.size(), size_t(s.num_q_blocks) * s.words);  // the case adds the own window
    EXPECT_EQ(s.rows_by_decision_offsets.back(), s.num_q_blocks);
    for (int dq = 0; dq < plan.num_q_blocks; ++dq)
      for (int32_t i2 = s.rows_by_decision_offsets[size_t(dq)]; i2 < s.rows_by_decision_offsets[size_t(dq) + 1]; ++i2)
        EXPECT_EQ(mappers[i].decision_block_of(s.rows_by_decision[size_t(i2)]), dq);
  }
  // Mappers of other options or decision scales do not mix.
  Cs4aOptions other = c.options;
  other.tau = 0.5f;
  const Cs4aMapper odd(c.schedule, 12, other);
  const std::vector<const Cs4aMapper*> mixed = {&mappers.front(), &odd};
  EXPECT_THROW(make_cs4a_plan(mixed, 2), Error);
  EXPECT_THROW(make_cs4a_plan(std::vector<const Cs4aMapper*>{}, 2), Error);
}

// The rule on hand-made rows (decision at the last scale of a 3-scale schedule, no forced blocks).
TEST(Cs4aRule, TiesGoToTheLowerBlockAndTauIsExact) {
  const ScaleSchedule s("tiny", {{1, 1}, {2, 2}, {8, 40}});  // 1 + 1 + 5 key blocks of 8x8
  const ScaleLayouts l = make_scale_layouts(s, 2, {8, 8}, {8, 8});
  ASSERT_EQ(l.k.num_blocks(), 7);
  ASSERT_EQ(l.q.num_blocks(), 5);
  Cs4aOptions o;
  o.sink_scales = 0;
  o.keep_own_block = false;
  auto select_row = [&](std::vector<float> row, float tau, int cap) {
    o.tau = tau;
    o.max_blocks_per_row = cap;
    std::vector<float> mass;
    for (int qb = 0; qb < 5; ++qb) mass.insert(mass.end(), row.begin(), row.end());
    const BlockPattern p = cs4a_select(mass, 1, l, o);
    auto r = p.row(0, 0);
    return std::vector<int32_t>(r.begin(), r.end());
  };
  // Equal masses: the lower ids first.
  EXPECT_EQ(select_row({0.25f, 0, 0.25f, 0.25f, 0, 0.25f, 0}, 0.5f, 0), (std::vector<int32_t>{0, 2}));
  EXPECT_EQ(select_row({0, 0.25f, 0.25f, 0.25f, 0.25f, 0, 0}, 0.6f, 0), (std::vector<int32_t>{1, 2, 3}));
  // tau reached exactly stops the row (0.5 + 0.25 = 0.75 in fixed point).
  EXPECT_EQ(select_row({0.125f, 0.5f, 0, 0.25f, 0, 0.125f, 0}, 0.75f, 0), (std::vector<int32_t>{1, 3}));
  // The cap wins over tau; zero mass is never taken, even at tau 1.
  EXPECT_EQ(select_row({0.125f, 0.5f, 0, 0.25f, 0, 0.125f, 0}, 0.95f, 2), (std::vector<int32_t>{1, 3}));
  EXPECT_EQ(select_row({0.125f, 0.5f, 0, 0.25f, 0, 0.125f, 0}, 1.0f, 0), (std::vector<int32_t>{0, 1, 3, 5}));
  // Many equal small masses: the sum is exact, so 4 of 8 equal eighths reach exactly one half.
  EXPECT_EQ(select_row({0.125f, 0.125f, 0.125f, 0.125f, 0.125f, 0.125f, 0.25f}, 0.75f, 0),
            (std::vector<int32_t>{0, 1, 2, 3, 6}));
}
