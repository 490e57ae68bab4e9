// The generation loop of Infinity: text conditioning once, then scale by scale: level embedding, the blocks
// (KV cache, cross-attention), the bitwise head, CFG on logits, per-bit sampling (or forced bits), the
// running sum of codes and the next scale's input. Memory (KV cache, activations, sampling buffers, the text
// conditioning) is planned from the schedule before the first scale and kept for the next call of the same
// shape (generation_plan.h), and every step of the loop is a backend op: nothing goes to the host and nothing
// waits for the device between the first scale and the last unless asked (keep_*, sync_each_scale). Each
// scale's work can be recorded once and replayed (a CUDA graph: one launch per scale; see use_graphs).
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include "attention/schedule.h"
#include "backend/backend.h"
#include "models/infinity/attention_runner.h"
#include "models/infinity/sampler.h"
#include "models/infinity/weights.h"

namespace sparvar::infinity {

struct TextInput {
  Tensor features;               // host F32 [batch, Lt, Ct5]; values past each length are ignored
  std::vector<int32_t> lengths;  // per row, in [1, Lt]; empty = every row has Lt tokens
};

struct ScaleReport {
  int scale = 0;
  int num_scales = 0;
  ScaleGrid grid;
  double ms = 0;                 // time of this scale (see GenerateOptions::sync_each_scale)
};

struct GenerateOptions {
  ScaleSchedule schedule;
  float cfg = 3.0f;              // logits = cfg * cond + (1 - cfg) * uncond; 1 = no unconditional rows
  float tau = 1.0f;              // logits are divided by tau before CFG
  SamplingParams sampling;
  uint64_t seed = 0;             // Philox seed when no uniforms are supplied
  std::optional<std::vector<float>> uniforms;  // supplied uniforms (parity), (scale, batch, token, bit) order
  std::optional<Tensor> forced_bits;           // host [batch, total_tokens, d_vae] of 0/1: used instead of sampling
  // Per-scale results to return. Each one kept is a download, i.e. a device synchronisation per scale; without
  // them the scale loop runs from the first scale to the last without waiting for the device.
  bool keep_logits = false;      // each scale's logits after tau and CFG
  bool keep_bits = false;        // each scale's bits (sampled or forced)
  bool keep_inputs = false;      // each scale's input (the resampled running sum)
  // true: synchronise after every scale; ScaleReport::ms is its wall time and on_scale runs as each scale
  // finishes (a live progress line). false: no synchronisation inside the loop; each scale is timed by backend
  // events (TimingEvent: device time from the end of the previous scale's work to the end of its own) and
  // on_scale runs for every scale, in order, once the last one has finished.
  bool sync_each_scale = true;
  // Stop after scale K-1-skip_last: the codes so far (each upsampled to the last grid, as every non-final
  // scale always is) form summed_codes, as the reference's trunk_scale does. 0 = run every scale.
  int skip_last = 0;
  // Replay each scale's recorded work (Backend::record: a CUDA graph on the GPU, so a scale is one launch
  // instead of ~20 per block) when the call allows it: none of keep_logits, keep_bits, keep_inputs,
  // forced_bits, sync_each_scale, and the runner says the scale is capturable (AttentionRunner::capturable);
  // other scales run eagerly. With the same plan (schedule, batch, CFG on/off, runner), text length, sampling
  // settings and text lengths, a scale runs eagerly the first time (GEMM autotuning and library plans must
  // not happen inside a capture), is recorded the second time and replayed after that; the seed and supplied
  // uniforms are read from device memory, so they may change between replays. Same kernels in the same
  // order: the bits equal the eager run's.
  bool use_graphs = true;
  std::function<void(const ScaleReport&)> on_scale;
  // Called once, when the last scale's work is queued and before the call waits for the device, with the summed
  // codes [batch, codebook_dim, 1, H, W] still on the backend (a view of this plan's buffer: valid until the next
  // generate call). Work queued here on the same backend (the VAE decode: BsqVaeDecoder::decode_queued) runs
  // right behind the scales, and its host side overlaps their device time. summed_codes is still returned.
  std::function<void(const Tensor& summed_codes)> on_codes_queued;
};

struct GenerateResult {
  std::vector<Tensor> logits;    // per scale host F32 [batch, h*w, 2 * d_vae] (after tau and CFG; keep_logits)
  std::vector<Tensor> bits;      // per scale host U8 [batch, h*w, d_vae] (keep_bits)
  std::vector<Tensor> inputs;    // per scale >= 1 host F32 [batch, h*w, d_vae] (keep_inputs)
  Tensor summed_codes;           // host F32 [batch, codebook_dim, 1, H, W] (last latent grid)
  double text_ms = 0;
  std::vector<double> scale_ms;
  size_t kv_cache_bytes = 0;
  size_t workspace_bytes = 0;
  bool reused_plan = false;      // the backend state of the previous call was reused (nothing allocated)
  int recorded_scales = 0;       // scales recorded by this call (and replayed)
  int replayed_scales = 0;       // scales replayed from an earlier call's recording
};

struct GenerationPlan;

class InfinityModel {
 public:
  InfinityModel(Backend& backend, InfinityWeights weights);
  ~InfinityModel();
  InfinityModel(const InfinityModel&) = delete;
  InfinityModel& operator=(const InfinityModel&) = delete;

  const InfinityConfig& config() const { return weights_.config; }
  const InfinityWeights& weights() const { return weights_; }
  // runner: null = dense attention through the backend. The runner must outlive the calls that use it; the
  // model keeps per-image state (and recordings) for the last runner it was given.
  GenerateResult generate(const TextInput& text, const GenerateOptions& options, AttentionRunner* runner = nullptr);
  // Frees the state kept since the last call (KV cache, activations, conditioning, recordings): for a caller
  // that needs the memory before the next image (the next call allocates it again).
  void release_plan();
  // Backend bytes the kept state holds (0 when none).
  size_t plan_bytes() const;

 private:
  GenerationPlan& plan_for(const ScaleSchedule& schedule, int64_t batch, bool cfg, const AttentionRunner& runner,
                           bool& reused);

  Backend& backend_;
  InfinityWeights weights_;
  DenseAttentionRunner dense_;  // the runner of calls that give none (its id keys the plan)
  std::unique_ptr<GenerationPlan> plan_;
};

// The seam to the image decoder (BSQ-VAE, src/models/bsq_vae): summed codes [batch, d, 1, H, W] in,
// images out. Set by whoever links a decoder; empty = no decoder available in this build.
using CodesDecoder = std::function<Tensor(Backend&, const Tensor& summed_codes)>;

}  // namespace sparvar::infinity
