#include "models/pipeline/text_to_image.h"

#include <chrono>
#include <cstring>

#include "core/error.h"
#include "models/infinity/conditioning.h"

namespace sparvar::pipeline {
namespace {

using Clock = std::chrono::steady_clock;
double ms_since(Clock::time_point t0) { return std::chrono::duration<double, std::milli>(Clock::now() - t0).count(); }

bool is_blank(const std::string& s) { return s.find_first_not_of(" \t\r\n") == std::string::npos; }

}  // namespace

double Timings::scales_ms() const {
  double s = 0;
  for (double ms : scale_ms) s += ms;
  return s;
}

std::string normalise_prompt(const std::string& prompt, bool lowercase) {
  const size_t b = prompt.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  const size_t e = prompt.find_last_not_of(" \t\r\n");
  std::string s = prompt.substr(b, e - b + 1);
  if (lowercase)
    for (char& c : s)
      if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return s;
}

TextToImageResult TextToImage::generate(const std::vector<std::string>& prompts, const TextToImageOptions& o) {
  const auto t_start = Clock::now();
  const ModelManifest& m = bundle_.manifest();
  Backend& be = bundle_.backend();
  infinity::InfinityModel& model = bundle_.transformer();
  const int64_t d_text = m.infinity.text_channels;
  SPARVAR_CHECK(!prompts.empty(), "no prompts given");
  SPARVAR_CHECK(o.images_per_prompt >= 1, "images per prompt must be >= 1, got {}", o.images_per_prompt);
  const int64_t P = static_cast<int64_t>(prompts.size()), N = P * o.images_per_prompt;
  TextToImageResult r;

  // ---- text: tokenise the conditional prompts, encode them once ----
  auto t0 = Clock::now();
  std::vector<std::string> cond_prompts;
  std::vector<int64_t> cond_index(static_cast<size_t>(P), -1);  // prompt -> row of the T5 batch, -1 = unconditional
  for (int64_t p = 0; p < P; ++p) {
    if (is_blank(prompts[static_cast<size_t>(p)])) continue;
    cond_index[static_cast<size_t>(p)] = static_cast<int64_t>(cond_prompts.size());
    cond_prompts.push_back(normalise_prompt(prompts[static_cast<size_t>(p)], m.lowercase));
  }
  Tensor t5_host;
  std::vector<int32_t> t5_lens;
  if (!cond_prompts.empty()) {
    const t5::TokenBatch tokens = bundle_.tokenizer().encode_batch(cond_prompts);
    r.timings.tokenize_ms = ms_since(t0);
    t0 = Clock::now();
    const t5::T5Output out = bundle_.text_encoder().encode(tokens);
    t5_host = be.download(out.features).to_dtype(DType::F32);
    t5_lens = out.lengths;
    r.timings.t5_ms = ms_since(t0);
  }
  if (o.on_progress) o.on_progress({Progress::Phase::Text, 0, 0, {}, r.timings.tokenize_ms + r.timings.t5_ms});

  // Rows prompt-major; unconditional rows get cfg_uncond[:1] (what an empty caption, EOS only, is trained as).
  const int64_t Lt = t5_host.defined() ? t5_host.dim(1) : 1;
  infinity::TextInput text{Tensor::zeros({N, Lt, d_text}, DType::F32), std::vector<int32_t>(static_cast<size_t>(N))};
  const Tensor uncond = infinity::unconditional_text(model.weights(), 1, 1, {1});
  float* dst = text.features.data_as<float>();
  for (int64_t p = 0; p < P; ++p)
    for (int64_t i = 0; i < o.images_per_prompt; ++i) {
      const int64_t row = p * o.images_per_prompt + i, ci = cond_index[static_cast<size_t>(p)];
      const int32_t len = ci >= 0 ? t5_lens[static_cast<size_t>(ci)] : 1;
      const float* src = ci >= 0 ? t5_host.data_as<float>() + ci * Lt * d_text : uncond.data_as<float>();
      std::memcpy(dst + row * Lt * d_text, src, sizeof(float) * static_cast<size_t>(len * d_text));
      text.lengths[static_cast<size_t>(row)] = len;
    }

  // ---- transformer ----
  const SizeChoice size = o.size ? *o.size : default_size(m);
  infinity::GenerateOptions g;
  g.schedule = size.schedule;
  g.cfg = cond_prompts.empty() ? 1.0f : o.cfg.value_or(m.sampling.cfg);
  g.tau = o.tau.value_or(m.sampling.tau);
  g.sampling = {o.top_k.value_or(m.sampling.top_k), o.top_p.value_or(m.sampling.top_p)};
  g.seed = o.seed;
  g.uniforms = o.uniforms;
  g.skip_last = o.skip_last;
  g.sync_each_scale = o.sync_each_scale;
  if (o.on_progress)
    g.on_scale = [&](const infinity::ScaleReport& s) {
      o.on_progress({Progress::Phase::Scale, s.scale, s.num_scales, s.grid, s.ms});
    };
  // The decode is queued right behind the last scale, so its host side overlaps the scales' device time (with
  // sync_each_scale the device is idle by then, and this changes nothing); it is timed by device events and ends in
  // the 8-bit image on the backend.
  bsq_vae::BsqVaeDecoder::Queued decoded;
  g.on_codes_queued = [&](const Tensor& s) {
    decoded = bundle_.vae().decode_queued(s.view({s.dim(0), s.dim(1), s.dim(3), s.dim(4)}),
                                          bsq_vae::BsqVaeDecoder::Output::Rgb8);
  };
  const infinity::GenerateResult gen = model.generate(text, g, o.runner);
  r.timings.condition_ms = gen.text_ms;
  r.timings.scale_ms = gen.scale_ms;
  r.schedule = size.schedule;
  r.cfg = g.cfg;
  r.summed_codes = gen.summed_codes;

  // ---- decoder (queued above) ----
  r.images = bundle_.vae().rgb8_to_host(decoded.rgb8);
  r.timings.vae_ms = decoded.device_ms();
  if (o.on_progress) o.on_progress({Progress::Phase::Decode, 0, 0, {}, r.timings.vae_ms});
  r.timings.total_ms = ms_since(t_start);
  return r;
}

}  // namespace sparvar::pipeline
