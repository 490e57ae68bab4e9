// `sparvar compare`: the same prompts, seed and sampling uniforms through dense attention and each sparse
// mode (and, with --skip-last N, dense with the last N scales skipped), so any difference comes from the
// attention (or the skipped scales) alone. Prints time per image and PSNR / SSIM against the dense image,
// averaged over the prompts, and can write every image side by side (--grid: one row per prompt).
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <sstream>

#include "backend/backend.h"
#include "cli/commands.h"
#include "core/error.h"
#include "io/png.h"
#include "models/pipeline/attention_mode.h"
#include "models/pipeline/image_grid.h"
#include "models/pipeline/metrics.h"
#include "models/pipeline/model_location.h"
#include "models/pipeline/output_files.h"
#include "models/pipeline/prompts.h"
#include "models/pipeline/text_to_image.h"

namespace sparvar::cli {
namespace {

namespace fs = std::filesystem;

struct CompareFlags {
  std::vector<std::string> prompts;
  std::string prompts_file, model, modes = "csla,cs4a", size, device = "auto", grid;
  int skip_last = 0, threads = 0, warmup = 1;
  uint64_t seed = 0;
  std::optional<float> cfg, tau, top_p;
  std::optional<int> top_k;
  bool verbose = false;
};

struct Variant {
  std::string label;
  pipeline::AttentionMode mode = pipeline::AttentionMode::Dense;
  int skip_last = 0;
  std::unique_ptr<infinity::AttentionRunner> runner;
  double ms = 0, psnr_sum = 0, ssim_sum = 0;
  int psnr_finite = 0, psnr_inf = 0;
  std::vector<Tensor> images;  // one per prompt
};

std::vector<std::string> split_modes(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ','))
    if (!item.empty()) out.push_back(item);
  return out;
}

int run_compare(const CompareFlags& f) {
  const std::vector<std::string> prompts = pipeline::gather_prompts(f.prompts, f.prompts_file, false);
  std::vector<Variant> variants(1);
  variants[0].label = "dense";
  auto add = [&](std::string label, pipeline::AttentionMode mode, int skip) {
    variants.emplace_back();
    variants.back().label = std::move(label);
    variants.back().mode = mode;
    variants.back().skip_last = skip;
  };
  for (const auto& name : split_modes(f.modes)) add(name, pipeline::parse_attention_mode(name), 0);
  SPARVAR_CHECK(f.skip_last >= 0, "--skip-last {} must be >= 0", f.skip_last);
  if (f.skip_last > 0)
    add(fmt::format("dense skip-last {}", f.skip_last), pipeline::AttentionMode::Dense, f.skip_last);
  if (!f.grid.empty()) pipeline::require_writable_png(f.grid);
  const pipeline::ModelLocation where = pipeline::locate_model(f.model);
  pipeline::require_model_folder(where);
  if (f.verbose) std::printf("model folder %s (from %s)\n", where.dir.string().c_str(), where.source.c_str());

  const bool cuda = f.device == "cuda" || (f.device == "auto" && cuda_available());
  std::unique_ptr<Backend> backend = cuda ? make_cuda_backend() : make_cpu_backend(f.threads);
  auto bundle = pipeline::ModelBundle::load(where.dir, *backend);
  const pipeline::ModelManifest& m = bundle->manifest();
  pipeline::TextToImageOptions base;
  base.seed = f.seed;
  base.cfg = f.cfg;
  base.tau = f.tau;
  base.top_k = f.top_k;
  base.top_p = f.top_p;
  if (!f.size.empty()) base.size = pipeline::size_from_text(m, f.size);
  const int K = (base.size ? base.size->schedule : m.schedule).num_scales();
  SPARVAR_CHECK(f.skip_last < K, "--skip-last {}: the schedule has {} scales", f.skip_last, K);
  const ScaleSchedule& schedule = base.size ? base.size->schedule : m.schedule;
  for (auto& v : variants) v.runner = pipeline::make_runner(v.mode, *backend, m.infinity, schedule, 2);

  pipeline::TextToImage t2i(*bundle);
  std::printf("%s on %s: %zu prompt(s), seed %llu, %zu variants\n", m.name.c_str(), backend->name().c_str(),
              prompts.size(), static_cast<unsigned long long>(f.seed), variants.size());
  // Untimed warm-up: the first calls pay one-time costs (cuBLASLt algorithm choice, pattern upload, caches).
  for (int w = 0; w < f.warmup; ++w)
    for (auto& v : variants) {
      pipeline::TextToImageOptions o = base;
      o.runner = v.runner.get();
      o.skip_last = v.skip_last;
      (void)t2i.generate({prompts[0]}, o);
    }
  for (size_t p = 0; p < prompts.size(); ++p) {
    for (auto& v : variants) {
      pipeline::TextToImageOptions o = base;
      o.runner = v.runner.get();
      o.skip_last = v.skip_last;
      const pipeline::TextToImageResult r = t2i.generate({prompts[p]}, o);
      v.ms += r.timings.total_ms;
      v.images.push_back(r.images.slice0(0, 1).view({r.images.dim(1), r.images.dim(2), 3}));
      std::printf("  prompt %zu/%zu  %-22s %9.1f ms\n", p + 1, prompts.size(), v.label.c_str(), r.timings.total_ms);
      std::fflush(stdout);
    }
    const Tensor& ref = variants[0].images.back();
    const int H = static_cast<int>(ref.dim(0)), W = static_cast<int>(ref.dim(1));
    const std::span<const uint8_t> a(ref.data_as<uint8_t>(), static_cast<size_t>(ref.numel()));
    for (auto& v : variants) {
      const Tensor& img = v.images.back();
      const std::span<const uint8_t> b(img.data_as<uint8_t>(), static_cast<size_t>(img.numel()));
      const double ps = pipeline::psnr_rgb8(a, b, H, W);
      if (std::isinf(ps)) ++v.psnr_inf;
      else {
        v.psnr_sum += ps;
        ++v.psnr_finite;
      }
      v.ssim_sum += pipeline::ssim_luma_rgb8(a, b, H, W);
    }
  }

  const double n = static_cast<double>(prompts.size());
  std::printf("\n%-22s %14s %14s %10s %8s\n", "mode", "ms / image", "attention ms", "PSNR dB", "SSIM");
  for (const auto& v : variants) {
    // PSNR of identical images is infinite; the mean is over the finite ones (inf only when all are equal).
    const std::string psnr = v.psnr_finite == 0 ? std::string("inf") : fmt::format("{:.2f}", v.psnr_sum / v.psnr_finite);
    std::printf("%-22s %14.1f %14s %10s %8.4f\n", v.label.c_str(), v.ms / n, "n/a", psnr.c_str(), v.ssim_sum / n);
  }
  if (variants.size() > 1 && prompts.size() > 1) std::printf("(averages over %zu prompts)\n", prompts.size());
  if (!f.grid.empty()) {
    std::vector<std::vector<Tensor>> tiles(prompts.size());
    for (size_t p = 0; p < prompts.size(); ++p)
      for (const auto& v : variants) tiles[p].push_back(v.images[p]);
    io::write_png(f.grid, pipeline::image_grid(tiles));
    std::printf("wrote %s (rows: prompts; columns:", f.grid.c_str());
    for (const auto& v : variants) std::printf(" %s |", v.label.c_str());
    std::printf(")\n");
  }
  return 0;
}

}  // namespace

Runner register_compare(CLI::App& app) {
  auto* cmd = app.add_subcommand("compare", "Dense vs sparse attention on the same prompts, seed and uniforms: "
                                            "time, PSNR, SSIM, side-by-side grid");
  cmd->footer("Example:\n  sparvar compare --prompt \"red apple\" --prompt \"dog face\" --modes csla,cs4a --grid cmp.png\n"
              "PSNR / SSIM are against the dense image of the same prompt (SSIM on luma, 11x11 Gaussian, sigma 1.5).\n"
              "--skip-last N adds a row: dense attention with the last N scales skipped.");
  auto f = std::make_shared<CompareFlags>();
  cmd->add_option("--prompt", f->prompts, "Text prompt (repeatable; metrics are averaged)")->type_name("TEXT");
  cmd->add_option("--prompts-file", f->prompts_file, "Prompts, one per line")->type_name("FILE");
  cmd->add_option("--modes", f->modes, "Attention modes to compare with dense, comma-separated (dense, csla, cs4a)")
      ->capture_default_str();
  cmd->add_option("--skip-last", f->skip_last, "Also run dense with the last N scales skipped (0 = no)")
      ->capture_default_str();
  cmd->add_option("--model", f->model, "Model folder (default: models/sparvar-small, as for generate)")
      ->type_name("DIR");
  cmd->add_option("--seed", f->seed, "Philox seed (the same for every mode)")->capture_default_str();
  cmd->add_option("--cfg", f->cfg, "CFG (default: manifest)");
  cmd->add_option("--tau", f->tau, "Logit temperature (default: manifest)");
  cmd->add_option("--top-k", f->top_k, "Top-k per bit (default: manifest)");
  cmd->add_option("--top-p", f->top_p, "Top-p per bit (default: manifest)");
  cmd->add_option("--size", f->size, "Image size HxW (default: manifest)");
  cmd->add_option("--device", f->device, "cpu | cuda | auto")->capture_default_str()
      ->check(CLI::IsMember({"cpu", "cuda", "auto"}));
  cmd->add_option("--threads", f->threads, "CPU threads (0 = all cores)")->capture_default_str();
  cmd->add_option("--warmup", f->warmup, "Untimed runs of the first prompt per mode before timing")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  cmd->add_option("--grid", f->grid, "Write all images side by side to this PNG")->type_name("FILE.png");
  cmd->add_flag("-v,--verbose", f->verbose, "Print the model folder used");
  return [f]() -> int { return run_compare(*f); };
}

}  // namespace sparvar::cli
