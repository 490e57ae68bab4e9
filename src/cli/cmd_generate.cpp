// `sparvar generate`, two modes:
//  - text to image (default): --prompt TEXT with a model folder (manifest.json; the shipped sparvar-small by
//    default) through src/models/pipeline: T5 -> Infinity -> BSQ-VAE -> PNG.
//  - parity (--text-features F.npy): text features from a .npy, bits forced or drawn from supplied uniforms,
//    every scale's logits dumpable; output the summed codes (.npy) or the image (.png, with --vae).
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <sstream>

#include "attention/schedule.h"
#include "backend/backend.h"
#include "cli/commands.h"
#include "cli/model_files.h"
#include "core/error.h"
#include "io/checkpoint.h"
#include "io/npy.h"
#include "io/png.h"
#include "models/bsq_vae/decoder.h"
#include "models/infinity/generator.h"
#include "models/pipeline/attention_mode.h"
#include "models/pipeline/model_location.h"
#include "models/pipeline/output_files.h"
#include "models/pipeline/prompts.h"
#include "models/pipeline/text_to_image.h"

namespace sparvar::cli {
namespace {

namespace fs = std::filesystem;

struct GenerateFlags {
  // text to image
  std::vector<std::string> prompts;
  std::string prompts_file;
  bool unconditional = false, verbose = false;
  int skip_last = 0;
  // both modes
  std::string model, size, attn = "dense", device = "auto", output = "out.png";
  std::optional<double> aspect;
  uint64_t seed = 0;
  std::optional<float> cfg, tau, top_p;
  std::optional<int> top_k;
  int batch = 0, threads = 0;
  // parity mode
  std::string config, text_features, text_lens, bits, uniforms, schedule, dump_logits, vae;
};

std::unique_ptr<Backend> make_backend(const std::string& device, int threads) {
  const bool cuda = device == "cuda" || (device == "auto" && cuda_available());
  return cuda ? make_cuda_backend() : make_cpu_backend(threads);
}

// --size / --aspect / --schedule (parity mode takes all three).
ScaleSchedule pick_schedule(const GenerateFlags& f) { return schedule_from_flags(f.size, f.aspect, f.schedule); }

std::vector<int32_t> parse_lengths(const std::string& text) {
  std::vector<int32_t> out;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    try {
      out.push_back(std::stoi(item));
    } catch (const std::exception&) {
      fail("--text-lens: '{}' is not a number", item);
    }
  }
  return out;
}

// [Lt, C] or [B, Lt, C] f32 (f16 converted), rows repeated to `batch` when one row is given.
infinity::TextInput load_text(const GenerateFlags& f) {
  Tensor t = io::read_npy(f.text_features);
  SPARVAR_CHECK(t.dtype() == DType::F32 || t.dtype() == DType::F16, "--text-features {}: must be float, is {}",
                f.text_features, dtype_name(t.dtype()));
  t = t.to_dtype(DType::F32);
  if (t.ndim() == 2) t = t.view({1, t.dim(0), t.dim(1)});
  SPARVAR_CHECK(t.ndim() == 3, "--text-features {}: shape {} must be [tokens, channels] or [batch, tokens, channels]",
                f.text_features, shape_string(t.shape()));
  SPARVAR_CHECK(t.numel() > 0, "--text-features {} is empty (shape {})", f.text_features, shape_string(t.shape()));
  infinity::TextInput text{t, f.text_lens.empty() ? std::vector<int32_t>{} : parse_lengths(f.text_lens)};
  const int64_t rows = t.dim(0), batch = f.batch > 0 ? f.batch : rows;
  if (batch != rows) {
    SPARVAR_CHECK(rows == 1, "--batch {} but --text-features has {} rows (give one row, or --batch {})", batch, rows,
                  rows);
    Tensor rep = Tensor::empty({batch, t.dim(1), t.dim(2)}, DType::F32);
    for (int64_t b = 0; b < batch; ++b) std::memcpy(rep.slice0(b, b + 1).data(), t.data(), t.nbytes());
    text.features = rep;
    if (text.lengths.size() == 1) text.lengths.assign(static_cast<size_t>(batch), text.lengths[0]);
  }
  return text;
}

void dump_logits(const fs::path& dir, const infinity::GenerateResult& r) {
  fs::create_directories(dir);
  for (size_t k = 0; k < r.logits.size(); ++k) {
    io::write_npy(dir / fmt::format("scale_{:02d}_logits.npy", k), r.logits[k]);
    io::write_npy(dir / fmt::format("scale_{:02d}_bits.npy", k), r.bits[k]);
  }
  io::write_npy(dir / "summed_codes.npy", r.summed_codes);
}

void write_png_images(const fs::path& out, const GenerateFlags& f, const fs::path& model_dir, Backend& backend,
                      const Tensor& summed) {
  fs::path vae = f.vae;
  if (vae.empty() && fs::is_directory(model_dir) && fs::exists(model_dir / "vae.pth")) vae = model_dir / "vae.pth";
  SPARVAR_CHECK(!vae.empty(), "writing {} needs the BSQ-VAE decoder: pass --vae FILE (or write .npy codes)", out.string());
  auto decoder = bsq_vae::BsqVaeDecoder::load(vae, backend, backend.device() == Device::CPU ? DType::F32 : DType::BF16);
  const Tensor codes = summed.view({summed.dim(0), summed.dim(1), summed.dim(3), summed.dim(4)});
  const Tensor rgb = decoder.decode_rgb8(codes);  // [B, H, W, 3]
  const int64_t B = rgb.dim(0), H = rgb.dim(1), W = rgb.dim(2);
  for (int64_t b = 0; b < B; ++b) {
    fs::path p = out;
    if (b > 0) p.replace_filename(fmt::format("{}_{}{}", out.stem().string(), b, out.extension().string()));
    const auto* px = static_cast<const uint8_t*>(rgb.slice0(b, b + 1).data());
    io::write_png(p, std::span<const uint8_t>(px, static_cast<size_t>(H * W * 3)), static_cast<uint32_t>(W),
                  static_cast<uint32_t>(H), 3);
    std::printf("wrote %s (%lldx%lld)\n", p.string().c_str(), static_cast<long long>(W), static_cast<long long>(H));
  }
}

int run_parity(const GenerateFlags& f) {
  SPARVAR_CHECK(f.attn == "dense", "--attn {}: only 'dense' is available so far", f.attn);
  SPARVAR_CHECK(!f.bits.empty() + !f.uniforms.empty() <= 1, "give --bits or --uniforms, not both");
  const fs::path out = f.output;
  const std::string ext = out.extension().string();
  SPARVAR_CHECK(ext == ".npy" || ext == ".png", "-o {}: write .npy (summed codes) or .png (image)", out.string());
  const auto t_start = std::chrono::steady_clock::now();

  const ScaleSchedule schedule = pick_schedule(f);
  std::unique_ptr<Backend> backend = make_backend(f.device, f.threads);
  const io::Checkpoint ckpt = io::open_checkpoint(transformer_path(f.model));
  const infinity::InfinityConfig config = f.config.empty() ? infinity::infer_config(ckpt) : infinity::named_config(f.config);
  std::printf("%s\n", fmt::format("model {} ({}): {}", ckpt.path(), ckpt.format(), config.describe()).c_str());
  infinity::InfinityModel model(*backend, infinity::load_weights(ckpt, config, *backend));
  const double load_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t_start).count();

  const infinity::TextInput text = load_text(f);
  infinity::GenerateOptions o;
  o.schedule = schedule;
  // Parity defaults: the official inference settings (the golden runs were made with them).
  const float cfg = f.cfg.value_or(3.0f), tau = f.tau.value_or(1.0f), top_p = f.top_p.value_or(0.97f);
  const int top_k = f.top_k.value_or(900);
  o.cfg = cfg;
  o.tau = tau;
  o.sampling = {top_k, top_p};
  o.skip_last = f.skip_last;
  o.seed = f.seed;
  if (!f.uniforms.empty()) o.uniforms = io::read_npy(f.uniforms).to_dtype(DType::F32).to_floats();
  if (!f.bits.empty()) o.forced_bits = io::read_npy(f.bits);
  o.keep_logits = o.keep_bits = !f.dump_logits.empty();  // a download per scale only when they are dumped
  o.on_scale = [](const infinity::ScaleReport& r) {
    std::printf("scale %2d/%d  %3dx%-3d  %9.1f ms\n", r.scale + 1, r.num_scales, r.grid.h, r.grid.w, r.ms);
    std::fflush(stdout);
  };
  std::printf("%s\n", fmt::format("schedule {} ({} tokens), batch {}, cfg {}, tau {}, top-k {}, top-p {}, {} on {}",
                                  schedule.describe(), schedule.total_tokens(), text.features.dim(0), cfg, tau,
                                  top_k, top_p, !f.bits.empty() ? "forced bits" : !f.uniforms.empty() ?
                                  "supplied uniforms" : fmt::format("seed {}", f.seed), backend->name()).c_str());
  const infinity::GenerateResult r = model.generate(text, o);

  if (!f.dump_logits.empty()) dump_logits(f.dump_logits, r);
  if (ext == ".npy") {
    io::write_npy(out, r.summed_codes);
    std::printf("wrote %s (summed codes %s)\n", out.string().c_str(), shape_string(r.summed_codes.shape()).c_str());
  } else {
    write_png_images(out, f, f.model, *backend, r.summed_codes);
  }
  double scales_ms = 0;
  for (double ms : r.scale_ms) scales_ms += ms;
  const double total_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t_start).count();
  std::printf("%s\n", fmt::format("time: load {:.1f} ms, text {:.1f} ms, scales {:.1f} ms ({:.0f} tokens/s), total "
                                  "{:.1f} ms; KV cache {:.1f} MiB, activations {:.1f} MiB",
                                  load_ms, r.text_ms, scales_ms,
                                  1000.0 * static_cast<double>(schedule.total_tokens() * text.features.dim(0)) / scales_ms,
                                  total_ms, static_cast<double>(r.kv_cache_bytes) / (1 << 20),
                                  static_cast<double>(r.workspace_bytes) / (1 << 20)).c_str());
  return 0;
}


// Flag checks that need no model: every user error here ends the run before anything is loaded.
void check_text_flags(const GenerateFlags& f) {
  SPARVAR_CHECK(!f.tau || *f.tau > 0, "--tau {} must be > 0", f.tau.value_or(0));
  SPARVAR_CHECK(!f.top_p || (*f.top_p >= 0 && *f.top_p <= 1), "--top-p {} must be in [0, 1]", f.top_p.value_or(0));
  SPARVAR_CHECK(!f.top_k || *f.top_k >= 0, "--top-k {} must be >= 0", f.top_k.value_or(0));
  SPARVAR_CHECK(f.skip_last >= 0, "--skip-last {} must be >= 0", f.skip_last);
  SPARVAR_CHECK(f.size.empty() || !f.aspect, "give --size or --aspect, not both");
  SPARVAR_CHECK(f.bits.empty() && f.uniforms.empty() && f.dump_logits.empty() && f.text_lens.empty() &&
                    f.schedule.empty() && f.config.empty() && f.vae.empty(),
                "--bits, --uniforms, --dump-logits, --text-lens, --schedule, --config and --vae belong to parity mode "
                "(--text-features)");
}

int run_text_to_image(const GenerateFlags& f) {
  // Everything a user can get wrong is checked before the model loads.
  const std::vector<std::string> prompts = pipeline::gather_prompts(f.prompts, f.prompts_file, f.unconditional);
  check_text_flags(f);
  const pipeline::AttentionMode mode = pipeline::parse_attention_mode(f.attn);
  const int per_prompt = f.batch > 0 ? f.batch : 1;
  const fs::path out = f.output;
  pipeline::require_writable_png(out);
  const std::vector<fs::path> paths = pipeline::numbered_outputs(out, static_cast<int>(prompts.size()) * per_prompt);
  const pipeline::ModelLocation where = pipeline::locate_model(f.model);
  pipeline::require_model_folder(where);
  if (f.verbose) std::printf("model folder %s (from %s)\n", where.dir.string().c_str(), where.source.c_str());

  const auto t_start = std::chrono::steady_clock::now();
  std::unique_ptr<Backend> backend = make_backend(f.device, f.threads);
  auto bundle = pipeline::ModelBundle::load(where.dir, *backend);
  const pipeline::ModelManifest& m = bundle->manifest();
  pipeline::TextToImageOptions o;
  o.seed = f.seed;
  o.cfg = f.cfg;
  o.tau = f.tau;
  o.top_k = f.top_k;
  o.top_p = f.top_p;
  o.images_per_prompt = per_prompt;
  o.skip_last = f.skip_last;
  if (!f.size.empty()) o.size = pipeline::size_from_text(m, f.size);
  if (f.aspect) o.size = pipeline::size_from_aspect(m, *f.aspect);
  const pipeline::SizeChoice size = o.size ? *o.size : pipeline::default_size(m);
  SPARVAR_CHECK(f.skip_last < size.schedule.num_scales(), "--skip-last {}: the {}x{} schedule has {} scales",
                f.skip_last, size.height, size.width, size.schedule.num_scales());
  auto runner = pipeline::make_runner(mode, *backend, m.infinity, size.schedule,
                                      2 * static_cast<int>(prompts.size()) * per_prompt);
  o.runner = runner.get();
  o.on_progress = [](const pipeline::Progress& p) {
    if (p.phase == pipeline::Progress::Phase::Text) std::printf("text       %25.1f ms\n", p.ms);
    if (p.phase == pipeline::Progress::Phase::Scale)
      std::printf("scale %2d/%d  %3dx%-3d  %9.1f ms\n", p.scale + 1, p.num_scales, p.grid.h, p.grid.w, p.ms);
    if (p.phase == pipeline::Progress::Phase::Decode) std::printf("vae decode %25.1f ms\n", p.ms);
    std::fflush(stdout);
  };
  std::printf("%s\n", fmt::format("{} on {}: {} prompt(s) x {}, {}x{} ({} scales{}), attention {}, seed {}, cfg {}, tau "
                                  "{}, top-k {}, top-p {}, load {:.0f} ms",
                                  m.name, backend->name(), prompts.size(), per_prompt, size.height, size.width,
                                  size.schedule.num_scales(),
                                  f.skip_last ? fmt::format(", last {} skipped", f.skip_last) : std::string(),
                                  f.attn, f.seed, f.unconditional ? 1.0f : f.cfg.value_or(m.sampling.cfg),
                                  f.tau.value_or(m.sampling.tau), f.top_k.value_or(m.sampling.top_k),
                                  f.top_p.value_or(m.sampling.top_p), bundle->load_ms()).c_str());
  std::fflush(stdout);
  pipeline::TextToImage t2i(*bundle);
  const pipeline::TextToImageResult r = t2i.generate(prompts, o);
  pipeline::write_pngs(r.images, paths);
  for (const auto& p : paths) std::printf("wrote %s\n", p.string().c_str());
  const pipeline::Timings& t = r.timings;
  const double total = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t_start).count();
  std::printf("%s\n", fmt::format("time: load {:.1f} ms, tokenize {:.1f} ms, T5 {:.1f} ms, conditioning {:.1f} ms, "
                                  "scales {:.1f} ms, VAE {:.1f} ms, total {:.1f} ms ({:.1f} ms per image)",
                                  bundle->load_ms(), t.tokenize_ms, t.t5_ms, t.condition_ms, t.scales_ms(), t.vae_ms,
                                  total, t.total_ms / static_cast<double>(paths.size())).c_str());
  return 0;
}

int run_generate(const GenerateFlags& f) {
  if (f.text_features.empty()) return run_text_to_image(f);
  SPARVAR_CHECK(f.prompts.empty() && f.prompts_file.empty() && !f.unconditional,
                "--text-features (parity mode) replaces the prompt: give one or the other");
  SPARVAR_CHECK(!f.model.empty(), "parity mode (--text-features) needs --model CHECKPOINT");
  return run_parity(f);
}

}  // namespace

Runner register_generate(CLI::App& app) {
  auto* cmd = app.add_subcommand("generate", "Generate images from text with Infinity (T5 -> Infinity -> BSQ-VAE)");
  cmd->footer(
      "Examples:\n"
      "  sparvar generate --prompt \"red apple\" -o apple.png\n"
      "  sparvar generate --prompt \"red apple\" --prompt \"dog face\" --batch 2 --seed 3 -o out/img.png\n"
      "  sparvar generate --unconditional -o any.png\n\n"
      "The model: --model DIR (a folder with manifest.json), else $SPARVAR_MODEL_DIR, else models/sparvar-small of\n"
      "the source tree, else ./models/sparvar-small (-v prints which). Sampling flags default to the manifest's\n"
      "sampling_defaults; the size to its image_size (--size lists the supported ones when it cannot draw one).\n"
      "-o with more than one image writes NAME_0.png, NAME_1.png, ... (prompt-major).\n\n"
      "Parity mode (--text-features F.npy, --model CHECKPOINT): the T5 features come from a .npy ([tokens, ch]\n"
      "or [batch, tokens, ch] f32, rows past --text-lens ignored); --bits forces the bits, --uniforms supplies\n"
      "the sampling uniforms in (scale, batch, token, bit) order (bit = 1 iff u >= p(0)), as our PyTorch reference\n"
      "(python/tools/dump_reference.py) does; -o .npy writes the summed codes, .png decodes with --vae. Its\n"
      "defaults are the official ones: --size 1M, cfg 3, tau 1, top-k 900, top-p 0.97.\n"
      "  sparvar generate --model ckpt --text-features t.npy --uniforms u.npy --dump-logits out/ -o codes.npy");
  auto f = std::make_shared<GenerateFlags>();
  cmd->add_option("--prompt", f->prompts, "Text prompt (repeatable: one image per prompt and --batch)")
      ->type_name("TEXT");
  cmd->add_option("--prompts-file", f->prompts_file, "Prompts, one per line (blank and # lines skipped)")
      ->type_name("FILE");
  cmd->add_flag("--unconditional", f->unconditional, "Draw without text (the model's unconditional path; no CFG)");
  cmd->add_option("--model", f->model, "Model folder with manifest.json (default: models/sparvar-small, see below); "
                  "parity mode: a transformer checkpoint")->type_name("DIR");
  cmd->add_option("--seed", f->seed, "Philox seed of the sampler")->capture_default_str();
  cmd->add_option("--cfg", f->cfg, "Classifier-free guidance on logits, 1 = off (default: manifest)");
  cmd->add_option("--tau", f->tau, "Logit temperature > 0 (default: manifest)");
  cmd->add_option("--top-k", f->top_k, "Top-k per bit: only 1 filters, 0 = off (default: manifest)");
  cmd->add_option("--top-p", f->top_p, "Top-p per bit in [0, 1], 0 = off (default: manifest)");
  cmd->add_option("--size", f->size, "Image size HxW pixels or N for square (default: manifest image_size; parity "
                  "mode: a budget 0.06M|0.25M|0.60M|1M or HxW, default 1M)");
  cmd->add_option("--aspect", f->aspect, "Aspect ratio h/w of an Infinity template: the largest such size the model "
                  "supports (default: the manifest's)");
  cmd->add_option("--attn", f->attn, "Self-attention: dense | csla | cs4a")->capture_default_str()
      ->check(CLI::IsMember({"dense", "csla", "cs4a"}));
  cmd->add_option("--skip-last", f->skip_last, "Skip the last N scales: decode the codes of the earlier ones "
                  "upsampled to the final grid")->capture_default_str();
  cmd->add_option("--batch", f->batch, "Images per prompt, generated together (0 = 1; parity mode: rows, 0 = one "
                  "per text row)")->capture_default_str()->check(CLI::NonNegativeNumber);
  cmd->add_option("--device", f->device, "Backend: cpu | cuda | auto (cuda when available)")->capture_default_str()
      ->check(CLI::IsMember({"cpu", "cuda", "auto"}));
  cmd->add_option("--threads", f->threads, "CPU threads (0 = all cores)")->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  cmd->add_flag("-v,--verbose", f->verbose, "Print the model folder used and where it was found");
  cmd->add_option("-o,--output", f->output, "Output .png (parity mode: .npy summed codes or .png)")
      ->capture_default_str();
  auto* parity = "Parity mode";
  cmd->add_option("--text-features", f->text_features, "T5 features .npy (switches to parity mode)")
      ->type_name("F.npy")->group(parity);
  cmd->add_option("--text-lens", f->text_lens, "Valid tokens per row, comma-separated (default: all)")
      ->type_name("L,...")->group(parity);
  cmd->add_option("--config", f->config, "Named config to check the checkpoint against (default: inferred)")
      ->type_name("NAME")->group(parity);
  cmd->add_option("--schedule", f->schedule, "Custom token grids, e.g. 1,2,4,6 or 1x1,2x3 (overrides --size)")
      ->group(parity);
  cmd->add_option("--bits", f->bits, "Force these bits [batch, total_tokens, d_vae] instead of sampling")
      ->type_name("F.npy")->group(parity);
  cmd->add_option("--uniforms", f->uniforms, "Sample with these uniforms instead of Philox(seed)")
      ->type_name("F.npy")->group(parity);
  cmd->add_option("--dump-logits", f->dump_logits, "Write scale_KK_{logits,bits}.npy and summed_codes.npy here")
      ->type_name("DIR")->group(parity);
  cmd->add_option("--vae", f->vae, "BSQ-VAE checkpoint for .png output (default: vae.pth beside --model)")
      ->type_name("FILE")->group(parity);
  return [f]() -> int { return run_generate(*f); };
}

}  // namespace sparvar::cli
