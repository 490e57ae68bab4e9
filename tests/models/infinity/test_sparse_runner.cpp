// The sparse attention runner on both backends (CUDA cases skip without a GPU):
//  - dense-listed mode (every block through the block-sparse path) equals DenseAttentionRunner;
//  - CSLA equals masked dense attention built from the runner's own pattern (and differs from dense);
//  - CS4A: the decision-scale mass is the block mass (rows sum to 1, agrees with the CPU reference), the
//    later-scale patterns are exactly the CPU builder's on that mass, and the outputs follow them;
//  - the tiny golden Infinity model generates with CSLA / CS4A, and dense-equivalent configs (huge CSLA
//    windows; CS4A with tau 1) reproduce the dense logits.
// Inputs are random; KV-cache rows past the valid keys hold large values and outputs start as NaN, so a read
// past the prefix or an unwritten output shows.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "attention/reference.h"
#include "backend/backend.h"
#include "core/error.h"
#include "infinity_test_util.h"
#include "io/checkpoint.h"
#include "io/npy.h"
#include "models/infinity/generator.h"
#include "models/infinity/sparse_attention_runner.h"

namespace sparvar::infinity {
namespace {

using test::golden;
using test::rel_err;

// An odd schedule: partial edge tiles everywhere, a non-square last scale with several tiles per side.
const ScaleSchedule& odd_schedule() {
  static const ScaleSchedule s("odd", {{1, 1}, {2, 3}, {5, 7}, {9, 11}, {13, 10}, {27, 21}});
  return s;
}

std::vector<float> randn(size_t n, std::mt19937& rng, float scale = 1.0f) {
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

struct Env {
  std::unique_ptr<Backend> be;
  bool cuda = false;
  double tol = 1e-5;
  DType dtype() const { return cuda ? DType::BF16 : DType::F32; }
};

bool make_env(const std::string& which, Env& env) {
  if (which == "cuda") {
    if (!cuda_available()) return false;
    env.be = make_cuda_backend();
    env.cuda = true;
    env.tol = 2e-2;  // bf16 inputs and outputs on both sides
  } else {
    env.be = make_cpu_backend(2);
  }
  return true;
}

// One attention problem: q of scale k, a KV cache [B, H, capacity, D] valid for scales 0..k.
struct Problem {
  int64_t B = 2, H = 2, D = 64, Nq = 0, Nk = 0, cap = 0;
  Tensor q, k, v;                 // on the backend
  std::vector<float> hq, hk, hv;  // what the backend holds (bf16-rounded on CUDA), as floats
};

Problem make_problem(Env& env, int scale, std::mt19937& rng) {
  const ScaleSchedule& s = odd_schedule();
  Problem p;
  p.Nq = s.tokens(scale);
  p.Nk = s.offset(scale) + p.Nq;
  p.cap = s.total_tokens();
  std::vector<float> k = randn(size_t(p.B * p.H * p.cap * p.D), rng), v = randn(k.size(), rng);
  for (int64_t bh = 0; bh < p.B * p.H; ++bh)
    for (int64_t r = p.Nk; r < p.cap; ++r)
      for (int64_t d = 0; d < p.D; ++d) {
        k[size_t((bh * p.cap + r) * p.D + d)] *= 50.0f;  // keys past the prefix would dominate any softmax
        v[size_t((bh * p.cap + r) * p.D + d)] = 1e4f;
      }
  // q scaled like Infinity's (normalised q times a temperature): logits of a few units.
  const std::vector<float> q = randn(size_t(p.B * p.H * p.Nq * p.D), rng, 0.3f);
  p.q = env.be->upload(Tensor::from_floats({p.B, p.H, p.Nq, p.D}, q), env.dtype());
  p.k = env.be->upload(Tensor::from_floats({p.B, p.H, p.cap, p.D}, k), env.dtype());
  p.v = env.be->upload(Tensor::from_floats({p.B, p.H, p.cap, p.D}, v), env.dtype());
  p.hq = env.be->download(p.q).to_floats();
  p.hk = env.be->download(p.k).to_floats();
  p.hv = env.be->download(p.v).to_floats();
  return p;
}

// The runner's output is token-major [B, Nq, H, D].
Tensor poisoned_out(Env& env, const Problem& p) {
  const std::vector<float> nan(size_t(p.B * p.H * p.Nq * p.D), NAN);
  return env.be->upload(Tensor::from_floats({p.B, p.Nq, p.H, p.D}, nan), env.dtype());
}

// The output in head-major order [B, H, Nq, D], as the references below compute it.
std::vector<float> run(Env& env, AttentionRunner& r, const Problem& p, int layer, int scale) {
  Tensor out = poisoned_out(env, p);
  r.self_attention(*env.be, p.q, p.k, p.v, SelfAttentionCall{layer, scale, &odd_schedule(), p.Nk}, out);
  const std::vector<float> tokens_major = env.be->download(out).to_floats();
  std::vector<float> head_major(tokens_major.size());
  for (int64_t b = 0; b < p.B; ++b)
    for (int64_t n = 0; n < p.Nq; ++n)
      for (int64_t h = 0; h < p.H; ++h)
        for (int64_t d = 0; d < p.D; ++d)
          head_major[size_t(((b * p.H + h) * p.Nq + n) * p.D + d)] = tokens_major[size_t(((b * p.Nq + n) * p.H + h) * p.D + d)];
  return head_major;
}

// Masked dense attention in double on row-major tokens: query row i of head h sees key j iff the pattern
// lists key j's block in query i's block row.
std::vector<float> masked_dense(const Problem& p, const ScaleLayouts& l, const BlockPattern& pat) {
  std::vector<float> out(size_t(p.B * p.H * p.Nq * p.D));
  std::vector<double> w(size_t(p.Nk)), acc(size_t(p.D));
  std::vector<char> listed(size_t(pat.num_k_blocks));
  for (int64_t b = 0; b < p.B; ++b)
    for (int64_t h = 0; h < p.H; ++h) {
      const int64_t bh = b * p.H + h;
      for (int64_t i = 0; i < p.Nq; ++i) {
        std::fill(listed.begin(), listed.end(), 0);
        for (int32_t c : pat.row(int(h), l.q.slot_of_row()[size_t(i)] / l.q.block_size())) listed[size_t(c)] = 1;
        double mx = -INFINITY;
        for (int64_t j = 0; j < p.Nk; ++j) {
          if (!listed[size_t(l.k.slot_of_row()[size_t(j)] / l.k.block_size())]) {
            w[size_t(j)] = -INFINITY;
            continue;
          }
          double s = 0;
          for (int64_t d = 0; d < p.D; ++d)
            s += double(p.hq[size_t((bh * p.Nq + i) * p.D + d)]) * p.hk[size_t((bh * p.cap + j) * p.D + d)];
          w[size_t(j)] = s;
          mx = std::max(mx, s);
        }
        double sum = 0;
        std::fill(acc.begin(), acc.end(), 0.0);
        for (int64_t j = 0; j < p.Nk; ++j) {
          if (w[size_t(j)] == -INFINITY) continue;
          const double e = std::exp(w[size_t(j)] - mx);
          sum += e;
          for (int64_t d = 0; d < p.D; ++d) acc[size_t(d)] += e * p.hv[size_t((bh * p.cap + j) * p.D + d)];
        }
        for (int64_t d = 0; d < p.D; ++d) out[size_t((bh * p.Nq + i) * p.D + d)] = float(acc[size_t(d)] / sum);
      }
    }
  return out;
}

struct RunnerCase {
  const char* backend;
  TileShape q_tile, k_tile;
};

std::string case_name(const ::testing::TestParamInfo<RunnerCase>& info) {
  const RunnerCase& c = info.param;
  return fmt::format("{}_q{}x{}_k{}x{}", c.backend, c.q_tile.h, c.q_tile.w, c.k_tile.h, c.k_tile.w);
}

class SparseRunner : public ::testing::TestWithParam<RunnerCase> {
 protected:
  void SetUp() override {
    if (!make_env(GetParam().backend, env_)) GTEST_SKIP() << "no CUDA device in this build/machine";
  }
  SparseAttentionOptions base_options() const {
    SparseAttentionOptions o;
    o.q_tile = GetParam().q_tile;
    o.k_tile = GetParam().k_tile;
    o.cpu_threads = 2;
    return o;
  }
  Env env_;
};

TEST_P(SparseRunner, DenseListedEqualsDenseRunner) {
  SparseAttentionOptions o = base_options();
  o.dense_as_block_sparse = true;
  o.dense_below_tokens = 7;  // scales 0 and 1 through the backend, the rest through the block-sparse path
  const auto runner = make_attention_runner(*env_.be, AttentionMode::Dense, o, odd_schedule(), 2, 64);
  auto* sparse = dynamic_cast<SparseAttentionRunner*>(runner.get());
  ASSERT_NE(sparse, nullptr);
  DenseAttentionRunner dense;
  std::mt19937 rng(11);
  for (int k = 0; k < odd_schedule().num_scales(); ++k) {
    EXPECT_EQ(sparse->runs_block_sparse(k), k >= 2) << k;
    const Problem p = make_problem(env_, k, rng);
    const std::vector<float> got = run(env_, *runner, p, 0, k), want = run(env_, dense, p, 0, k);
    const double e = rel_err(got, want);
    std::printf("[runner %s] dense-listed scale %d: rel err %.3g\n", GetParam().backend, k, e);
    EXPECT_LE(e, env_.tol) << "scale " << k;
  }
}

TEST_P(SparseRunner, CslaEqualsMaskedDenseOfItsPattern) {
  SparseAttentionOptions o = base_options();
  o.dense_below_tokens = 30;
  o.csla.sink_scales = 2;
  o.csla.window_tokens = 1;
  o.csla.own_radius_tiles = 1;
  const auto runner = make_attention_runner(*env_.be, AttentionMode::Csla, o, odd_schedule(), 2, 64);
  auto& sparse = dynamic_cast<SparseAttentionRunner&>(*runner);
  DenseAttentionRunner dense;
  std::mt19937 rng(12);
  int sparse_scales = 0;
  for (int k = 0; k < odd_schedule().num_scales(); ++k) {
    const Problem p = make_problem(env_, k, rng);
    const std::vector<float> got = run(env_, *runner, p, 1, k);
    if (!sparse.runs_block_sparse(k)) {
      EXPECT_LE(rel_err(got, run(env_, dense, p, 1, k)), env_.tol) << "dense scale " << k;
      continue;
    }
    const BlockSparseLayout* layout = sparse.static_layout(k);
    ASSERT_NE(layout, nullptr);
    const double density = measure_density(*layout).block_fraction();
    const std::vector<float> want = masked_dense(p, sparse.layouts(k), layout->pattern);
    const double e = rel_err(got, want), from_dense = rel_err(got, run(env_, dense, p, 1, k));
    std::printf("[runner %s] csla scale %d: density %.2f, rel err %.3g (vs dense %.3g)\n", GetParam().backend, k,
                density, e, from_dense);
    EXPECT_LE(e, env_.tol) << "scale " << k;
    if (density < 0.9) {
      ++sparse_scales;
      EXPECT_GT(from_dense, 10 * env_.tol) << "a sparse pattern should change the output, scale " << k;
    }
  }
  EXPECT_GE(sparse_scales, 1) << "the test schedule should give at least one truly sparse scale";
}

TEST_P(SparseRunner, Cs4aDecidesFromBlockMassAndMapsLikeTheBuilder) {
  SparseAttentionOptions o = base_options();
  o.cs4a.decision_scale = 3;
  o.cs4a.sink_scales = 2;
  o.cs4a.tau = 0.8f;
  o.cs4a.union_own_window = false;
  std::vector<std::vector<float>> seen_mass(2);
  std::vector<BlockPattern> seen_selected(2);
  o.on_cs4a_decision = [&](const Cs4aDecisionView& d) {
    seen_mass.at(size_t(d.layer)).assign(d.mass.begin(), d.mass.end());
    seen_selected.at(size_t(d.layer)) = *d.selected;
  };
  const ScaleSchedule& s = odd_schedule();
  const auto runner = make_attention_runner(*env_.be, AttentionMode::Cs4a, o, s, 2, 64);
  auto& r = dynamic_cast<SparseAttentionRunner&>(*runner);
  ASSERT_EQ(r.decision_scale(), 3);
  EXPECT_EQ(r.cs4a_layout(0, 4), nullptr) << "no pattern before the decision";
  std::mt19937 rng(13);
  for (int k = 0; k < s.num_scales(); ++k) {
    for (int layer = 0; layer < 2; ++layer) {
      const Problem p = make_problem(env_, k, rng);
      const std::vector<float> got = run(env_, *runner, p, layer, k);
      if (k < 3) {
        EXPECT_FALSE(r.runs_block_sparse(k));
        continue;
      }
      const ScaleLayouts& l = r.layouts(k);
      if (k == 3) {
        // The mass: [B, H, nq, nk], rows sum to 1, equal to the CPU reference's on the same (rounded) inputs.
        const std::vector<float>& m = seen_mass[size_t(layer)];
        const int nq = l.q.num_blocks(), nk = l.k.num_blocks();
        ASSERT_EQ(m.size(), size_t(p.B * p.H * nq * nk));
        for (int64_t row = 0; row < p.B * p.H * nq; ++row) {
          double sum = 0;
          for (int kb = 0; kb < nk; ++kb) sum += m[size_t(row * nk + kb)];
          EXPECT_NEAR(sum, 1.0, 1e-3) << "mass row " << row;
        }
        const BlockSparseLayout dense_l =
            make_block_sparse_layout(dense_pattern(nq, nk, int(p.H)), l.q, l.k);
        Tensor qt = Tensor::empty({p.B, p.H, l.q.num_slots(), p.D}, DType::F32);
        Tensor kt = Tensor::empty({p.B, p.H, l.k.num_slots(), p.D}, DType::F32), vt = kt.clone();
        for (int64_t bh = 0; bh < p.B * p.H; ++bh) {
          rows_to_padded(l.q, {p.hq.data() + bh * p.Nq * p.D, size_t(p.Nq * p.D)},
                         {qt.data_as<float>() + bh * l.q.num_slots() * p.D, size_t(l.q.num_slots() * p.D)}, p.D);
          rows_to_padded(l.k, {p.hk.data() + bh * p.cap * p.D, size_t(p.Nk * p.D)},
                         {kt.data_as<float>() + bh * l.k.num_slots() * p.D, size_t(l.k.num_slots() * p.D)}, p.D);
          rows_to_padded(l.k, {p.hv.data() + bh * p.cap * p.D, size_t(p.Nk * p.D)},
                         {vt.data_as<float>() + bh * l.k.num_slots() * p.D, size_t(l.k.num_slots() * p.D)}, p.D);
        }
        Tensor ref_out = Tensor::empty(qt.shape(), DType::F32);
        Tensor ref_mass = Tensor::empty({p.B, p.H, nq, nk}, DType::F32);
        reference_block_sparse_attention(qt, kt, vt, dense_l, 1.0f, ref_out, &ref_mass);
        double worst = 0;
        const std::vector<float> rm = ref_mass.to_floats();
        for (size_t i = 0; i < rm.size(); ++i) worst = std::max(worst, std::abs(double(rm[i]) - m[i]));
        std::printf("[runner %s] cs4a layer %d decision mass: max abs diff to reference %.3g\n", GetParam().backend,
                    layer, worst);
        EXPECT_LE(worst, env_.cuda ? 1e-2 : 1e-5);
        // The decision scale's own output is dense attention.
        EXPECT_LE(rel_err(got, masked_dense(p, l, dense_l.pattern)), env_.tol);
        // Later patterns: exactly the CPU builder on the batch-averaged mass the runner saw.
        std::vector<float> avg(size_t(p.H * nq * nk), 0.0f);
        for (int64_t b = 0; b < p.B; ++b)
          for (size_t i = 0; i < avg.size(); ++i) avg[i] += m[size_t(b) * avg.size() + i];
        for (float& x : avg) x /= float(p.B);
        const BlockPattern selected = cs4a_select(avg, int(p.H), l, r.options().cs4a);
        EXPECT_EQ(selected.row_offsets, seen_selected[size_t(layer)].row_offsets);
        EXPECT_EQ(selected.col_blocks, seen_selected[size_t(layer)].col_blocks);
        for (int later = 4; later < s.num_scales(); ++later) {
          const BlockPattern want = Cs4aMapper(s, later, r.options().cs4a).map(selected);
          const BlockSparseLayout* got_l = r.cs4a_layout(layer, later);
          ASSERT_NE(got_l, nullptr);
          EXPECT_EQ(got_l->pattern.row_offsets, want.row_offsets) << "layer " << layer << " scale " << later;
          EXPECT_EQ(got_l->pattern.col_blocks, want.col_blocks) << "layer " << layer << " scale " << later;
        }
      } else {
        const BlockSparseLayout* pl = r.cs4a_layout(layer, k);
        ASSERT_NE(pl, nullptr);
        const double e = rel_err(got, masked_dense(p, l, pl->pattern));
        std::printf("[runner %s] cs4a layer %d scale %d: density %.2f, rel err %.3g\n", GetParam().backend, layer, k,
                    measure_density(*pl).block_fraction(), e);
        EXPECT_LE(e, env_.tol);
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Backends, SparseRunner,
                         ::testing::Values(RunnerCase{"cpu", {8, 8}, {8, 8}}, RunnerCase{"cpu", {4, 4}, {8, 16}},
                                           RunnerCase{"cuda", {8, 8}, {8, 8}}, RunnerCase{"cuda", {8, 16}, {8, 8}}),
                         case_name);

TEST(SparseRunnerApi, ParsesModesAndRejectsOthers) {
  EXPECT_EQ(parse_attention_mode("dense"), AttentionMode::Dense);
  EXPECT_EQ(parse_attention_mode("csla"), AttentionMode::Csla);
  EXPECT_EQ(parse_attention_mode("cs4a"), AttentionMode::Cs4a);
  try {
    parse_attention_mode("sparse");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("dense, csla, cs4a"), std::string::npos) << e.what();
  }
}

TEST(SparseRunnerApi, RejectsAnotherScheduleAndWrongHeads) {
  auto be = make_cpu_backend(1);
  SparseAttentionOptions o;
  o.dense_below_tokens = 0;
  const auto r = make_attention_runner(*be, AttentionMode::Csla, o, odd_schedule(), 2, 64);
  const ScaleSchedule other("other", {{1, 1}, {2, 2}});
  Tensor q = be->empty({1, 2, 1, 64}, DType::F32), kv = be->empty({1, 2, 5, 64}, DType::F32), out = q;
  EXPECT_THROW(r->self_attention(*be, q, kv, kv, SelfAttentionCall{0, 0, &other, 1}, out), Error);
  Tensor q3 = be->empty({1, 3, 1, 64}, DType::F32);
  EXPECT_THROW(r->self_attention(*be, q3, kv, kv, SelfAttentionCall{0, 0, &odd_schedule(), 1}, out), Error);
  EXPECT_TRUE(dynamic_cast<DenseAttentionRunner*>(
      make_attention_runner(*be, AttentionMode::Dense, SparseAttentionOptions{}, odd_schedule(), 2, 64).get()));
}

// ---- the whole tiny model (golden/) ----

struct GoldenRun {
  ScaleSchedule schedule;
  Tensor text, bits, logits;
  std::vector<int32_t> lengths;
  nlohmann::json meta;
};

const GoldenRun& golden_run() {
  static const GoldenRun g = [] {
    GoldenRun g;
    std::ifstream in(golden("meta.json"));
    g.meta = nlohmann::json::parse(in);
    std::vector<ScaleGrid> grids;
    for (const auto& s : g.meta["schedule"]) grids.push_back({s[1].get<int>(), s[2].get<int>()});
    g.schedule = ScaleSchedule("golden", grids);
    for (const auto& l : g.meta["text_lens"]) g.lengths.push_back(l.get<int32_t>());
    g.text = io::read_npy(golden("text_feats.npy"));
    g.bits = io::read_npy(golden("bits_all.npy"));
    return g;
  }();
  return g;
}

class SparseModel : public ::testing::TestWithParam<const char*> {
 protected:
  void SetUp() override {
    if (!make_env(GetParam(), env_)) GTEST_SKIP() << "no CUDA device in this build/machine";
    const io::Checkpoint ckpt = io::open_checkpoint(golden("infinity_tiny.pth"));
    model_ = std::make_unique<InfinityModel>(*env_.be, load_weights(ckpt, infer_config(ckpt), *env_.be));
  }
  // Forced bits: every run sees the same inputs, so logits compare scale by scale.
  GenerateResult generate(AttentionRunner* runner) {
    const GoldenRun& g = golden_run();
    GenerateOptions o;
    o.schedule = g.schedule;
    o.cfg = g.meta["cfg"].get<float>();
    o.tau = g.meta["tau"].get<float>();
    o.forced_bits = g.bits;
    o.keep_logits = true;
    return model_->generate({g.text, g.lengths}, o, runner);
  }
  std::unique_ptr<AttentionRunner> runner(AttentionMode mode, SparseAttentionOptions o) {
    const InfinityConfig& c = model_->config();
    o.max_batch = 4;  // 2 text rows x CFG
    o.dense_below_tokens = 16;  // 4x4 and up through the block-sparse path
    o.cpu_threads = 2;
    return make_attention_runner(*env_.be, mode, o, golden_run().schedule, c.num_heads, int(c.head_dim()));
  }
  // Worst per-scale relative error of logits against a dense run.
  double worst_vs(const GenerateResult& got, const GenerateResult& want, const char* what) {
    double worst = 0;
    for (size_t k = 0; k < want.logits.size(); ++k) {
      const double e = rel_err(got.logits[k].to_floats(), want.logits[k].to_floats());
      EXPECT_TRUE(std::isfinite(e)) << what << " scale " << k;
      worst = std::max(worst, e);
    }
    std::printf("[model %s] %s: worst scale logits rel err vs dense %.3g\n", GetParam(), what, worst);
    return worst;
  }
  Env env_;
  std::unique_ptr<InfinityModel> model_;
};

TEST_P(SparseModel, DenseEquivalentConfigsReproduceDenseLogits) {
  const GenerateResult dense = generate(nullptr);
  SparseAttentionOptions wide;
  wide.csla.window_tokens = 1000;
  wide.csla.own_radius_tiles = 1000;
  auto csla = runner(AttentionMode::Csla, wide);
  EXPECT_LE(worst_vs(generate(csla.get()), dense, "csla, huge windows"), env_.cuda ? 3e-2 : 2e-4);
  SparseAttentionOptions all_mass;
  all_mass.cs4a.tau = 1.0f;  // keeps every block with any mass: all of them
  auto cs4a = runner(AttentionMode::Cs4a, all_mass);
  EXPECT_LE(worst_vs(generate(cs4a.get()), dense, "cs4a, tau 1"), env_.cuda ? 3e-2 : 2e-4);
}

TEST_P(SparseModel, GeneratesWithSparsePatterns) {
  const GenerateResult dense = generate(nullptr);
  SparseAttentionOptions o;
  o.csla.sink_scales = 3;
  o.csla.window_tokens = 1;
  o.cs4a.sink_scales = 3;
  o.cs4a.tau = 0.7f;
  o.cs4a.decision_scale = 5;  // 12x12: 2x2 query tiles, so the map to 16x16 can drop blocks
  o.cs4a.union_own_window = false;
  auto csla = runner(AttentionMode::Csla, o);
  auto& cr = dynamic_cast<SparseAttentionRunner&>(*csla);
  const int last = golden_run().schedule.num_scales() - 1;
  ASSERT_NE(cr.static_layout(last), nullptr);
  const double csla_density = measure_density(*cr.static_layout(last)).block_fraction();
  const double ec = worst_vs(generate(csla.get()), dense, "csla, sinks 3, window 1");
  std::printf("[model %s] csla last-scale block density %.2f\n", GetParam(), csla_density);
  EXPECT_LT(csla_density, 1.0) << "the pattern should be sparse at 16x16";
  EXPECT_LT(ec, 1.0);
  EXPECT_GT(ec, 1e-4) << "a sparse CSLA pattern should move the logits";
  auto cs4a = runner(AttentionMode::Cs4a, o);
  const double e4 = worst_vs(generate(cs4a.get()), dense, "cs4a, tau 0.7");
  EXPECT_LT(e4, 1.0);
  auto& r4 = dynamic_cast<SparseAttentionRunner&>(*cs4a);
  double cs4a_density = 0;
  for (int layer = 0; layer < model_->config().depth; ++layer) {
    const BlockSparseLayout* l = r4.cs4a_layout(layer, last);
    ASSERT_NE(l, nullptr) << "layer " << layer;
    cs4a_density += measure_density(*l).block_fraction() / model_->config().depth;
  }
  std::printf("[model %s] cs4a last-scale block density %.2f\n", GetParam(), cs4a_density);
  EXPECT_LT(cs4a_density, 1.0);
  EXPECT_GT(e4, 1e-4) << "a sparse CS4A pattern should move the logits";
}

// On CUDA the runner keeps q and the KV cache in padded tile order and its kernel reads them in place (scales whose
// key prefix has padding rows then go through the kernel with every block listed); the gather path must agree.
TEST_P(SparseModel, InPlaceCacheOrderMatchesGatheredRows) {
  SparseAttentionOptions o;
  o.csla.sink_scales = 3;
  o.csla.window_tokens = 1;
  o.cs4a.sink_scales = 3;
  o.cs4a.tau = 0.7f;
  o.cs4a.decision_scale = 5;
  for (AttentionMode mode : {AttentionMode::Csla, AttentionMode::Cs4a}) {
    auto in_place = runner(mode, o);
    SparseAttentionOptions g = o;
    g.in_place = false;
    auto gathered = runner(mode, g);
    const DType dt = compute_dtype(*env_.be);
    const bool ordered = in_place->cache_order(dt) != nullptr;
    EXPECT_TRUE(ordered) << "CUDA bf16 and CPU f32 both keep the cache order";
    EXPECT_EQ(gathered->cache_order(dt), nullptr);
    const GenerateResult a = generate(in_place.get()), b = generate(gathered.get());
    EXPECT_LE(worst_vs(a, b, "in place vs gathered"), env_.cuda ? 1e-3 : 1e-5) << attention_mode_name(mode);
  }
}

INSTANTIATE_TEST_SUITE_P(Backends, SparseModel, ::testing::Values("cpu", "cuda"),
                         [](const auto& info) { return std::string(info.param); });

}  // namespace
}  // namespace sparvar::infinity
