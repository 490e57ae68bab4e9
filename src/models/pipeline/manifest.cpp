#include "models/pipeline/manifest.h"

#include <cmath>
#include <fstream>
#include <set>
#include <sstream>
#include <system_error>

#include "core/error.h"
#include "io/strict_json.h"

namespace sparvar::pipeline {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// Every manifest error names the file and the JSON path, so a hand-edited manifest is quick to fix.
struct Where {
  std::string file;
  std::string path;
  Where operator/(const std::string& key) const { return {file, path.empty() ? key : path + "." + key}; }
};

const json& member(const json& obj, const std::string& key, const Where& w) {
  const auto it = obj.find(key);
  SPARVAR_CHECK(it != obj.end(), "{}: '{}' is missing", w.file, (w / key).path);
  return *it;
}

void only_fields(const json& obj, const std::set<std::string>& allowed, const Where& w) {
  SPARVAR_CHECK(obj.is_object(), "{}: '{}' must be an object", w.file, w.path.empty() ? "<top level>" : w.path);
  for (const auto& [key, value] : obj.items()) {
    (void)value;
    if (!allowed.count(key)) {
      std::vector<std::string> names(allowed.begin(), allowed.end());
      fail("{}: unknown field '{}' (known here: {})", w.file, (w / key).path, fmt::join(names, ", "));
    }
  }
}

std::string get_string(const json& obj, const std::string& key, const Where& w) {
  const json& v = member(obj, key, w);
  SPARVAR_CHECK(v.is_string(), "{}: '{}' must be a string, is {}", w.file, (w / key).path, v.dump());
  return v.get<std::string>();
}

// True when the JSON integer v lies in [lo, hi]. Integers above INT64_MAX are stored unsigned and would wrap
// to negative numbers through get<int64_t>(), so they are compared as what they are.
bool integer_in(const json& v, int64_t lo, int64_t hi) {
  if (v.is_number_unsigned()) return hi >= 0 && v.get<uint64_t>() <= static_cast<uint64_t>(hi) &&
                                    (lo <= 0 || v.get<uint64_t>() >= static_cast<uint64_t>(lo));
  const int64_t x = v.get<int64_t>();
  return x >= lo && x <= hi;
}

int get_int(const json& obj, const std::string& key, const Where& w) {
  const json& v = member(obj, key, w);
  SPARVAR_CHECK(v.is_number_integer(), "{}: '{}' must be an integer, is {}", w.file, (w / key).path, v.dump());
  SPARVAR_CHECK(integer_in(v, -(int64_t{1} << 30), int64_t{1} << 30), "{}: '{}' = {} is out of range", w.file,
                (w / key).path, v.dump());
  return static_cast<int>(v.get<int64_t>());
}

// A model size: an integer in [lo, hi]. The bounds keep the sizes derived from it (FFN width, channels, pixels)
// inside int, and keep zero out of the divisions the config checks do.
constexpr int kMaxSize = 1 << 20;
int get_size(const json& obj, const std::string& key, const Where& w, int lo = 1, int hi = kMaxSize) {
  const int x = get_int(obj, key, w);
  SPARVAR_CHECK(x >= lo && x <= hi, "{}: '{}' = {} must be in [{}, {}]", w.file, (w / key).path, x, lo, hi);
  return x;
}

double get_number(const json& obj, const std::string& key, const Where& w) {
  const json& v = member(obj, key, w);
  SPARVAR_CHECK(v.is_number(), "{}: '{}' must be a number, is {}", w.file, (w / key).path, v.dump());
  return v.get<double>();
}

bool get_bool(const json& obj, const std::string& key, const Where& w) {
  const json& v = member(obj, key, w);
  SPARVAR_CHECK(v.is_boolean(), "{}: '{}' must be true or false, is {}", w.file, (w / key).path, v.dump());
  return v.get<bool>();
}

fs::path existing(const fs::path& dir, const std::string& rel, const Where& w, bool want_dir) {
  const fs::path p = dir / rel;
  // The error_code forms: a name the file system refuses (too long, say) is a bad manifest, not a crash.
  std::error_code ec;
  const fs::file_status status = fs::status(p, ec);
  SPARVAR_CHECK(!ec || status.type() == fs::file_type::not_found, "{}: '{}' names {}, which cannot be looked up: {}",
                w.file, w.path, p.string(), ec.message());
  SPARVAR_CHECK(fs::exists(status), "{}: '{}' names {}, which does not exist", w.file, w.path, p.string());
  SPARVAR_CHECK(fs::is_directory(status) == want_dir, "{}: '{}' names {}, which is not a {}", w.file, w.path,
                p.string(), want_dir ? "folder" : "file");
  return p;
}

// sparvar_ref InfinityConfig (dataclass asdict) -> our config; the derived sizes follow infinity.py.
infinity::InfinityConfig infinity_config(const json& c, const std::string& name, const Where& w) {
  only_fields(c, {"depth", "embed_dim", "num_heads", "mlp_ratio", "text_channels", "text_maxlen", "vae_codebook_dim",
                  "spatial_patchify", "block_chunks", "norm_eps", "num_lvl"}, w);
  infinity::InfinityConfig cfg;
  cfg.name = name;
  cfg.depth = get_size(c, "depth", w);
  cfg.embed_dim = get_size(c, "embed_dim", w);
  cfg.num_heads = get_size(c, "num_heads", w);
  const double mlp = get_number(c, "mlp_ratio", w);
  SPARVAR_CHECK(mlp > 0 && mlp < 64, "{}: '{}' = {} must be in (0, 64)", w.file, (w / "mlp_ratio").path, mlp);
  cfg.ffn_hidden = static_cast<int>(std::round(cfg.embed_dim * mlp / 256.0) * 256);
  cfg.text_channels = get_size(c, "text_channels", w);
  cfg.text_maxlen = get_size(c, "text_maxlen", w);
  cfg.vae_codebook_dim = get_size(c, "vae_codebook_dim", w);
  cfg.spatial_patchify = get_bool(c, "spatial_patchify", w);
  cfg.block_chunks = get_size(c, "block_chunks", w);
  cfg.norm_eps = static_cast<float>(get_number(c, "norm_eps", w));
  cfg.num_lvl = get_size(c, "num_lvl", w);
  cfg.pool_heads = cfg.text_channels / (cfg.embed_dim <= 4096 ? 128 : 64);
  try {
    infinity::validate(cfg);
  } catch (const Error& e) {
    fail("{}: '{}' is not a valid Infinity config: {}", w.file, w.path, e.what());
  }
  return cfg;
}

bsq_vae::VaeConfig vae_config(const json& c, const Where& w) {
  only_fields(c, {"codebook_dim", "patch_size", "base_ch", "ch_mult", "num_res_blocks", "in_channels"}, w);
  bsq_vae::VaeConfig cfg;
  cfg.codebook_dim = get_size(c, "codebook_dim", w);
  cfg.patch_size = get_size(c, "patch_size", w, 2, 1024);
  cfg.base_ch = get_size(c, "base_ch", w);
  cfg.num_res_blocks = get_size(c, "num_res_blocks", w, 0);
  const int in_ch = get_int(c, "in_channels", w);
  SPARVAR_CHECK(in_ch == 3, "{}: '{}' = {}: only RGB (3) VAEs are supported", w.file, (w / "in_channels").path, in_ch);
  const json& mult = member(c, "ch_mult", w);
  SPARVAR_CHECK(mult.is_array() && !mult.empty(), "{}: '{}' must be a non-empty list of integers", w.file,
                (w / "ch_mult").path);
  cfg.ch_mult.clear();
  for (const json& m : mult) {
    SPARVAR_CHECK(m.is_number_integer() && m.get<int64_t>() > 0 && m.get<int64_t>() < 1024,
                  "{}: '{}' holds {}, not a positive integer", w.file, (w / "ch_mult").path, m.dump());
    cfg.ch_mult.push_back(m.get<int>());
  }
  try {
    cfg.validate();
  } catch (const Error& e) {
    fail("{}: '{}' is not a valid BSQ-VAE config: {}", w.file, w.path, e.what());
  }
  return cfg;
}

ScaleSchedule schedule_of(const json& s, const Where& w) {
  SPARVAR_CHECK(s.is_array() && !s.empty(), "{}: '{}' must be a non-empty list of [t, h, w] grids", w.file, w.path);
  std::vector<ScaleGrid> grids;
  for (const json& g : s) {
    const bool ok = g.is_array() && (g.size() == 3 || g.size() == 2) &&
                    std::all_of(g.begin(), g.end(), [](const json& x) { return x.is_number_integer(); });
    SPARVAR_CHECK(ok, "{}: '{}' holds {}, not a [t, h, w] grid of integers", w.file, w.path, g.dump());
    const size_t o = g.size() - 2;
    SPARVAR_CHECK(o == 0 || g[0].get<int64_t>() == 1, "{}: '{}' grid {}: only t = 1 (images) is supported", w.file,
                  w.path, g.dump());
    const int64_t h = g[o].get<int64_t>(), wd = g[o + 1].get<int64_t>();
    SPARVAR_CHECK(h >= 1 && wd >= 1 && h <= 4096 && wd <= 4096, "{}: '{}' grid {} is out of range", w.file, w.path,
                  g.dump());
    grids.push_back({static_cast<int>(h), static_cast<int>(wd)});
  }
  return ScaleSchedule("manifest", grids);
}

}  // namespace

ModelManifest parse_manifest(const std::string& text, const fs::path& dir) {
  const std::string file = (dir / "manifest.json").string();
  const json root = io::parse_strict_json(text, file);
  const Where top{file, ""};
  only_fields(root, {"name", "dtype", "infinity", "vae", "t5", "image_size", "schedule", "sampling_defaults",
                     "training"}, top);
  ModelManifest m;
  m.dir = dir;
  m.name = root.contains("name") ? get_string(root, "name", top) : dir.filename().string();
  if (root.contains("dtype")) m.dtype = get_string(root, "dtype", top);

  const Where wi = top / "infinity";
  const json& inf = member(root, "infinity", top);
  only_fields(inf, {"name", "config", "path", "format"}, wi);
  m.infinity_name = inf.contains("name") ? get_string(inf, "name", wi) : "custom";
  m.infinity = infinity_config(member(inf, "config", wi), m.infinity_name, wi / "config");
  m.infinity_path = existing(dir, get_string(inf, "path", wi), wi / "path", false);
  if (inf.contains("format")) {
    const std::string f = get_string(inf, "format", wi);
    SPARVAR_CHECK(f == "safetensors" || f == "pth", "{}: '{}' = '{}' (want safetensors or pth)", file,
                  (wi / "format").path, f);
  }

  const Where wv = top / "vae";
  const json& vae = member(root, "vae", top);
  only_fields(vae, {"name", "config", "path", "safetensors_path"}, wv);
  m.vae_name = vae.contains("name") ? get_string(vae, "name", wv) : "custom";
  m.vae = vae_config(member(vae, "config", wv), wv / "config");
  m.vae_path = existing(dir, get_string(vae, "path", wv), wv / "path", false);

  const Where wt = top / "t5";
  const json& t5 = member(root, "t5", top);
  only_fields(t5, {"name", "path", "tokenizer", "max_tokens", "lowercase"}, wt);
  m.t5_name = t5.contains("name") ? get_string(t5, "name", wt) : "custom";
  m.t5_dir = existing(dir, get_string(t5, "path", wt), wt / "path", true);
  m.tokenizer = existing(dir, get_string(t5, "tokenizer", wt), wt / "tokenizer", false);
  m.max_tokens = get_int(t5, "max_tokens", wt);
  SPARVAR_CHECK(m.max_tokens >= 2 && m.max_tokens <= m.infinity.text_maxlen,
                "{}: 't5.max_tokens' = {} must be in [2, {}] (the transformer's text_maxlen)", file, m.max_tokens,
                m.infinity.text_maxlen);
  if (t5.contains("lowercase")) m.lowercase = get_bool(t5, "lowercase", wt);

  m.schedule = schedule_of(member(root, "schedule", top), top / "schedule");
  SPARVAR_CHECK(m.schedule.num_scales() <= m.infinity.num_lvl,
                "{}: 'schedule' has {} scales; the transformer has level embeddings for {}", file,
                m.schedule.num_scales(), m.infinity.num_lvl);
  const json& size = member(root, "image_size", top);
  SPARVAR_CHECK(size.is_array() && size.size() == 2 && size[0].is_number_integer() && size[1].is_number_integer(),
                "{}: 'image_size' must be [height, width], is {}", file, size.dump());
  const int px = m.vae.patch_size * (m.infinity.spatial_patchify ? 2 : 1);
  const ScaleGrid last = m.schedule.grids().back();
  SPARVAR_CHECK(integer_in(size[0], last.h * px, last.h * px) && integer_in(size[1], last.w * px, last.w * px),
                "{}: 'image_size' {}x{} does not match the schedule's last grid {}x{} x {} pixels per token", file,
                size[0].dump(), size[1].dump(), last.h, last.w, px);
  m.image_h = last.h * px;
  m.image_w = last.w * px;
  SPARVAR_CHECK(m.vae.codebook_dim == m.infinity.vae_codebook_dim,
                "{}: the VAE has {} bits per latent, the transformer predicts {}", file, m.vae.codebook_dim,
                m.infinity.vae_codebook_dim);

  if (root.contains("sampling_defaults")) {
    const Where ws = top / "sampling_defaults";
    const json& s = root["sampling_defaults"];
    only_fields(s, {"cfg", "tau", "top_k", "top_p"}, ws);
    if (s.contains("cfg")) m.sampling.cfg = static_cast<float>(get_number(s, "cfg", ws));
    if (s.contains("tau")) m.sampling.tau = static_cast<float>(get_number(s, "tau", ws));
    if (s.contains("top_k")) m.sampling.top_k = get_int(s, "top_k", ws);
    if (s.contains("top_p")) m.sampling.top_p = static_cast<float>(get_number(s, "top_p", ws));
    SPARVAR_CHECK(m.sampling.tau > 0, "{}: 'sampling_defaults.tau' must be > 0", file);
    SPARVAR_CHECK(m.sampling.top_p >= 0 && m.sampling.top_p <= 1, "{}: 'sampling_defaults.top_p' must be in [0, 1]",
                  file);
  }
  if (root.contains("training"))  // free-form provenance (steps, minutes); kept out of the engine
    SPARVAR_CHECK(root["training"].is_object(), "{}: 'training' must be an object", file);
  return m;
}

ModelManifest read_manifest(const fs::path& dir) {
  std::error_code ec;  // error_code forms: a path the file system refuses is reported, not thrown as filesystem_error
  SPARVAR_CHECK(fs::is_directory(dir, ec), "model folder {} does not exist{}", dir.string(),
                ec ? " (" + ec.message() + ")" : std::string());
  const fs::path file = dir / "manifest.json";
  SPARVAR_CHECK(fs::is_regular_file(file, ec), "{} has no manifest.json (not a sparvar model folder)", dir.string());
  std::ifstream in(file, std::ios::binary);
  SPARVAR_CHECK(in.good(), "cannot read {}", file.string());
  std::stringstream ss;
  ss << in.rdbuf();
  return parse_manifest(ss.str(), dir);
}

}  // namespace sparvar::pipeline
