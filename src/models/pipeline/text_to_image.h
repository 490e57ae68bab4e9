// Text -> image with a loaded ModelBundle: tokenizer -> T5 encoder -> Infinity (scale by scale, CFG, per-bit
// sampling) -> BSQ-VAE decoder -> uint8 RGB. Empty prompts take the model's unconditional path (the rows
// Infinity was trained on when the caption was dropped: cfg_uncond, here of one token = what an empty
// caption tokenises to: EOS only); when every row is unconditional, CFG is off (both halves would be equal).
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "models/infinity/attention_runner.h"
#include "models/pipeline/image_sizes.h"
#include "models/pipeline/model_bundle.h"

namespace sparvar::pipeline {

struct Progress {
  enum class Phase { Text, Scale, Decode } phase = Phase::Text;
  int scale = 0, num_scales = 0;    // Phase::Scale: the scale just finished
  ScaleGrid grid;
  double ms = 0;                    // time of the phase (or scale) just finished
};

struct TextToImageOptions {
  uint64_t seed = 0;
  std::optional<float> cfg, tau, top_p;  // unset = the manifest's sampling defaults
  std::optional<int> top_k;
  std::optional<SizeChoice> size;        // unset = the manifest's image size and schedule
  int images_per_prompt = 1;             // rows per prompt; all rows run as one batch
  int skip_last = 0;                     // stop after scale K-1-N, decode the partial sum (see GenerateOptions)
  infinity::AttentionRunner* runner = nullptr;  // null = dense
  std::optional<std::vector<float>> uniforms;   // parity: sampling uniforms (scale, batch, token, bit) order
  // true: the transformer waits for the device after every scale (live per-scale progress); false: it never
  // waits inside the scale loop and reports the scales, timed by device events, when the last one is done
  // (infinity::GenerateOptions::sync_each_scale).
  bool sync_each_scale = true;
  std::function<void(const Progress&)> on_progress;
};

struct Timings {
  double tokenize_ms = 0, t5_ms = 0;     // tokenizer, T5 encoder
  double condition_ms = 0;               // Infinity's text conditioning + memory planning
  std::vector<double> scale_ms;          // each scale: blocks, head, CFG, sampling, next input
  double vae_ms = 0;
  double total_ms = 0;
  double scales_ms() const;
};

struct TextToImageResult {
  Tensor images;                         // host U8 [N, H, W, 3], N = prompts x images_per_prompt, prompt-major
  Tensor summed_codes;                   // host F32 [N, d, 1, h, w]
  Timings timings;
  ScaleSchedule schedule;
  float cfg = 1.0f;                      // as used (1 when every row was unconditional)
};

class TextToImage {
 public:
  explicit TextToImage(ModelBundle& bundle) : bundle_(bundle) {}
  TextToImageResult generate(const std::vector<std::string>& prompts, const TextToImageOptions& options);

 private:
  ModelBundle& bundle_;
};

// What the tokenizer sees: lower-cased (ASCII) when the manifest says so, surrounding blanks removed.
std::string normalise_prompt(const std::string& prompt, bool lowercase);

}  // namespace sparvar::pipeline
