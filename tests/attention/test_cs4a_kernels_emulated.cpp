// The GPU CS4A builder's kernels (src/attention/cuda/cs4a_kernels.cuh), compiled for the CPU and run under
// cuda_emulation.h (a thread per CUDA thread, warp collectives through barriers), against the CPU reference:
// identical selections and CSR patterns, outputs poisoned first, ties, batch averaging, the bad-mass status.
// This checks the kernels' indexing, synchronisation and logic without a GPU; the GPU test
// (cuda/test_cs4a_build_cuda.cpp) checks the same on the device.
#include <gtest/gtest.h>

#include <limits>
#include <random>

#include "cs4a_test_util.h"
#include "cuda_emulation.h"

// The kernels' dynamic shared memory (blocks run one at a time, so one array each serves every block).
namespace sparvar::attn_cuda::cs4a {
alignas(16) unsigned char cs4a_select_smem[1 << 20];
alignas(16) long long cs4a_write_smem[1 << 16];
}  // namespace sparvar::attn_cuda::cs4a

#include "attention/cuda/cs4a_kernels.cuh"

using namespace sparvar;

namespace {

namespace cs4a = attn_cuda::cs4a;

// Host arrays standing in for the builder's device buffers, wired into the kernels' arguments.
struct EmulatedBuild {
  std::vector<uint64_t> selected;
  std::vector<std::vector<uint64_t>> expanded;
  std::vector<std::vector<int32_t>> lengths, row_offsets, col_blocks;
  unsigned int bad_rows = 0;
  unsigned int host_status[2] = {0, 0};
  attn_cuda::Cs4aBuildArgs args{};

  EmulatedBuild(const Cs4aPlan& p, const std::vector<float>& mass, int batch) {
    const size_t d_rows = size_t(p.heads) * p.num_q_blocks;
    selected.assign(d_rows * p.words, ~uint64_t{0});
    args.mass = mass.data();
    args.batch = batch;
    args.heads = p.heads;
    args.num_q_blocks = p.num_q_blocks;
    args.num_k_blocks = p.num_k_blocks;
    args.words = p.words;
    args.decision_first_block = p.decision_first_block;
    args.tau_fixed = cs4a_rule::tau_fixed(p.tau);
    args.cap = p.cap;
    args.forced = p.forced.data();
    args.selected = selected.data();
    args.bad_rows = &bad_rows;
    args.host_status = host_status;
    args.num_scales = int(p.scales.size());
    for (const Cs4aPlanScale& s : p.scales) {
      expanded.emplace_back(d_rows * s.words, ~uint64_t{0});
      lengths.emplace_back(size_t(p.heads) * s.num_q_blocks, -1);
      row_offsets.emplace_back(size_t(p.heads) * s.num_q_blocks + 1, -1);
      col_blocks.emplace_back(size_t(s.nnz_bound), -1);
    }
    for (size_t i = 0; i < p.scales.size(); ++i) {
      const Cs4aPlanScale& s = p.scales[i];
      attn_cuda::Cs4aScaleArgs& sa = args.scales[i];
      sa.num_q_blocks = s.num_q_blocks;
      sa.num_k_blocks = s.num_k_blocks;
      sa.words = s.words;
      sa.decision_row = s.decision_row.data();
      sa.rows_by_decision_offsets = s.rows_by_decision_offsets.data();
      sa.rows_by_decision = s.rows_by_decision.data();
      sa.cover = s.cover.data();
      sa.own = s.own.empty() ? nullptr : s.own.data();
      sa.expanded = expanded[i].data();
      sa.lengths = lengths[i].data();
      sa.row_offsets = row_offsets[i].data();
      sa.col_blocks = col_blocks[i].data();
      sa.capacity = int32_t(s.nnz_bound);
    }
  }

  // What launch_cs4a_build does, with the same launch geometry.
  void run() {
    ASSERT_TRUE(cs4a::args_ok(args));
    const cs4a::LaunchShape l = cs4a::launch_shape(args);
    ASSERT_LE(size_t(l.select_smem), sizeof(cs4a::cs4a_select_smem));
    ASSERT_LE(size_t(l.write_smem), sizeof(cs4a::cs4a_write_smem));
    const attn_cuda::Cs4aBuildArgs a = args;
    cuda_emulation::launch(dim3{unsigned(l.select_blocks)}, dim3{unsigned(l.select_threads)},
                           [&] { cs4a::cs4a_select_expand_kernel(a, l.max_words, l.warp_bytes); });
    cuda_emulation::launch(dim3{unsigned(l.write_blocks_x), unsigned(l.write_blocks_y), unsigned(l.write_blocks_z)},
                           dim3{unsigned(l.write_threads)}, [&] { cs4a::cs4a_write_kernel(a, l.max_q); });
  }

  BlockPattern pattern(const Cs4aPlan& p, size_t i) const {
    BlockPattern out;
    out.num_q_blocks = p.scales[i].num_q_blocks;
    out.num_k_blocks = p.scales[i].num_k_blocks;
    out.heads = p.heads;
    out.shared_across_heads = false;
    out.row_offsets = row_offsets[i];
    const int32_t nnz = std::max(0, row_offsets[i].back());
    out.col_blocks.assign(col_blocks[i].begin(), col_blocks[i].begin() + std::min<int64_t>(nnz, col_blocks[i].size()));
    return out;
  }
};

void expect_same(const BlockPattern& got, const BlockPattern& want, const std::string& what) {
  EXPECT_EQ(got.row_offsets, want.row_offsets) << what;
  EXPECT_EQ(got.col_blocks, want.col_blocks) << what;
}

// Small configurations (every CUDA thread is an OS thread here).
std::vector<test::Cs4aCase> small_cases() {
  std::vector<test::Cs4aCase> out;
  for (const test::Cs4aCase& c : test::cs4a_cases())
    if (c.name.rfind("odd", 0) == 0 || c.name.rfind("0.25M", 0) == 0 || c.name == "1M 8x16 own window" ||
        c.name == "1M 8x16 q x 8x8 k packed 5 cap 12")
      out.push_back(c);
  return out;
}

}  // namespace

TEST(Cs4aKernelsEmulated, EqualTheCpuBuilders) {
  std::mt19937 rng(77);
  const std::vector<test::Cs4aCase> cases = small_cases();
  ASSERT_EQ(cases.size(), 5u);
  for (const test::Cs4aCase& c : cases) {
    const std::vector<Cs4aMapper> mappers = test::cs4a_later_mappers(c);
    for (auto [heads, batch] : {std::pair{1, 3}, std::pair{3, 2}}) {  // few: every CUDA thread is an OS thread
      const Cs4aPlan plan = make_cs4a_plan(test::pointers(mappers), heads);
      for (bool ties : {false, true}) {
        const std::string what = c.name + " heads " + std::to_string(heads) + " batch " + std::to_string(batch) +
                                 (ties ? " ties" : "");
        const std::vector<float> mass =
            test::cs4a_random_mass(size_t(batch) * heads * plan.num_q_blocks, plan.num_k_blocks, rng, ties);
        EmulatedBuild b(plan, mass, batch);
        b.run();
        const test::Cs4aPatterns want = test::cs4a_reference(mappers, mass, batch, heads);
        const BlockPattern sel = test::pattern_from_bits(b.selected, heads, plan.num_q_blocks, plan.num_k_blocks, plan.words);
        expect_same(sel, want.selected, what + " selection");
        for (size_t i = 0; i < plan.scales.size(); ++i) {
          const BlockPattern got = b.pattern(plan, i);
          expect_same(got, want.mapped[i], what + " scale " + std::to_string(plan.scales[i].scale));
          EXPECT_NO_THROW(validate(got)) << what;
        }
        EXPECT_EQ(b.bad_rows, 0u) << what;
        EXPECT_EQ(b.host_status[0], 0u) << what;
        EXPECT_EQ(b.host_status[1], 0u) << what;
      }
    }
  }
}

TEST(Cs4aKernelsEmulated, ReportBadMassAndStayWellFormed) {
  const test::Cs4aCase c = small_cases().front();
  const std::vector<Cs4aMapper> mappers = test::cs4a_later_mappers(c);
  const Cs4aPlan plan = make_cs4a_plan(test::pointers(mappers), 2);
  std::mt19937 rng(3);
  std::vector<float> mass = test::cs4a_random_mass(size_t(2) * plan.num_q_blocks, plan.num_k_blocks, rng, false);
  mass[1] = std::numeric_limits<float>::quiet_NaN();                   // row 0: not finite
  for (int k = 0; k < plan.num_k_blocks; ++k) mass[size_t(plan.num_k_blocks) * 2 + k] *= 3.0f;  // row 2: sums to 3
  EmulatedBuild b(plan, mass, 1);
  b.run();
  EXPECT_EQ(b.bad_rows, 2u);
  EXPECT_EQ(b.host_status[0], 2u) << "the write kernel mirrors the count to the host";
  EXPECT_EQ(b.host_status[1], 0u);
  for (size_t i = 0; i < plan.scales.size(); ++i) {
    const BlockPattern p = b.pattern(plan, i);
    EXPECT_EQ(p.row_offsets.front(), 0);
    EXPECT_LE(p.nnz(), plan.scales[i].nnz_bound);
    for (size_t r = 0; r + 1 < p.row_offsets.size(); ++r) EXPECT_LE(p.row_offsets[r], p.row_offsets[r + 1]);
  }
}
