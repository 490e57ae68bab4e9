// The state generate() keeps on the backend from one call to the next (InfinityModel holds one plan): the KV
// cache, the activation workspaces, the RoPE tables, the sampling inputs, the text conditioning's buffers and
// each scale's recorded work. It is sized by what fixes buffer sizes (PlanKey; the text buffers by the text
// length) and refilled by every image, so a warm call allocates nothing. A call of another shape rebuilds it,
// after freeing the old one: peak memory never holds two plans.
#pragma once

#include <memory>
#include <optional>
#include <vector>

#include "attention/schedule.h"
#include "backend/backend.h"
#include "models/infinity/attention_runner.h"
#include "models/infinity/conditioning.h"
#include "models/infinity/kv_cache.h"
#include "models/infinity/scale_graphs.h"
#include "models/infinity/weights.h"
#include "models/infinity/workspace.h"

namespace sparvar::infinity {

struct PlanKey {
  std::vector<ScaleGrid> grids;  // the schedule
  int64_t batch = 0;             // images
  bool cfg = false;              // unconditional rows too (2 * batch rows)
  uint64_t runner = 0;           // AttentionRunner::id(): its buffers are in the recordings
  bool operator==(const PlanKey&) const = default;
};

// The per-call settings one scale's work reads (a recording freezes them: see RecordKey).
struct ScaleSettings {
  BitSampling sampling;          // seed and stream are set per scale from the plan's seed tensor
  bool supplied_uniforms = false;
  bool forced_bits = false;
  bool keep_logits = false;
};

struct GenerationPlan {
  // order: the attention runner's cache order (AttentionRunner::cache_order), or null for row-major.
  GenerationPlan(Backend& backend, const InfinityWeights& w, const ScaleSchedule& schedule, PlanKey key,
                 const CacheOrder* order);

  // Text buffers for `text_len` tokens, rebuilt when that changes (dropping the recordings, which hold their
  // addresses); their scratch is borrowed from `ws`.
  TextBuffers& text_for(Backend& backend, const InfinityWeights& w, int64_t text_len);
  Tensor text_scratch() const;
  // The buffer of kept logits (GenerateOptions::keep_logits), made on first use.
  void reserve_kept_logits(const InfinityConfig& c);
  // Supplied uniforms (F32) and forced bits (U8), [batch * tokens * d_vae] scale-major, made on first use.
  Tensor& uniforms_buffer(Backend& backend);
  Tensor& forced_buffer(Backend& backend);

  PlanKey key;
  ScaleSchedule schedule;
  int64_t batch, rows;           // images; transformer rows (2 * batch with CFG)
  int64_t bits_per_run;          // batch * total tokens * d_vae
  int64_t max_n;                 // tokens of the largest scale
  std::optional<CacheOrder> order;  // the runner's q / KV-cache row order (none: row-major)
  KvCache cache;
  Workspace ws;                  // model dtype: the blocks' activations, the next input
  Workspace codes;               // F32: the running sum of codes, a scale's codes, the next input (kept logits)
  Workspace bits;                // U8: sampled bits
  Tensor rope_cos, rope_sin;     // F32 [total tokens, head_dim / 2]
  Tensor seed;                   // U8 [8]: this image's Philox seed (BitSampling::seed_tensor)
  Tensor uniforms, forced;       // see uniforms_buffer, forced_buffer (undefined until first used)
  std::unique_ptr<TextBuffers> text;
  ScaleSettings settings;
  ScaleGraphs graphs;
};

}  // namespace sparvar::infinity
