// `sparvar bench`: end-to-end time of Infinity (transformer scale by scale + BSQ-VAE decode) per attention
// mode, best of N after warm-up, with the per-phase breakdown and peak GPU memory. Text features are given
// (random, or a .npy), as the official figures of ../shared/spec/targets.md are taken: T5 is not timed.
// bench/infinity_e2e/ runs it beside the official PyTorch pipeline on the same checkpoint.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>

#include "attention/schedule.h"
#include "backend/backend.h"
#include "backend/trace.h"
#include "cli/commands.h"
#include "cli/model_files.h"
#include "core/error.h"
#include "core/philox.h"
#include "io/checkpoint.h"
#include "io/npy.h"
#include "io/png.h"
#include "models/bsq_vae/decoder.h"
#include "models/infinity/generator.h"
#include "models/pipeline/attention_mode.h"
#include "models/pipeline/metrics.h"

namespace sparvar::cli {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point t0) { return std::chrono::duration<double, std::milli>(Clock::now() - t0).count(); }

struct BenchFlags {
  std::string model, vae, size = "1M", schedule, attn = "dense,csla,cs4a", device = "cuda", json, text_features, images;
  double aspect = 1.0;
  int repeat = 3, warmup = 2, text_tokens = 0, batch = 1, skip_last = 0, threads = 0;
  bool no_graphs = false;
  uint64_t seed = 0;
  float cfg = 3.0f, tau = 1.0f, top_p = 0.97f;
  int top_k = 900;
};

struct Run {
  // total_ms: to the U8 RGB image on the host (what generate writes as PNG). on_device_ms: to the decoded U8 image
  // on the GPU, where the official pipeline's timing ends (bench/infinity_e2e/official_infinity.py: its uint8 image
  // stays on the GPU); the rest of total_ms is the image's copy to the host.
  double total_ms = 0, on_device_ms = 0, condition_ms = 0, scales_ms = 0, vae_ms = 0;
  std::vector<double> scale_ms;
};

struct ModeResult {
  std::string mode;
  std::vector<Run> runs;
  size_t peak_bytes = 0;
  size_t peak_reserved_bytes = 0;  // what the CUDA allocator's pool held at most (cached free blocks included)
  Tensor image;  // host U8 [B, H, W, 3] of the last run
  const Run& best() const {
    return *std::min_element(runs.begin(), runs.end(), [](const Run& a, const Run& b) { return a.total_ms < b.total_ms; });
  }
  double median_total() const {
    std::vector<double> t;
    for (const Run& r : runs) t.push_back(r.total_ms);
    std::sort(t.begin(), t.end());
    return t[t.size() / 2];
  }
};

// [batch, tokens, channels] in [-1, 1) from Philox: stands in for T5 features (values do not change the time).
Tensor random_text(int64_t batch, int64_t tokens, int64_t channels, uint64_t seed) {
  Tensor t = Tensor::empty({batch, tokens, channels}, DType::F32);
  float* p = t.data_as<float>();
  PhiloxStream(seed, 0xBE7C4).fill_uniform(p, static_cast<uint64_t>(t.numel()));
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = 2.0f * p[i] - 1.0f;
  return t;
}

std::vector<std::string> split_modes(const std::string& text) {
  std::vector<std::string> out;
  size_t b = 0;
  while (b <= text.size()) {
    const size_t e = std::min(text.find(',', b), text.size());
    if (e > b) out.push_back(text.substr(b, e - b));
    b = e + 1;
  }
  SPARVAR_CHECK(!out.empty(), "--attn: no mode given (want e.g. dense,csla,cs4a)");
  for (const auto& m : out) (void)pipeline::parse_attention_mode(m);  // unknown names fail here, before loading
  return out;
}

// Which scales of a run came from CUDA graphs ("" when none did).
std::string graph_note(const infinity::GenerateResult& g) {
  if (g.recorded_scales > 0) return fmt::format("; {} scales recorded", g.recorded_scales);
  if (g.replayed_scales > 0) return fmt::format("; {} scales replayed", g.replayed_scales);
  return "";
}

std::string mib(size_t bytes) { return fmt::format("{:.0f}", static_cast<double>(bytes) / (1 << 20)); }

void print_tables(const std::vector<ModeResult>& results, const ScaleSchedule& schedule) {
  std::printf("\n%-6s %10s %10s %8s %9s %8s %9s %10s %9s\n", "mode", "best ms", "median ms", "cond", "scales", "VAE",
              "peak MiB", "vs first", "on device");
  const double base = results.front().best().total_ms;
  for (const ModeResult& r : results) {
    const Run& b = r.best();
    std::printf("%-6s %10.1f %10.1f %8.1f %9.1f %8.1f %9s %9.2fx %9.1f\n", r.mode.c_str(), b.total_ms,
                r.median_total(), b.condition_ms, b.scales_ms, b.vae_ms, mib(r.peak_bytes).c_str(), base / b.total_ms,
                b.on_device_ms);
  }
  std::printf("\nper scale (ms, best run of each mode)\n%-10s", "scale");
  for (const ModeResult& r : results) std::printf(" %9s", r.mode.c_str());
  std::printf("\n");
  for (size_t k = 0; k < results.front().best().scale_ms.size(); ++k) {
    const ScaleGrid g = schedule.grid(static_cast<int>(k));
    std::printf("%-10s", fmt::format("{}x{}", g.h, g.w).c_str());
    for (const ModeResult& r : results) std::printf(" %9.2f", r.best().scale_ms[k]);
    std::printf("\n");
  }
}

nlohmann::json to_json(const std::vector<ModeResult>& results, const BenchFlags& f, const infinity::InfinityConfig& c,
                       const ScaleSchedule& schedule, const std::string& device, int64_t text_tokens) {
  nlohmann::json j;
  j["model"] = c.name;
  j["config"] = c.describe();
  j["device"] = device;
  j["schedule"] = schedule.describe();
  j["batch"] = f.batch;
  j["cfg"] = f.cfg;
  j["text_tokens"] = text_tokens;
  j["repeat"] = f.repeat;
  j["graphs"] = !f.no_graphs;
  for (const ModeResult& r : results) {
    nlohmann::json m;
    const Run& b = r.best();
    m["best_ms"] = b.total_ms;
    m["median_ms"] = r.median_total();
    m["on_device_ms"] = b.on_device_ms;  // the best run's time to the decoded image on the GPU
    m["condition_ms"] = b.condition_ms;
    m["scales_ms"] = b.scales_ms;
    m["vae_ms"] = b.vae_ms;
    m["scale_ms"] = b.scale_ms;
    m["peak_gpu_bytes"] = r.peak_bytes;
    m["peak_reserved_gpu_bytes"] = r.peak_reserved_bytes;
    std::vector<double> totals;
    for (const Run& run : r.runs) totals.push_back(run.total_ms);
    m["all_ms"] = totals;
    j["modes"][r.mode] = m;
  }
  return j;
}

int run_bench(const BenchFlags& f) {
  const std::vector<std::string> modes = split_modes(f.attn);
  SPARVAR_CHECK(f.repeat >= 1, "--repeat {} must be >= 1", f.repeat);
  SPARVAR_CHECK(f.warmup >= 0, "--warmup {} must be >= 0", f.warmup);
  SPARVAR_CHECK(f.batch >= 1, "--batch {} must be >= 1", f.batch);
  SPARVAR_CHECK(f.text_tokens >= 0, "--text-tokens {} must be >= 0", f.text_tokens);
  if (!f.json.empty()) require_writable_file(f.json);
  const ModelFiles files = locate_model_files(f.model, f.vae);
  const ScaleSchedule schedule = schedule_from_flags(f.size, f.aspect, f.schedule);
  SPARVAR_CHECK(f.skip_last >= 0 && f.skip_last < schedule.num_scales(), "--skip-last {} must be in [0, {}]",
                f.skip_last, schedule.num_scales() - 1);

  std::unique_ptr<Backend> backend = f.device == "cpu" ? make_cpu_backend(f.threads) : make_cuda_backend();
  const DType dtype = backend->device() == Device::CPU ? DType::F32 : DType::BF16;
  auto t0 = Clock::now();
  const io::Checkpoint ckpt = io::open_checkpoint(files.transformer);
  const infinity::InfinityConfig config = infinity::infer_config(ckpt);
  infinity::InfinityModel model(*backend, infinity::load_weights(ckpt, config, *backend));
  auto vae = bsq_vae::BsqVaeDecoder::load(files.vae, *backend, dtype);
  backend->synchronize();
  std::printf("%s\n", fmt::format("{} ({}) + VAE {} on {}: loaded in {:.1f} s{}", files.transformer.string(),
                                  config.describe(), files.vae.string(), backend->name(), ms_since(t0) / 1000,
                                  backend->device() == Device::CUDA
                                      ? fmt::format("; {} MiB on the GPU", mib(gpu_memory_stats().current))
                                      : std::string()).c_str());

  infinity::TextInput text;
  if (f.text_features.empty()) {
    const int tokens = f.text_tokens > 0 ? f.text_tokens : std::min(32, config.text_maxlen);
    SPARVAR_CHECK(tokens <= config.text_maxlen, "--text-tokens {}: the model takes at most {} text tokens", tokens,
                  config.text_maxlen);
    text.features = random_text(f.batch, tokens, config.text_channels, f.seed);
  } else {
    text.features = io::read_npy(f.text_features).to_dtype(DType::F32);
    if (text.features.ndim() == 2) text.features = text.features.view({1, text.features.dim(0), text.features.dim(1)});
  }
  std::printf("%s\n", fmt::format("schedule {} ({} tokens), batch {} (x2 with CFG {}), text {} tokens, top-k {}, "
                                  "top-p {}, {} warm-up + best of {} per mode, {}",
                                  schedule.describe(), schedule.total_tokens(), text.features.dim(0), f.cfg,
                                  text.features.dim(1), f.top_k, f.top_p, f.warmup, f.repeat,
                                  f.no_graphs ? "eager scales (--no-graphs)"
                                  : backend->device() == Device::CUDA ? "scales replayed as CUDA graphs"
                                                                      : "eager scales (no graphs on the CPU)")
                          .c_str());

  std::vector<ModeResult> results;
  for (const std::string& name : modes) {
    const pipeline::AttentionMode mode = pipeline::parse_attention_mode(name);
    const int rows = static_cast<int>(text.features.dim(0)) * (f.cfg != 1.0f ? 2 : 1);
    auto runner = pipeline::make_runner(mode, *backend, config, schedule, rows);
    infinity::GenerateOptions o;
    o.schedule = schedule;
    o.cfg = f.cfg;
    o.tau = f.tau;
    o.sampling = {f.top_k, f.top_p};
    o.seed = f.seed;
    o.skip_last = f.skip_last;
    o.sync_each_scale = false;  // no waiting between scales; per-scale times from device events
    // The model keeps its per-image state for this runner across the runs; each scale runs eagerly on the first
    // run, is recorded on the second and replayed after (GenerateOptions::use_graphs).
    o.use_graphs = !f.no_graphs;
    ModeResult mr;
    mr.mode = name;
    for (int i = 0; i < f.warmup + f.repeat; ++i) {
      backend->synchronize();
      reset_gpu_memory_peak();
      // "bench run 1" is the first call, warm-ups included: a profiler can pick one steady-state run.
      const TraceRange trace_run(fmt::format("bench run {}", i + 1));
      const auto start = Clock::now();
      // The decode is queued right behind the last scale (its host side overlaps the scales' device time) and
      // timed by device events; the summed codes are on the VAE's latent grid (d56: unpatchified). It ends in the
      // 8-bit image on the device, so the total is up to the U8 image on the host, as generate's.
      bsq_vae::BsqVaeDecoder::Queued decoded;
      o.on_codes_queued = [&](const Tensor& summed) {
        decoded = vae.decode_queued(summed.view({summed.dim(0), summed.dim(1), summed.dim(3), summed.dim(4)}),
                                    bsq_vae::BsqVaeDecoder::Output::Rgb8);
      };
      const infinity::GenerateResult g = model.generate(text, o, runner.get());
      Run run;
      run.on_device_ms = ms_since(start);  // generate has waited for the device, the queued decode included
      const Tensor image = vae.rgb8_to_host(decoded.rgb8);  // U8 [B, H, W, 3]
      run.vae_ms = decoded.device_ms();
      run.total_ms = ms_since(start);
      run.condition_ms = g.text_ms;
      run.scale_ms = g.scale_ms;
      for (double ms : g.scale_ms) run.scales_ms += ms;
      const GpuMemoryStats memory = gpu_memory_stats();
      mr.peak_bytes = std::max(mr.peak_bytes, memory.peak);
      mr.peak_reserved_bytes = std::max(mr.peak_reserved_bytes, memory.pool_reserved_peak);
      std::printf("%s\n", fmt::format("{:<6} {} {}: {:.1f} ms (conditioning {:.1f}, scales {:.1f}, VAE {:.1f}){}{}",
                                      name, i < f.warmup ? "warm-up" : "run", i < f.warmup ? i + 1 : i - f.warmup + 1,
                                      run.total_ms, run.condition_ms, run.scales_ms, run.vae_ms,
                                      g.reused_plan ? "" : "; state allocated",
                                      backend->device() == Device::CUDA ? graph_note(g) : "").c_str());
      std::fflush(stdout);
      if (i >= f.warmup) mr.runs.push_back(run);
      if (i + 1 == f.warmup + f.repeat) mr.image = image;
    }
    results.push_back(std::move(mr));
    model.release_plan();  // this mode's state (and recordings) go before the next mode's runner is made
  }
  print_tables(results, schedule);
  if (results.size() > 1) {
    std::printf("\nimage of each mode vs %s (same seed, last run):\n", results.front().mode.c_str());
    for (size_t i = 1; i < results.size(); ++i) {
      const Tensor &a = results.front().image, &b = results[i].image;
      const auto px = [](const Tensor& t) {  // the first image of the batch
        return std::span<const uint8_t>(static_cast<const uint8_t*>(t.data()), static_cast<size_t>(t.dim(1) * t.dim(2) * 3));
      };
      const int h = static_cast<int>(a.dim(1)), w = static_cast<int>(a.dim(2));
      std::printf("  %-6s PSNR %.2f dB, SSIM %.4f\n", results[i].mode.c_str(), pipeline::psnr_rgb8(px(a), px(b), h, w),
                  pipeline::ssim_luma_rgb8(px(a), px(b), h, w));
    }
  }
  if (!f.images.empty()) {
    fs::create_directories(f.images);
    for (const ModeResult& r : results) {
      const Tensor& img = r.image;
      const fs::path p = fs::path(f.images) / fmt::format("{}.png", r.mode);
      io::write_png(p, std::span<const uint8_t>(static_cast<const uint8_t*>(img.data()),
                                                static_cast<size_t>(img.dim(1) * img.dim(2) * 3)),
                    static_cast<uint32_t>(img.dim(2)), static_cast<uint32_t>(img.dim(1)), 3);
    }
  }
  if (!f.json.empty()) {
    std::ofstream(f.json) << to_json(results, f, config, schedule, backend->name(), text.features.dim(1)).dump(2) << "\n";
    std::printf("wrote %s\n", f.json.c_str());
  }
  return 0;
}

}  // namespace

Runner register_bench(CLI::App& app) {
  auto* cmd = app.add_subcommand("bench", "Time Infinity end to end (transformer + VAE) per attention mode");
  cmd->footer(
      "Times what a user waits for per image once the model is loaded: conditioning, every scale (blocks, head,\n"
      "CFG, sampling, next input) and the BSQ-VAE decode. T5 is not timed: the text features are random (or\n"
      "--text-features), as the official figures are taken. Each mode runs --warmup times, then --repeat times;\n"
      "the table shows the best and the median, the per-phase split of the best run, and the peak GPU memory the\n"
      "engine held (tensors, KV cache, scratch; not the CUDA context). The model keeps its per-image GPU state\n"
      "(KV cache, activations, conditioning) between runs, so the peak includes it during the VAE decode, and\n"
      "replays each scale as a CUDA graph from the third run on (--no-graphs: every scale eagerly).\n\n"
      "Examples:\n"
      "  sparvar bench --model ckpt/infinity_2b                  # folder with infinity.pth (or infinity_weights/)\n"
      "                                                          # and vae.pth, as make_random_checkpoint.py writes\n"
      "  sparvar bench --model ckpt/infinity_8b --attn dense,cs4a --repeat 5 --json out/8b.json\n"
      "  sparvar bench --model models/sparvar-small --size 256 --device cpu --repeat 1");
  auto f = std::make_shared<BenchFlags>();
  cmd->add_option("--model", f->model, "Model folder (infinity.pth / infinity.safetensors / infinity_weights/ and "
                  "vae.pth) or a transformer checkpoint (then --vae)")->required()->type_name("PATH");
  cmd->add_option("--vae", f->vae, "BSQ-VAE checkpoint (default: vae.pth beside the transformer)")->type_name("FILE");
  cmd->add_option("--attn", f->attn, "Comma-separated modes: dense, csla, cs4a (the first is the ratio base)")
      ->capture_default_str();
  cmd->add_option("--size", f->size, "Pixel budget 0.06M|0.25M|0.60M|1M (with --aspect) or HxW")->capture_default_str();
  cmd->add_option("--aspect", f->aspect, "Aspect ratio h/w of an Infinity template")->capture_default_str();
  cmd->add_option("--schedule", f->schedule, "Custom token grids, e.g. 1,2,4,8 or 1x1,2x3 (overrides --size)");
  cmd->add_option("--repeat", f->repeat, "Timed runs per mode")->capture_default_str();
  cmd->add_option("--warmup", f->warmup, "Untimed runs per mode first (the first runs the scales eagerly, the "
                  "second records their CUDA graphs)")->capture_default_str();
  cmd->add_flag("--no-graphs", f->no_graphs, "Run every scale eagerly (no CUDA graphs), to compare");
  cmd->add_option("--batch", f->batch, "Images generated together (x2 rows with CFG)")->capture_default_str();
  cmd->add_option("--text-tokens", f->text_tokens, "Length of the random text features (0 = 32, or the model's "
                  "maximum if smaller)")->capture_default_str();
  cmd->add_option("--text-features", f->text_features, "T5 features .npy instead of random ones")->type_name("F.npy");
  cmd->add_option("--seed", f->seed, "Philox seed (sampling and the random text)")->capture_default_str();
  cmd->add_option("--cfg", f->cfg, "Classifier-free guidance (1 = off: no unconditional rows)")->capture_default_str();
  cmd->add_option("--tau", f->tau, "Logit temperature")->capture_default_str();
  cmd->add_option("--top-k", f->top_k, "Top-k per bit")->capture_default_str();
  cmd->add_option("--top-p", f->top_p, "Top-p per bit")->capture_default_str();
  cmd->add_option("--skip-last", f->skip_last, "Skip the last N scales")->capture_default_str();
  cmd->add_option("--device", f->device, "cuda | cpu")->capture_default_str()->check(CLI::IsMember({"cuda", "cpu"}));
  cmd->add_option("--threads", f->threads, "CPU threads (0 = all cores)")->capture_default_str();
  cmd->add_option("--json", f->json, "Also write the results as JSON here")->type_name("FILE");
  cmd->add_option("--images", f->images, "Write the last image of each mode as DIR/<mode>.png")->type_name("DIR");
  return [f]() -> int { return run_bench(*f); };
}

}  // namespace sparvar::cli
