// The work of one scale of the generation loop, as backend ops only: level embedding, the blocks, the head,
// tau / CFG / sampling (or forced bits), the scale's codes into the running sum, and the next scale's input.
// It reads and writes nothing but the plan's buffers and the plan's settings, so the same function serves the
// eager run and the recording of the scale (Backend::record), and a recording replays exactly what it did.
// Whatever is kept for the caller (logits, bits, inputs) is downloaded afterwards from the views below.
#pragma once

#include "backend/backend.h"
#include "models/infinity/attention_runner.h"
#include "models/infinity/generation_plan.h"
#include "models/infinity/weights.h"

namespace sparvar::infinity {

// Scale `scale`'s work; prepares_next: also the input of scale + 1 (into the workspace's "x").
void run_scale(Backend& backend, const InfinityWeights& w, GenerationPlan& plan, AttentionRunner& runner, int scale,
               bool prepares_next);

// Where the scale's results lie after run_scale: bits U8 [batch, n, d_vae] (sampled or forced); logits F32
// [batch, n, 2 * d_vae] (when settings.keep_logits); the next scale's input F32 [batch, n_next, d_vae].
Tensor scale_bits(const GenerationPlan& plan, const InfinityConfig& c, int scale);
Tensor scale_logits(const GenerationPlan& plan, const InfinityConfig& c, int scale);
Tensor next_input(const GenerationPlan& plan, const InfinityConfig& c, int scale);

}  // namespace sparvar::infinity
