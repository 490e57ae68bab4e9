// The state generate() keeps between calls (generation_plan.h) and the recorded scales (scale_graphs.h), on the
// tiny golden model:
//  - CPU: a warm call allocates nothing and gives the same codes; a new schedule, batch, runner or text length
//    rebuilds what depends on it, never holding the old and the new state at once, and gives what a fresh model
//    gives; scales run eagerly on the first call, are recorded on the second and replayed after (the CPU's
//    "recording" reruns the body, so this checks the bookkeeping); options that need the host keep every scale
//    eager; changed sampling settings record again; CS4A's decision scale on the CPU stays eager;
//  - CUDA (skipped without a GPU): CUDA graphs give the eager run's codes bit for bit, for dense, CSLA and CS4A
//    attention, across seeds and supplied uniforms, after a plan rebuild, and a warm call allocates no GPU
//    memory.
#include <gtest/gtest.h>

#include <cstdio>

#include "backend/backend.h"
#include "counting_backend.h"
#include "infinity_test_util.h"
#include "io/checkpoint.h"
#include "io/npy.h"
#include "models/infinity/generator.h"
#include "models/infinity/sparse_attention_runner.h"

namespace sparvar::infinity {
namespace {

using test::CountingBackend;
using test::golden;

std::unique_ptr<InfinityModel> tiny_model(Backend& be) {
  const io::Checkpoint ckpt = io::open_checkpoint(golden("infinity_tiny.pth"));
  return std::make_unique<InfinityModel>(be, load_weights(ckpt, infer_config(ckpt), be));
}

TextInput golden_text() { return {io::read_npy(golden("text_feats.npy")), {7, 4}}; }

// The first `rows` rows of the golden text, their lengths, and `tokens` tokens.
TextInput text_rows(int64_t rows, int64_t tokens) {
  const TextInput all = golden_text();
  const int64_t Ct5 = all.features.dim(2);
  TextInput t{Tensor::zeros({rows, tokens, Ct5}, DType::F32), {}};
  for (int64_t r = 0; r < rows; ++r) {
    const int32_t len = std::min<int32_t>(all.lengths[static_cast<size_t>(r % 2)], static_cast<int32_t>(tokens));
    const float* src = all.features.data_as<float>() + (r % 2) * all.features.dim(1) * Ct5;
    std::copy(src, src + len * Ct5, t.features.data_as<float>() + r * tokens * Ct5);
    t.lengths.push_back(len);
  }
  return t;
}

GenerateOptions unsynced(const ScaleSchedule& schedule, uint64_t seed) {
  GenerateOptions o;
  o.schedule = schedule;
  o.cfg = 3.0f;
  o.tau = 0.8f;
  o.seed = seed;
  o.sync_each_scale = false;
  return o;
}

ScaleSchedule small_schedule() { return infinity_schedule(1.0, PixelBudget::M0_06); }  // 7 scales up to 16x16

std::vector<float> codes(const GenerateResult& r) { return r.summed_codes.to_floats(); }

// ---- CPU -----------------------------------------------------------------------------------------------------

// Two uniform arrays alternated over four calls (record, replay, ...): each call's codes equal the eager codes
// of its own array, so the recorded scales read the kept uniforms buffer at every replay.
void expect_uniforms_read_each_call(InfinityModel& model) {
  std::vector<float> u1 = io::read_npy(golden("uniforms.npy")).to_floats(), u2 = u1;
  for (float& v : u2) v = 1.0f - v;
  GenerateOptions o = unsynced(small_schedule(), 0);
  std::vector<std::vector<float>> want;
  for (const auto* u : {&u1, &u2}) {
    GenerateOptions e = o;
    e.use_graphs = false;
    e.uniforms = *u;
    want.push_back(codes(model.generate(golden_text(), e)));
  }
  ASSERT_NE(want[0], want[1]);
  for (int call = 0; call < 4; ++call) {
    o.uniforms = call % 2 ? u2 : u1;
    const GenerateResult r = model.generate(golden_text(), o);
    EXPECT_EQ(r.recorded_scales + r.replayed_scales, 7) << "call " << call;
    EXPECT_EQ(codes(r), want[static_cast<size_t>(call % 2)]) << "call " << call;
  }
}

TEST(KeptState, WarmCallAllocatesNothingAndGivesTheSameCodes) {
  CountingBackend be;
  auto model = tiny_model(be);
  const GenerateOptions o = unsynced(small_schedule(), 11);
  be.reset_counts();
  const GenerateResult first = model->generate(golden_text(), o);
  EXPECT_FALSE(first.reused_plan);
  EXPECT_GT(be.allocations, 0);
  be.reset_counts();
  const GenerateResult second = model->generate(golden_text(), o);
  EXPECT_TRUE(second.reused_plan);
  EXPECT_EQ(be.allocations, 0);
  EXPECT_EQ(be.uploads, 0);
  EXPECT_EQ(codes(second), codes(first));
  EXPECT_GT(model->plan_bytes(), second.kv_cache_bytes);
  model->release_plan();
  EXPECT_EQ(model->plan_bytes(), 0u);
  EXPECT_EQ(codes(model->generate(golden_text(), o)), codes(first));
}

TEST(KeptState, RebuildsWhatTheShapeChangesWithoutHoldingBoth) {
  CountingBackend be;
  auto model = tiny_model(be);
  const ScaleSchedule big = small_schedule();
  const ScaleSchedule small("first four", std::vector<ScaleGrid>(big.grids().begin(), big.grids().begin() + 4));
  struct Step {
    const char* what;
    ScaleSchedule schedule;
    int64_t rows, tokens;
    bool new_plan, allocates;
  };
  // The golden text has 7 tokens (the model takes up to 64): the last steps change the text length only, which
  // rebuilds the text buffers but keeps the plan.
  const Step steps[] = {{"first", small, 2, 7, true, true},
                        {"bigger schedule", big, 2, 7, true, true},
                        {"same again", big, 2, 7, false, false},
                        {"batch 1", big, 1, 7, true, true},
                        {"smaller schedule", small, 1, 7, true, true},
                        {"longer text", small, 1, 12, false, true},
                        {"back to 7 tokens", small, 1, 7, false, true}};
  for (const Step& s : steps) {
    const size_t before = model->plan_bytes();
    const size_t base = be.live_bytes - before;  // weights and what else is not the kept state
    be.reset_counts();
    const GenerateResult r = model->generate(text_rows(s.rows, s.tokens), unsynced(s.schedule, 5));
    const size_t after = model->plan_bytes();
    EXPECT_EQ(r.reused_plan, !s.new_plan) << s.what;
    EXPECT_EQ(be.allocations > 0, s.allocates) << s.what;
    EXPECT_LE(be.peak_bytes, base + std::max(before, after)) << s.what << ": old and new state held at once";
    // What a fresh model gives for this call.
    CountingBackend fresh_be;
    auto fresh = tiny_model(fresh_be);
    EXPECT_EQ(codes(r), codes(fresh->generate(text_rows(s.rows, s.tokens), unsynced(s.schedule, 5)))) << s.what;
  }
}

TEST(KeptState, ANewRunnerIsANewPlan) {
  CountingBackend be;
  auto model = tiny_model(be);
  const GenerateOptions o = unsynced(small_schedule(), 3);
  DenseAttentionRunner a, b;
  EXPECT_FALSE(model->generate(golden_text(), o, &a).reused_plan);
  EXPECT_TRUE(model->generate(golden_text(), o, &a).reused_plan);
  EXPECT_FALSE(model->generate(golden_text(), o, &b).reused_plan);
  EXPECT_FALSE(model->generate(golden_text(), o).reused_plan) << "the model's own dense runner is another one";
}

TEST(KeptState, ScalesRunEagerThenRecordedThenReplayed) {
  CountingBackend be;
  auto model = tiny_model(be);
  const int K = small_schedule().num_scales();
  GenerateOptions eager = unsynced(small_schedule(), 11);
  eager.use_graphs = false;
  const std::vector<float> want11 = codes(model->generate(golden_text(), eager));
  eager.seed = 12;
  const std::vector<float> want12 = codes(model->generate(golden_text(), eager));
  ASSERT_NE(want11, want12);

  // The eager calls above already count as the first run: the next call records.
  GenerateOptions o = unsynced(small_schedule(), 11);
  be.reset_counts();
  GenerateResult r = model->generate(golden_text(), o);
  EXPECT_EQ(r.recorded_scales, K);
  EXPECT_EQ(r.replayed_scales, 0);
  EXPECT_EQ(be.records, K);
  EXPECT_EQ(codes(r), want11);
  for (uint64_t seed : {12u, 11u}) {
    o.seed = seed;
    be.reset_counts();
    r = model->generate(golden_text(), o);
    EXPECT_EQ(r.replayed_scales, K) << seed;
    EXPECT_EQ(be.records, 0) << seed;
    EXPECT_EQ(codes(r), seed == 11 ? want11 : want12) << seed;
  }

  // Changed sampling settings: eager once, then recorded again.
  o.tau = 0.9f;
  r = model->generate(golden_text(), o);
  EXPECT_EQ(r.recorded_scales + r.replayed_scales, 0);
  r = model->generate(golden_text(), o);
  EXPECT_EQ(r.recorded_scales, K);

  // skip_last: the run's last scale prepares no next input, another slot: eager first.
  o.skip_last = 2;
  r = model->generate(golden_text(), o);
  EXPECT_EQ(r.replayed_scales, K - 3);
  EXPECT_EQ(r.recorded_scales, 0);
  r = model->generate(golden_text(), o);
  EXPECT_EQ(r.replayed_scales, K - 3);
  EXPECT_EQ(r.recorded_scales, 1);
}

TEST(KeptState, HostBoundOptionsRunEveryScaleEagerly) {
  CountingBackend be;
  auto model = tiny_model(be);
  const TextInput text = golden_text();
  const Tensor forced = io::read_npy(golden("bits_all.npy"));
  for (int option = 0; option < 6; ++option) {
    GenerateOptions o = unsynced(small_schedule(), 11);
    o.keep_logits = option == 0;
    o.keep_bits = option == 1;
    o.keep_inputs = option == 2;
    if (option == 3) o.forced_bits = forced;
    o.sync_each_scale = option == 4;
    o.use_graphs = option != 5;
    for (int call = 0; call < 3; ++call) {
      be.reset_counts();
      const GenerateResult r = model->generate(text, o);
      EXPECT_EQ(r.recorded_scales + r.replayed_scales, 0) << "option " << option << " call " << call;
      EXPECT_EQ(be.records, 0) << "option " << option;
    }
  }
}

TEST(KeptState, SuppliedUniformsComeFromTheKeptBuffer) {
  CountingBackend be;
  auto model = tiny_model(be);
  expect_uniforms_read_each_call(*model);
}

TEST(KeptState, Cs4aDecisionStaysEagerOnTheCpu) {
  CountingBackend be;
  auto model = tiny_model(be);
  const InfinityConfig& c = model->config();
  SparseAttentionOptions so;
  so.max_batch = 4;
  so.dense_below_tokens = 16;
  so.cpu_threads = 2;
  so.cs4a.tau = 0.7f;
  so.cs4a.decision_scale = 5;
  auto runner = make_attention_runner(be, AttentionMode::Cs4a, so, small_schedule(), c.num_heads, int(c.head_dim()));
  ASSERT_FALSE(runner->capturable(5));
  ASSERT_TRUE(runner->capturable(6));
  GenerateOptions o = unsynced(small_schedule(), 11);
  o.use_graphs = false;
  const std::vector<float> want = codes(model->generate(golden_text(), o, runner.get()));
  o.use_graphs = true;
  const GenerateResult recorded = model->generate(golden_text(), o, runner.get());
  EXPECT_EQ(recorded.recorded_scales, 6);
  EXPECT_EQ(codes(recorded), want);
  const GenerateResult replayed = model->generate(golden_text(), o, runner.get());
  EXPECT_EQ(replayed.replayed_scales, 6);
  EXPECT_EQ(codes(replayed), want);
}

// ---- CUDA ----------------------------------------------------------------------------------------------------

struct CudaRun {
  std::unique_ptr<Backend> be;
  std::unique_ptr<InfinityModel> model;
};

bool cuda_run(CudaRun& r) {
  if (!cuda_available()) return false;
  r.be = make_cuda_backend();
  r.model = tiny_model(*r.be);
  return true;
}

// Eager (use_graphs off) vs the recording call vs replays with another seed and back: the same codes bit for bit.
void expect_graphs_match_eager(InfinityModel& model, AttentionRunner* runner, const char* what,
                               int eager_scales = 0) {
  const int K = small_schedule().num_scales();
  GenerateOptions e = unsynced(small_schedule(), 11);
  e.use_graphs = false;
  const std::vector<float> want11 = codes(model.generate(golden_text(), e, runner));
  if (codes(model.generate(golden_text(), e, runner)) != want11) {
    // Not a graph bug: e.g. CS4A's block mass adds partial sums with float atomics.
    ADD_FAILURE() << what << ": two eager runs with the same seed differ; the kernels are not deterministic, so "
                  << "graphs cannot be compared with them bit for bit";
    return;
  }
  e.seed = 12;
  const std::vector<float> want12 = codes(model.generate(golden_text(), e, runner));
  EXPECT_NE(want11, want12) << what;
  GenerateOptions o = unsynced(small_schedule(), 11);
  const GenerateResult recorded = model.generate(golden_text(), o, runner);
  EXPECT_EQ(recorded.recorded_scales, K - eager_scales) << what;
  EXPECT_EQ(codes(recorded), want11) << what << ": recording call";
  for (uint64_t seed : {12u, 11u}) {
    o.seed = seed;
    const GenerateResult r = model.generate(golden_text(), o, runner);
    EXPECT_EQ(r.replayed_scales, K - eager_scales) << what;
    EXPECT_EQ(codes(r), seed == 11 ? want11 : want12) << what << ": replay, seed " << seed;
  }
  std::printf("[graphs cuda] %s: %d of %d scales replayed, codes equal to eager\n", what, K - eager_scales, K);
}

SparseAttentionOptions sparse_options() {
  SparseAttentionOptions so;
  so.max_batch = 4;            // 2 text rows x CFG
  so.dense_below_tokens = 16;  // 4x4 and up through the block-sparse kernel
  so.csla.sink_scales = 3;
  so.csla.window_tokens = 1;
  so.cs4a.sink_scales = 3;
  so.cs4a.tau = 0.7f;
  so.cs4a.decision_scale = 5;
  so.cs4a.union_own_window = false;
  return so;
}

TEST(CudaGraphs, DenseReplayGivesTheEagerCodes) {
  CudaRun run;
  if (!cuda_run(run)) GTEST_SKIP() << "no CUDA device in this build/machine";
  expect_graphs_match_eager(*run.model, nullptr, "dense");
}

TEST(CudaGraphs, CslaAndCs4aReplayGiveTheEagerCodes) {
  CudaRun run;
  if (!cuda_run(run)) GTEST_SKIP() << "no CUDA device in this build/machine";
  const InfinityConfig& c = run.model->config();
  for (AttentionMode mode : {AttentionMode::Csla, AttentionMode::Cs4a}) {
    auto runner = make_attention_runner(*run.be, mode, sparse_options(), small_schedule(), c.num_heads,
                                        int(c.head_dim()));
    for (int k = 0; k < small_schedule().num_scales(); ++k) EXPECT_TRUE(runner->capturable(k)) << k;
    expect_graphs_match_eager(*run.model, runner.get(), mode == AttentionMode::Csla ? "csla" : "cs4a");
  }
}

TEST(CudaGraphs, Cs4aObserverKeepsItsDecisionScaleEager) {
  CudaRun run;
  if (!cuda_run(run)) GTEST_SKIP() << "no CUDA device in this build/machine";
  const InfinityConfig& c = run.model->config();
  SparseAttentionOptions so = sparse_options();
  int decisions = 0;
  so.on_cs4a_decision = [&](const Cs4aDecisionView&) { ++decisions; };
  auto runner = make_attention_runner(*run.be, AttentionMode::Cs4a, so, small_schedule(), c.num_heads,
                                      int(c.head_dim()));
  EXPECT_FALSE(runner->capturable(5));
  expect_graphs_match_eager(*run.model, runner.get(), "cs4a with an observer", 1);
  EXPECT_EQ(decisions, 6 * c.depth) << "every image's decision is observed (3 eager, 1 recording, 2 replays)";
}

TEST(CudaGraphs, SuppliedUniformsAreReadAtEachReplay) {
  CudaRun run;
  if (!cuda_run(run)) GTEST_SKIP() << "no CUDA device in this build/machine";
  expect_uniforms_read_each_call(*run.model);
}

TEST(CudaGraphs, PlanRebuildsWhenScheduleOrBatchChanges) {
  CudaRun run;
  if (!cuda_run(run)) GTEST_SKIP() << "no CUDA device in this build/machine";
  const ScaleSchedule big = small_schedule();
  const ScaleSchedule small("first five", std::vector<ScaleGrid>(big.grids().begin(), big.grids().begin() + 5));
  struct Step {
    ScaleSchedule schedule;
    int64_t rows;
  };
  for (const Step& s : {Step{big, 2}, Step{small, 2}, Step{small, 1}, Step{big, 2}}) {
    GenerateOptions e = unsynced(s.schedule, 21);
    e.use_graphs = false;
    const GenerateResult eager = run.model->generate(text_rows(s.rows, 7), e);
    EXPECT_FALSE(eager.reused_plan) << s.schedule.describe() << " rows " << s.rows;
    const std::vector<float> want = codes(eager);
    const GenerateOptions o = unsynced(s.schedule, 21);
    for (int call = 0; call < 2; ++call) {
      const GenerateResult r = run.model->generate(text_rows(s.rows, 7), o);
      EXPECT_TRUE(r.reused_plan);
      EXPECT_EQ(call == 0 ? r.recorded_scales : r.replayed_scales, s.schedule.num_scales());
      EXPECT_EQ(codes(r), want) << s.schedule.describe() << " rows " << s.rows << " call " << call;
    }
  }
}

TEST(CudaGraphs, WarmCallsAllocateNoGpuMemory) {
  CudaRun run;
  if (!cuda_run(run)) GTEST_SKIP() << "no CUDA device in this build/machine";
  const GenerateOptions o = unsynced(small_schedule(), 4);
  for (int call = 0; call < 4; ++call) {
    run.be->synchronize();
    const size_t before = gpu_memory_stats().current;
    reset_gpu_memory_peak();
    const GenerateResult r = run.model->generate(golden_text(), o);
    if (call >= 1) {  // 1: records, 2-3: replay
      EXPECT_EQ(gpu_memory_stats().peak, before) << "call " << call;
      EXPECT_EQ(gpu_memory_stats().current, before) << "call " << call;
    }
    EXPECT_EQ(r.reused_plan, call > 0);
  }
}

}  // namespace
}  // namespace sparvar::infinity
