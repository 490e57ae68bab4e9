// `sparvar generate`: Infinity text-to-image, for now in parity mode: text features come from a .npy (the
// T5 encoder lands separately), bits can be forced or drawn from supplied uniforms, every scale's logits can
// be dumped. Output: the summed codes (.npy), or the image (.png) through the BSQ-VAE decoder.
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <sstream>

#include "attention/schedule.h"
#include "backend/backend.h"
#include "cli/commands.h"
#include "core/error.h"
#include "io/checkpoint.h"
#include "io/npy.h"
#include "io/png.h"
#include "models/bsq_vae/decoder.h"
#include "models/infinity/generator.h"

namespace sparvar::cli {
namespace {

namespace fs = std::filesystem;

struct GenerateFlags {
  std::string model, config, text_features, text_lens, bits, uniforms, size = "1M", schedule, attn = "dense";
  std::string device = "cpu", dump_logits, output, vae;
  double aspect = 1.0;
  uint64_t seed = 0;
  float cfg = 3.0f, tau = 1.0f, top_p = 0.97f;
  int top_k = 900, batch = 0, threads = 0;
};

// --model: a checkpoint file, a sharded index / folder, or a folder written by make_random_checkpoint.py
// (infinity.pth or infinity_weights/ inside).
fs::path transformer_path(const fs::path& model) {
  if (fs::is_directory(model)) {
    if (fs::exists(model / "infinity.pth")) return model / "infinity.pth";
    if (fs::is_directory(model / "infinity_weights")) return model / "infinity_weights";
  }
  return model;
}

ScaleSchedule parse_schedule(const std::string& text) {
  std::vector<ScaleGrid> grids;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    int h = 0, w = 0;
    char x = 0;
    std::stringstream is(item);
    if (item.find('x') != std::string::npos ? !(is >> h >> x >> w) || x != 'x' : !(is >> h))
      fail("--schedule: cannot parse '{}' (want e.g. 1,2,4 or 1x1,2x3)", item);
    if (w == 0) w = h;
    SPARVAR_CHECK(h >= 1 && w >= 1, "--schedule: grid '{}' must be at least 1x1", item);
    grids.push_back({h, w});
  }
  return ScaleSchedule("custom", grids);
}

// --size: a pixel budget (with --aspect) or an exact image size HxW of one of Infinity's templates.
ScaleSchedule pick_schedule(const GenerateFlags& f) {
  if (!f.schedule.empty()) return parse_schedule(f.schedule);
  const auto budgets = {PixelBudget::M0_06, PixelBudget::M0_25, PixelBudget::M0_60, PixelBudget::M1};
  if (f.size.find('x') == std::string::npos) return infinity_schedule(f.aspect, pixel_budget_from_name(f.size));
  std::vector<std::string> supported;
  for (double r : infinity_aspect_ratios())
    for (PixelBudget b : budgets) {
      const ScaleSchedule s = infinity_schedule(r, b);
      const std::string name = fmt::format("{}x{}", s.grids().back().h * 16, s.grids().back().w * 16);
      if (name == f.size) return s;
      supported.push_back(name);
    }
  fail("--size {} is not an Infinity image size; supported (HxW pixels): {}; or a budget: 0.06M, 0.25M, 0.60M, 1M "
       "with --aspect", f.size, fmt::join(supported, " "));
}

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
  const Tensor rgb = bsq_vae::to_uint8_rgb(decoder.decode(codes));  // [B, H, W, 3]
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

int run_generate(const GenerateFlags& f) {
  SPARVAR_CHECK(f.attn == "dense", "--attn {}: only 'dense' is available so far", f.attn);
  SPARVAR_CHECK(!f.bits.empty() + !f.uniforms.empty() <= 1, "give --bits or --uniforms, not both");
  const fs::path out = f.output;
  const std::string ext = out.extension().string();
  SPARVAR_CHECK(ext == ".npy" || ext == ".png", "-o {}: write .npy (summed codes) or .png (image)", out.string());
  const auto t_start = std::chrono::steady_clock::now();

  const ScaleSchedule schedule = pick_schedule(f);
  std::unique_ptr<Backend> backend = f.device == "cuda" ? make_cuda_backend() : make_cpu_backend(f.threads);
  const io::Checkpoint ckpt = io::open_checkpoint(transformer_path(f.model));
  const infinity::InfinityConfig config = f.config.empty() ? infinity::infer_config(ckpt) : infinity::named_config(f.config);
  std::printf("%s\n", fmt::format("model {} ({}): {}", ckpt.path(), ckpt.format(), config.describe()).c_str());
  infinity::InfinityModel model(*backend, infinity::load_weights(ckpt, config, *backend));
  const double load_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t_start).count();

  const infinity::TextInput text = load_text(f);
  infinity::GenerateOptions o;
  o.schedule = schedule;
  o.cfg = f.cfg;
  o.tau = f.tau;
  o.sampling = {f.top_k, f.top_p};
  o.seed = f.seed;
  if (!f.uniforms.empty()) o.uniforms = io::read_npy(f.uniforms).to_dtype(DType::F32).to_floats();
  if (!f.bits.empty()) o.forced_bits = io::read_npy(f.bits);
  o.on_scale = [](const infinity::ScaleReport& r) {
    std::printf("scale %2d/%d  %3dx%-3d  %9.1f ms\n", r.scale + 1, r.num_scales, r.grid.h, r.grid.w, r.ms);
    std::fflush(stdout);
  };
  std::printf("%s\n", fmt::format("schedule {} ({} tokens), batch {}, cfg {}, tau {}, top-k {}, top-p {}, {} on {}",
                                  schedule.describe(), schedule.total_tokens(), text.features.dim(0), f.cfg, f.tau,
                                  f.top_k, f.top_p, !f.bits.empty() ? "forced bits" : !f.uniforms.empty() ?
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

}  // namespace

Runner register_generate(CLI::App& app) {
  auto* cmd = app.add_subcommand("generate", "Generate with Infinity (parity mode: text features from .npy)");
  cmd->footer(
      "Text features: the T5 encoder output, [tokens, channels] or [batch, tokens, channels] f32; rows past\n"
      "their --text-lens are ignored. --bits forces the bits (logits still computed), --uniforms supplies the\n"
      "sampling uniforms in (scale, batch, token, bit) order (bit = 1 iff u >= p(0)), as our PyTorch reference\n"
      "(python/tools/dump_reference.py) does.\n\n"
      "Examples:\n"
      "  sparvar generate --model /tmp/ckpt_tiny --text-features text.npy --size 0.06M -o codes.npy\n"
      "  sparvar generate --model ckpt --text-features t.npy --uniforms u.npy --dump-logits out/ -o codes.npy\n"
      "  sparvar generate --model ckpt --text-features t.npy --size 1024x1024 --vae vae.pth -o image.png");
  auto f = std::make_shared<GenerateFlags>();
  cmd->add_option("--model", f->model, "Transformer checkpoint: file, sharded index, or folder (infinity.pth / "
                  "infinity_weights/ inside)")->required()->type_name("DIR|FILE");
  cmd->add_option("--config", f->config, "Named config to check the checkpoint against (default: inferred from it)")
      ->type_name("NAME");
  cmd->add_option("--text-features", f->text_features, "T5 features .npy")->required()->type_name("F.npy");
  cmd->add_option("--text-lens", f->text_lens, "Valid tokens per row, comma-separated (default: all)")->type_name("L,...");
  cmd->add_option("--bits", f->bits, "Force these bits [batch, total_tokens, d_vae] instead of sampling")->type_name("F.npy");
  cmd->add_option("--uniforms", f->uniforms, "Sample with these uniforms instead of Philox(seed)")->type_name("F.npy");
  cmd->add_option("--seed", f->seed, "Philox seed of the sampler")->capture_default_str();
  cmd->add_option("--cfg", f->cfg, "Classifier-free guidance on logits (1 = off)")->capture_default_str();
  cmd->add_option("--tau", f->tau, "Logit temperature")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--top-k", f->top_k, "Top-k per bit (only 1 filters; 0 = off)")->capture_default_str();
  cmd->add_option("--top-p", f->top_p, "Top-p per bit (0 = off)")->capture_default_str()->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--size", f->size, "Pixel budget 0.06M|0.25M|0.60M|1M (with --aspect) or image size HxW")
      ->capture_default_str();
  cmd->add_option("--aspect", f->aspect, "Aspect ratio h/w of the template (with a pixel budget)")->capture_default_str();
  cmd->add_option("--schedule", f->schedule, "Custom token grids, e.g. 1,2,4,6 or 1x1,2x3 (overrides --size)");
  cmd->add_option("--attn", f->attn, "Self-attention: dense")->capture_default_str();
  cmd->add_option("--batch", f->batch, "Images (default 0 = one per text row; a single row is repeated)")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  cmd->add_option("--device", f->device, "Backend")->capture_default_str()->check(CLI::IsMember({"cpu", "cuda"}));
  cmd->add_option("--threads", f->threads, "CPU threads (0 = all cores)")->capture_default_str();
  cmd->add_option("--dump-logits", f->dump_logits, "Write scale_KK_{logits,bits}.npy and summed_codes.npy here")
      ->type_name("DIR");
  cmd->add_option("--vae", f->vae, "BSQ-VAE checkpoint for .png output (default: vae.pth beside --model)")
      ->type_name("FILE");
  cmd->add_option("-o,--output", f->output, "Output: .npy (summed codes [B,d,1,H,W]) or .png (image)")->required();
  return [f]() -> int { return run_generate(*f); };
}

}  // namespace sparvar::cli
