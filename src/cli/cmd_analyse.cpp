// `sparvar analyse`: what SparVAR's patterns cost and keep on a schedule. Without a model: per scale the
// tokens, blocks and CSLA density (block fraction, full-block cost) at 64- and 128-token tiles. With --model
// and text features: one CS4A generation, and per layer / head the decision scale's measured block mass:
// the share on the sinks and on the own scale, the share the CSLA pattern keeps, the blocks CS4A keeps at
// tau and its density once mapped to the last scale. --png writes block-mass heatmaps and the masks.
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>

#include "attention/pattern_csla.h"
#include "backend/backend.h"
#include "cli/commands.h"
#include "core/error.h"
#include "io/checkpoint.h"
#include "io/npy.h"
#include "io/png.h"
#include "models/infinity/generator.h"
#include "models/infinity/sparse_attention_runner.h"

namespace sparvar::cli {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

struct AnalyseFlags {
  std::string size = "1M", schedule, model, text_features, prompt, png, device = "cpu";
  double aspect = 1.0;
  bool as_json = false;
  int sink_scales = 6, window = 2, own_radius = 1, decision_scale = -1, threads = 0, tile = 64;
  float tau = 0.95f, cfg = 3.0f;
  uint64_t seed = 0;
};

TileShape tile_of(int tokens) { return tokens == 128 ? TileShape{8, 16} : TileShape{8, 8}; }

ScaleSchedule analysed_schedule(const AnalyseFlags& f) {
  if (!f.schedule.empty()) {
    std::vector<ScaleGrid> grids;
    std::stringstream ss(f.schedule);
    std::string item;
    while (std::getline(ss, item, ',')) {
      int h = 0, w = 0;
      if (std::sscanf(item.c_str(), "%dx%d", &h, &w) < 1 || h < 1) fail("--schedule: cannot parse '{}'", item);
      grids.push_back({h, w > 0 ? w : h});
    }
    return ScaleSchedule("custom", grids);
  }
  return infinity_schedule(f.aspect, pixel_budget_from_name(f.size));
}

CslaOptions csla_options(const AnalyseFlags& f, TileShape tile) {
  CslaOptions o;
  o.q_tile = o.k_tile = tile;
  o.sink_scales = f.sink_scales;
  o.window_tokens = f.window;
  o.own_radius_tiles = f.own_radius;
  o.dense_below_tokens = 0;  // show the pattern itself; which scales the runner sends dense is a separate column
  return o;
}

// ---- geometry: one row per scale ----
json geometry(const AnalyseFlags& f, const ScaleSchedule& s) {
  json rows = json::array();
  for (int k = 0; k < s.num_scales(); ++k) {
    json row{{"scale", k}, {"grid", fmt::format("{}x{}", s.grid(k).h, s.grid(k).w)}, {"tokens", s.tokens(k)},
             {"runs_dense", s.tokens(k) < infinity::SparseAttentionOptions{}.dense_below_tokens}};
    for (int t : {64, 128}) {
      const BlockSparseLayout l = build_csla(s, k, csla_options(f, tile_of(t)), 1);
      const PatternDensity d = measure_density(l);
      row[fmt::format("q_blocks_{}", t)] = l.pattern.num_q_blocks;
      row[fmt::format("k_blocks_{}", t)] = l.pattern.num_k_blocks;
      row[fmt::format("csla_blocks_{}", t)] = d.block_fraction();
      row[fmt::format("csla_cost_{}", t)] = d.cost_fraction();
    }
    rows.push_back(row);
  }
  return rows;
}

void print_geometry(const ScaleSchedule& s, const json& rows) {
  std::printf("schedule %s (%lld tokens)\n", s.describe().c_str(), static_cast<long long>(s.total_tokens()));
  std::printf("%5s %7s %7s %5s | %5s %5s %7s %8s | %5s %5s %7s %8s\n", "scale", "grid", "tokens", "dense",
              "qb64", "kb64", "blk64", "cost64", "qb128", "kb128", "blk128", "cost128");
  for (const json& r : rows)
    std::printf("%5d %7s %7lld %5s | %5d %5d %6.1f%% %7.3fx | %5d %5d %6.1f%% %7.3fx\n", r["scale"].get<int>(),
                r["grid"].get<std::string>().c_str(), static_cast<long long>(r["tokens"].get<int64_t>()),
                r["runs_dense"].get<bool>() ? "yes" : "",
                r["q_blocks_64"].get<int>(), r["k_blocks_64"].get<int>(), 100 * r["csla_blocks_64"].get<double>(),
                r["csla_cost_64"].get<double>(), r["q_blocks_128"].get<int>(), r["k_blocks_128"].get<int>(),
                100 * r["csla_blocks_128"].get<double>(), r["csla_cost_128"].get<double>());
}

// ---- pictures ----
// Gray image of a [rows, cols] grid of values in [0, 1], each cell scale x scale pixels.
void write_grid_png(const fs::path& path, const std::vector<float>& v, int rows, int cols) {
  const int cell = std::max(1, std::min(8, 1024 / std::max(rows, cols)));
  const int W = cols * cell, H = rows * cell;
  std::vector<uint8_t> px(static_cast<size_t>(W) * H);
  for (int y = 0; y < H; ++y)
    for (int x = 0; x < W; ++x) {
      const float val = std::clamp(v[static_cast<size_t>(y / cell) * cols + x / cell], 0.0f, 1.0f);
      px[static_cast<size_t>(y) * W + x] = static_cast<uint8_t>(std::lround(255.0f * val));
    }
  io::write_png(path, px, static_cast<uint32_t>(W), static_cast<uint32_t>(H), 1);
}

std::vector<float> mask_of(const BlockPattern& p, int head) {
  std::vector<float> m(static_cast<size_t>(p.num_q_blocks) * p.num_k_blocks, 0.0f);
  for (int qb = 0; qb < p.num_q_blocks; ++qb)
    for (int32_t kb : p.row(head, qb)) m[static_cast<size_t>(qb) * p.num_k_blocks + kb] = 1.0f;
  return m;
}

// ---- measured attention ----
struct LayerRecord {
  std::vector<float> mass;  // [H, nq, nk], batch-averaged
  BlockPattern selected;
};

json measure(const AnalyseFlags& f, const ScaleSchedule& s) {
  SPARVAR_CHECK(f.prompt.empty() || !f.text_features.empty(),
                "--prompt needs the text-to-image pipeline, not in this build yet: pass --text-features F.npy (T5 "
                "features, as `generate` takes them)");
  SPARVAR_CHECK(!f.text_features.empty(), "--model needs --text-features F.npy");
  std::unique_ptr<Backend> be = f.device == "cuda" ? make_cuda_backend() : make_cpu_backend(f.threads);
  fs::path path = f.model;
  if (fs::is_directory(path) && fs::exists(path / "infinity.pth")) path /= "infinity.pth";
  const io::Checkpoint ckpt = io::open_checkpoint(path);
  const infinity::InfinityConfig cfg = infinity::infer_config(ckpt);
  infinity::InfinityModel model(*be, infinity::load_weights(ckpt, cfg, *be));
  Tensor text = io::read_npy(f.text_features).to_dtype(DType::F32);
  if (text.ndim() == 2) text = text.view({1, text.dim(0), text.dim(1)});

  infinity::SparseAttentionOptions o;
  o.q_tile = o.k_tile = tile_of(f.tile);
  o.csla = csla_options(f, o.q_tile);
  o.cs4a.sink_scales = f.sink_scales;
  o.cs4a.tau = f.tau;
  o.cs4a.decision_scale = f.decision_scale;
  o.cpu_threads = f.threads;
  o.max_batch = static_cast<int>(text.dim(0)) * (f.cfg != 1.0f ? 2 : 1);
  std::vector<LayerRecord> records(static_cast<size_t>(cfg.depth));
  ScaleLayouts decision;
  o.on_cs4a_decision = [&](const infinity::Cs4aDecisionView& d) {
    LayerRecord& r = records.at(static_cast<size_t>(d.layer));
    const size_t per = d.mass.size() / static_cast<size_t>(d.batch);
    r.mass.assign(per, 0.0f);
    for (int64_t b = 0; b < d.batch; ++b)
      for (size_t i = 0; i < per; ++i) r.mass[i] += d.mass[static_cast<size_t>(b) * per + i] / float(d.batch);
    r.selected = *d.selected;
    decision = *d.layouts;
  };
  const int H = cfg.num_heads;
  auto runner = infinity::make_attention_runner(*be, infinity::AttentionMode::Cs4a, o, s, H, int(cfg.head_dim()));
  auto& sparse = dynamic_cast<infinity::SparseAttentionRunner&>(*runner);
  infinity::GenerateOptions go;
  go.schedule = s;
  go.cfg = f.cfg;
  go.seed = f.seed;
  model.generate({text, {}}, go, runner.get());

  const int kd = sparse.decision_scale(), last = s.num_scales() - 1;
  const int nq = decision.q.num_blocks(), nk = decision.k.num_blocks();
  const BlockPattern csla = build_csla_pattern(decision.q, decision.k, o.csla, 1);
  const int sink_end = decision.k.blocks_below(std::min(f.sink_scales, kd)), own_begin = decision.k.blocks_below(kd);
  json out{{"decision_scale", kd}, {"decision_grid", fmt::format("{}x{}", s.grid(kd).h, s.grid(kd).w)},
           {"q_blocks", nq}, {"k_blocks", nk}, {"tau", f.tau}, {"csla_blocks", measure_density(
               make_block_sparse_layout(csla, decision.q, decision.k)).block_fraction()}, {"heads", json::array()}};
  for (int l = 0; l < cfg.depth; ++l) {
    const LayerRecord& r = records[static_cast<size_t>(l)];
    SPARVAR_CHECK(!r.mass.empty(), "analyse: no decision recorded for layer {}", l);
    const BlockSparseLayout* mapped = sparse.cs4a_layout(l, last);
    for (int h = 0; h < H; ++h) {
      double sink = 0, own = 0, kept_csla = 0, kept_cs4a = 0;
      for (int qb = 0; qb < nq; ++qb) {
        const float* row = r.mass.data() + (static_cast<size_t>(h) * nq + qb) * nk;
        for (int kb = 0; kb < sink_end; ++kb) sink += row[kb];
        for (int kb = own_begin; kb < nk; ++kb) own += row[kb];
        for (int32_t kb : csla.row(0, qb)) kept_csla += row[kb];
        for (int32_t kb : r.selected.row(h, qb)) kept_cs4a += row[kb];
      }
      const double blocks_dec = double(r.selected.row_offsets[static_cast<size_t>((h + 1) * nq)] -
                                       r.selected.row_offsets[static_cast<size_t>(h * nq)]) / (double(nq) * nk);
      double mapped_frac = 0;
      if (mapped) {
        const BlockPattern& mp = mapped->pattern;
        mapped_frac = double(mp.row_offsets[static_cast<size_t>((h + 1) * mp.num_q_blocks)] -
                             mp.row_offsets[static_cast<size_t>(h * mp.num_q_blocks)]) /
                      (double(mp.num_q_blocks) * mp.num_k_blocks);
      }
      out["heads"].push_back({{"layer", l}, {"head", h}, {"sink_mass", sink / nq}, {"own_scale_mass", own / nq},
                              {"csla_mass", kept_csla / nq}, {"cs4a_mass", kept_cs4a / nq},
                              {"cs4a_blocks_decision", blocks_dec}, {"cs4a_blocks_last", mapped_frac}});
    }
  }
  if (!f.png.empty()) {
    fs::create_directories(f.png);
    write_grid_png(fs::path(f.png) / "csla_mask_decision.png", mask_of(csla, 0), nq, nk);
    if (sparse.runs_block_sparse(last) && kd != last) {
      const ScaleLayouts& ll = sparse.layouts(last);
      const BlockPattern cl = build_csla_pattern(ll.q, ll.k, o.csla, 1);
      write_grid_png(fs::path(f.png) / "csla_mask_last.png", mask_of(cl, 0), cl.num_q_blocks, cl.num_k_blocks);
    }
    for (int l : {0, cfg.depth / 2, cfg.depth - 1}) {
      const LayerRecord& r = records[static_cast<size_t>(l)];
      for (int h : {0, H - 1}) {
        // Mass per query-block row, scaled to the row's largest block so small rows stay visible.
        std::vector<float> heat(r.mass.begin() + static_cast<long>(h) * nq * nk,
                                r.mass.begin() + static_cast<long>(h + 1) * nq * nk);
        for (int qb = 0; qb < nq; ++qb) {
          float mx = 1e-12f;
          for (int kb = 0; kb < nk; ++kb) mx = std::max(mx, heat[static_cast<size_t>(qb) * nk + kb]);
          for (int kb = 0; kb < nk; ++kb) heat[static_cast<size_t>(qb) * nk + kb] /= mx;
        }
        const fs::path dir(f.png);
        write_grid_png(dir / fmt::format("mass_L{:02d}_H{:02d}.png", l, h), heat, nq, nk);
        write_grid_png(dir / fmt::format("cs4a_mask_decision_L{:02d}_H{:02d}.png", l, h), mask_of(r.selected, h), nq, nk);
        if (const BlockSparseLayout* m = sparse.cs4a_layout(l, last))
          write_grid_png(dir / fmt::format("cs4a_mask_last_L{:02d}_H{:02d}.png", l, h), mask_of(m->pattern, h),
                         m->pattern.num_q_blocks, m->pattern.num_k_blocks);
      }
    }
  }
  return out;
}

void print_measured(const json& m) {
  std::printf("\nmeasured attention at the decision scale %d (%s): %d query x %d key blocks, tau %.2f; CSLA keeps "
              "%.1f%% of the blocks\n", m["decision_scale"].get<int>(), m["decision_grid"].get<std::string>().c_str(),
              m["q_blocks"].get<int>(), m["k_blocks"].get<int>(), m["tau"].get<double>(),
              100 * m["csla_blocks"].get<double>());
  std::printf("%5s %4s | %7s %7s | %9s %9s | %10s %10s\n", "layer", "head", "sinks", "own", "csla-mass", "cs4a-mass",
              "cs4a-blk@d", "cs4a-blk@K");
  for (const json& h : m["heads"])
    std::printf("%5d %4d | %6.1f%% %6.1f%% | %8.1f%% %8.1f%% | %9.1f%% %9.1f%%\n", h["layer"].get<int>(),
                h["head"].get<int>(), 100 * h["sink_mass"].get<double>(), 100 * h["own_scale_mass"].get<double>(),
                100 * h["csla_mass"].get<double>(), 100 * h["cs4a_mass"].get<double>(),
                100 * h["cs4a_blocks_decision"].get<double>(), 100 * h["cs4a_blocks_last"].get<double>());
}

int run_analyse(const AnalyseFlags& f) {
  SPARVAR_CHECK(f.tile == 64 || f.tile == 128, "--tile {}: 64 or 128", f.tile);
  SPARVAR_CHECK(!f.model.empty() || (f.text_features.empty() && f.prompt.empty() && f.png.empty()),
                "--text-features, --prompt and --png need --model (the measured run)");
  const ScaleSchedule s = analysed_schedule(f);
  json report{{"schedule", s.describe()}, {"tokens", s.total_tokens()}, {"scales", geometry(f, s)}};
  if (!f.model.empty()) report["measured"] = measure(f, s);
  if (f.as_json) {
    std::printf("%s\n", report.dump(1).c_str());
    return 0;
  }
  print_geometry(s, report["scales"]);
  if (report.contains("measured")) print_measured(report["measured"]);
  if (!f.png.empty()) std::printf("pictures in %s\n", f.png.c_str());
  return 0;
}

}  // namespace

Runner register_analyse(CLI::App& app) {
  auto* cmd = app.add_subcommand("analyse", "SparVAR pattern densities per scale, and measured attention mass");
  cmd->footer(
      "Columns: dense = the runner sends this scale to dense attention (fewer than 1024 tokens); qb/kb = query /\n"
      "key blocks at 64- and 128-token tiles; blk = share of blocks CSLA lists; cost = listed blocks x full block\n"
      "size / dense pairs (what a block kernel pays relative to dense; > 1 where padding dominates). Measured: share of the decision scale's block mass on the\n"
      "sink scales and the own scale, kept by CSLA and by CS4A (tau), CS4A block share at the decision scale\n"
      "and mapped to the last scale.\n\n"
      "Examples:\n"
      "  sparvar analyse --size 1M\n"
      "  sparvar analyse --model ckpt --text-features t.npy --size 0.25M --png maps/ --json");
  auto f = std::make_shared<AnalyseFlags>();
  cmd->add_option("--size", f->size, "Pixel budget 0.06M|0.25M|0.60M|1M (with --aspect)")->capture_default_str();
  cmd->add_option("--aspect", f->aspect, "Aspect ratio h/w of the template")->capture_default_str();
  cmd->add_option("--schedule", f->schedule, "Custom token grids, e.g. 1,2,4,6 or 1x1,2x3 (overrides --size)");
  cmd->add_option("--model", f->model, "Transformer checkpoint (file or folder with infinity.pth): measure "
                  "attention")->type_name("DIR|FILE");
  cmd->add_option("--text-features", f->text_features, "T5 features .npy for the measured run")->type_name("F.npy");
  cmd->add_option("--prompt", f->prompt, "Prompt (needs the text-to-image pipeline; use --text-features for now)");
  cmd->add_option("--png", f->png, "Write block-mass heatmaps and CSLA / CS4A masks here")->type_name("DIR");
  cmd->add_flag("--json", f->as_json, "Print JSON instead of tables");
  cmd->add_option("--sink-scales", f->sink_scales, "Sink scales (CSLA and CS4A)")->capture_default_str();
  cmd->add_option("--window", f->window, "CSLA window r_j in tokens of each earlier scale")->capture_default_str();
  cmd->add_option("--own-radius", f->own_radius, "CSLA own-scale radius in tiles")->capture_default_str();
  cmd->add_option("--tau", f->tau, "CS4A mass threshold")->capture_default_str()->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--decision-scale", f->decision_scale, "CS4A decision scale (-1 = 4th from last)")
      ->capture_default_str();
  cmd->add_option("--tile", f->tile, "Tile tokens of the measured run: 64 (8x8) or 128 (8x16)")->capture_default_str();
  cmd->add_option("--cfg", f->cfg, "Classifier-free guidance of the measured run")->capture_default_str();
  cmd->add_option("--seed", f->seed, "Sampler seed of the measured run")->capture_default_str();
  cmd->add_option("--device", f->device, "Backend")->capture_default_str()->check(CLI::IsMember({"cpu", "cuda"}));
  cmd->add_option("--threads", f->threads, "CPU threads (0 = all cores)")->capture_default_str();
  return [f]() -> int { return run_analyse(*f); };
}

}  // namespace sparvar::cli
