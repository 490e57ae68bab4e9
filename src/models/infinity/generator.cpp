#include "models/infinity/generator.h"

#include <chrono>
#include <cstring>

#include "backend/trace.h"
#include "core/error.h"
#include "models/infinity/codes.h"
#include "models/infinity/conditioning.h"
#include "models/infinity/generation_plan.h"
#include "models/infinity/scale_work.h"

namespace sparvar::infinity {
namespace {

double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

std::vector<int32_t> checked_lengths(const TextInput& text, const InfinityConfig& c) {
  const Tensor& f = text.features;
  SPARVAR_CHECK(f.defined() && f.ndim() == 3 && f.dtype() == DType::F32 && f.device() == Device::CPU,
                "text features must be a host f32 array [batch, tokens, {}], got {}", c.text_channels,
                f.defined() ? f.describe() : std::string("nothing"));
  SPARVAR_CHECK(f.dim(0) >= 1 && f.dim(1) >= 1, "text features {} are empty (need at least one row and one token)",
                shape_string(f.shape()));
  SPARVAR_CHECK(f.dim(2) == c.text_channels, "text features {} have {} channels; the model expects {}",
                shape_string(f.shape()), f.dim(2), c.text_channels);
  std::vector<int32_t> lens = text.lengths;
  if (lens.empty()) lens.assign(static_cast<size_t>(f.dim(0)), static_cast<int32_t>(f.dim(1)));
  SPARVAR_CHECK(static_cast<int64_t>(lens.size()) == f.dim(0), "{} text lengths given for {} text rows", lens.size(),
                f.dim(0));
  for (int32_t l : lens)
    SPARVAR_CHECK(l >= 1 && l <= f.dim(1), "text length {} is outside [1, {}]", l, f.dim(1));
  return lens;
}

// Rows [cond..., uncond...] (or cond only), zeros past each length, as the reference masks them.
Tensor batch_text(const InfinityWeights& w, const Tensor& features, const std::vector<int32_t>& lens, bool cfg) {
  const int64_t B = features.dim(0), Lt = features.dim(1), Ct5 = features.dim(2);
  Tensor out = Tensor::zeros({cfg ? 2 * B : B, Lt, Ct5}, DType::F32);
  float* o = out.data_as<float>();
  const float* f = features.data_as<float>();
  for (int64_t b = 0; b < B; ++b)
    std::memcpy(o + b * Lt * Ct5, f + b * Lt * Ct5, sizeof(float) * static_cast<size_t>(lens[static_cast<size_t>(b)] * Ct5));
  if (cfg) {
    const Tensor un = unconditional_text(w, B, Lt, lens);
    std::memcpy(o + B * Lt * Ct5, un.data(), un.nbytes());
  }
  return out;
}

std::vector<uint8_t> checked_forced_bits(const Tensor& t, int64_t B, int64_t L, int64_t D) {
  SPARVAR_CHECK(t.shape() == Shape({B, L, D}), "forced bits {} must be [{}, {}, {}] (batch, tokens, bits)",
                shape_string(t.shape()), B, L, D);
  const std::vector<float> v = t.to_floats();
  std::vector<uint8_t> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) {
    SPARVAR_CHECK(v[i] == 0.0f || v[i] == 1.0f, "forced bits hold the value {} at element {} (only 0 and 1)", v[i], i);
    out[i] = v[i] != 0.0f;
  }
  return out;
}

// Forced bits [B, L, D] regrouped scale by scale ([B, n_k, D] blocks one after the other, scales [0, scales)),
// so each scale's bits are one contiguous slice of a single upload.
Tensor forced_bits_by_scale(const std::vector<uint8_t>& forced, const ScaleSchedule& sched, int scales, int64_t B,
                            int64_t D) {
  const int64_t L = sched.total_tokens();
  Tensor out = Tensor::empty({B * sched.offset(scales - 1) + B * sched.tokens(scales - 1), D}, DType::U8);
  uint8_t* o = out.data_as<uint8_t>();
  for (int k = 0; k < scales; ++k)
    for (int64_t b = 0; b < B; ++b) {
      const int64_t n = sched.tokens(k), off = sched.offset(k);
      std::memcpy(o + (B * off + b * n) * D, forced.data() + (b * L + off) * D, static_cast<size_t>(n * D));
    }
  return out.view({out.numel()});
}

// Whether this call's settings allow replaying recorded scales (see GenerateOptions::use_graphs).
bool graphs_allowed(const GenerateOptions& o) {
  return o.use_graphs && !o.keep_logits && !o.keep_bits && !o.keep_inputs && !o.forced_bits && !o.sync_each_scale;
}

}  // namespace

InfinityModel::InfinityModel(Backend& backend, InfinityWeights weights) : backend_(backend), weights_(std::move(weights)) {}

InfinityModel::~InfinityModel() = default;

void InfinityModel::release_plan() { plan_.reset(); }

size_t InfinityModel::plan_bytes() const {
  if (!plan_) return 0;
  const GenerationPlan& p = *plan_;
  size_t total = p.cache.bytes() + p.ws.bytes() + p.codes.bytes() + p.bits.bytes() + p.rope_cos.nbytes() +
                 p.rope_sin.nbytes() + p.seed.nbytes();
  if (p.uniforms.defined()) total += p.uniforms.nbytes();
  if (p.forced.defined()) total += p.forced.nbytes();
  if (p.text) total += p.text->bytes();
  return total;
}

GenerationPlan& InfinityModel::plan_for(const ScaleSchedule& schedule, int64_t batch, bool cfg,
                                        const AttentionRunner& runner, bool& reused) {
  PlanKey key{schedule.grids(), batch, cfg, runner.id()};
  reused = plan_ && plan_->key == key;
  if (!reused) {
    plan_.reset();  // first: the old plan's memory goes before the new one's is allocated
    plan_ = std::make_unique<GenerationPlan>(backend_, weights_, schedule, std::move(key),
                                             runner.cache_order(weights_.dtype));
  }
  return *plan_;
}

GenerateResult InfinityModel::generate(const TextInput& text, const GenerateOptions& o, AttentionRunner* runner_in) {
  Backend& be = backend_;
  const InfinityWeights& w = weights_;
  const InfinityConfig& c = w.config;
  const ScaleSchedule& sched = o.schedule;
  const int K = sched.num_scales();
  SPARVAR_CHECK(K >= 1, "empty scale schedule");
  SPARVAR_CHECK(K <= c.num_lvl, "schedule {} has {} scales; the model has level embeddings for {}", sched.describe(),
                K, c.num_lvl);
  SPARVAR_CHECK(o.tau > 0.0f, "tau must be > 0, got {}", o.tau);
  SPARVAR_CHECK(o.skip_last >= 0 && o.skip_last < K, "skip-last {} must be in [0, {}] for a schedule of {} scales",
                o.skip_last, K - 1, K);
  const int K_run = K - o.skip_last;
  const std::vector<int32_t> lens = checked_lengths(text, c);
  const int64_t B = text.features.dim(0), L = sched.total_tokens(), D = c.d_vae();
  const bool use_cfg = o.cfg != 1.0f;
  // Bits drawn by the scales that run: B * n_k * D per scale, consumed in scale order.
  const int64_t run_bits = B * (sched.offset(K_run - 1) + sched.tokens(K_run - 1)) * D;
  std::vector<uint8_t> forced;
  if (o.forced_bits) forced = checked_forced_bits(*o.forced_bits, B, L, D);
  const bool supplied = forced.empty() && o.uniforms.has_value();
  if (supplied) {
    const int64_t have = static_cast<int64_t>(o.uniforms->size());
    for (int k = 0; k < K_run; ++k) {
      const int64_t first = B * sched.offset(k) * D, last = first + B * sched.tokens(k) * D;
      SPARVAR_CHECK(last <= have, "not enough supplied uniforms: scale {} needs values [{}, {}), the array has {}", k,
                    first, last, have);
    }
  }
  AttentionRunner& runner = runner_in ? *runner_in : dense_;
  GenerateResult result;

  // ---- once per image: the kept state (or a new one), this image's inputs written into it, the text ----
  auto t0 = std::chrono::steady_clock::now();
  GenerationPlan& plan = plan_for(sched, B, use_cfg, runner, result.reused_plan);
  TextBuffers& text_buffers = plan.text_for(be, w, text.features.dim(1));
  Tensor seed = Tensor::empty({8}, DType::U8);
  std::memcpy(seed.data(), &o.seed, sizeof(o.seed));
  be.write(seed, plan.seed);
  if (!forced.empty()) {
    Tensor dst = plan.forced_buffer(be).slice0(0, run_bits);
    be.write(forced_bits_by_scale(forced, sched, K_run, B, D), dst);
  }
  if (supplied) {
    Tensor dst = plan.uniforms_buffer(be).slice0(0, run_bits);
    be.write(Tensor::from_floats({run_bits}, std::vector<float>(o.uniforms->begin(), o.uniforms->begin() + run_bits)),
             dst);
  }
  std::vector<int32_t> lens_all = lens;
  if (use_cfg) lens_all.insert(lens_all.end(), lens.begin(), lens.end());
  encode_text_into(be, w, batch_text(w, text.features, lens, use_cfg), lens_all, plan.text_scratch(), text_buffers);
  ScaleSettings& settings = plan.settings;
  settings.sampling = BitSampling{};
  settings.sampling.tau = o.tau;
  settings.sampling.cfg = o.cfg;
  settings.sampling.top_k = o.sampling.top_k;
  settings.sampling.top_p = o.sampling.top_p;
  settings.supplied_uniforms = supplied;
  settings.forced_bits = !forced.empty();
  settings.keep_logits = o.keep_logits;
  if (o.keep_logits) plan.reserve_kept_logits(c);
  plan.graphs.begin_call(RecordKey{o.tau, o.cfg, o.sampling.top_p, o.sampling.top_k, supplied, lens_all});
  Tensor x = plan.ws.take("x", {plan.rows, 1, c.embed_dim});
  be.copy(text_buffers.cond.start, x);
  be.synchronize();
  result.text_ms = ms_since(t0);
  result.kv_cache_bytes = plan.cache.bytes();
  result.workspace_bytes = plan.ws.bytes() + plan.codes.bytes() + plan.bits.bytes();

  // ---- scale by scale ----
  const bool graphs = graphs_allowed(o);
  std::vector<std::unique_ptr<TimingEvent>> marks;  // !sync_each_scale: the end of each scale's work
  if (!o.sync_each_scale) marks.push_back(be.record_event());
  for (int si = 0; si < K_run; ++si) {
    t0 = std::chrono::steady_clock::now();
    const TraceRange trace(fmt::format("scale {}x{}", sched.grid(si).h, sched.grid(si).w));
    const bool next = si + 1 < K_run;
    // The body reads only state that outlives this call (a CPU "recording" runs it again later).
    Backend* backend = &be;
    const InfinityWeights* weights = &w;
    GenerationPlan* p = &plan;
    AttentionRunner* r = &runner;
    const auto body = [backend, weights, p, r, si, next] { run_scale(*backend, *weights, *p, *r, si, next); };
    switch (plan.graphs.run(be, si, next, graphs && runner.capturable(si), body)) {
      case ScaleGraphs::Outcome::Recorded: ++result.recorded_scales; break;
      case ScaleGraphs::Outcome::Replayed: ++result.replayed_scales; break;
      case ScaleGraphs::Outcome::Eager: break;
    }
    if (o.keep_logits) result.logits.push_back(be.download(scale_logits(plan, c, si)));
    if (o.keep_bits) result.bits.push_back(be.download(scale_bits(plan, c, si)).to_dtype(DType::U8));
    if (o.keep_inputs && next) result.inputs.push_back(be.download(next_input(plan, c, si)));
    if (o.sync_each_scale) {
      be.synchronize();
      result.scale_ms.push_back(ms_since(t0));
      if (o.on_scale) o.on_scale(ScaleReport{si, K_run, sched.grid(si), result.scale_ms.back()});
    } else {
      marks.push_back(be.record_event());
    }
  }
  const ScaleGrid last = latent_grid(sched.grids().back(), c.spatial_patchify);
  const int64_t d = c.vae_codebook_dim;
  const Tensor summed = plan.codes.take("summed", {B, d, last.h, last.w});
  if (o.on_codes_queued) o.on_codes_queued(summed.view({B, d, 1, last.h, last.w}));
  result.summed_codes = be.download(summed).view({B, d, 1, last.h, last.w});
  if (!o.sync_each_scale) {
    be.synchronize();
    for (int si = 0; si < K_run; ++si) {
      result.scale_ms.push_back(marks[static_cast<size_t>(si) + 1]->ms_since(*marks[static_cast<size_t>(si)]));
      if (o.on_scale) o.on_scale(ScaleReport{si, K_run, sched.grid(si), result.scale_ms.back()});
    }
  }
  runner.end_image();
  return result;
}

}  // namespace sparvar::infinity
