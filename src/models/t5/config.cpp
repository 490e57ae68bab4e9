#include "models/t5/config.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "io/checkpoint.h"
#include "models/t5/keys.h"

namespace sparvar::t5 {

void T5Config::validate() const {
  SPARVAR_CHECK(vocab_size > 0 && d_model > 0 && d_kv > 0 && num_heads > 0 && d_ff > 0 && num_layers > 0,
                "T5 config: every size must be positive ({})", describe());
  SPARVAR_CHECK(num_buckets >= 4 && num_buckets % 2 == 0,
                "T5 config: relative_attention_num_buckets {} must be even and >= 4", num_buckets);
  // max_exact = num_buckets / 4 positions are exact; the log buckets need max_distance beyond that.
  SPARVAR_CHECK(max_distance > num_buckets / 4, "T5 config: relative_attention_max_distance {} must exceed {}",
                max_distance, num_buckets / 4);
  SPARVAR_CHECK(layer_norm_epsilon > 0, "T5 config: layer_norm_epsilon {} must be positive", layer_norm_epsilon);
}

std::string T5Config::describe() const {
  return fmt::format("vocab {}, d_model {}, heads {} x d_kv {}, d_ff {}, layers {}, buckets {}/{}", vocab_size,
                     d_model, num_heads, d_kv, d_ff, num_layers, num_buckets, max_distance);
}

std::vector<std::string> t5_preset_names() { return {"flan-t5-xl", "t5-tiny"}; }

T5Config t5_preset(const std::string& name) {
  T5Config c;
  if (name == "flan-t5-xl") return c;
  if (name == "t5-tiny") {
    c.vocab_size = 256, c.d_model = 128, c.d_kv = 32, c.num_heads = 4, c.d_ff = 256, c.num_layers = 2;
    return c;
  }
  fail("unknown T5 preset '{}' (known: {})", name, fmt::join(t5_preset_names(), ", "));
}

T5Config infer_t5_config(const io::Checkpoint& ckpt) {
  auto shape = [&](const std::string& key) { return ckpt.info(key).shape; };
  auto dim = [&](const std::string& key, size_t rank, size_t i) {
    const Shape s = shape(key);
    SPARVAR_CHECK(s.size() == rank, "T5 checkpoint {}: '{}' is {}, expected rank {}", ckpt.path(), key,
                  shape_string(s), rank);
    return static_cast<int>(s[i]);
  };
  T5Config c;
  const std::string emb = embedding_key(ckpt);
  c.vocab_size = dim(emb, 2, 0);
  c.d_model = dim(emb, 2, 1);
  const std::string bias = block_key(0, kRelativeBias);
  c.num_buckets = dim(bias, 2, 0);
  c.num_heads = dim(bias, 2, 1);
  const int inner = dim(block_key(0, kQ), 2, 0);
  SPARVAR_CHECK(inner % c.num_heads == 0, "T5 checkpoint {}: q projection has {} rows, not a multiple of {} heads",
                ckpt.path(), inner, c.num_heads);
  c.d_kv = inner / c.num_heads;
  SPARVAR_CHECK(ckpt.contains(block_key(0, kWi0)),
                "T5 checkpoint {}: no '{}': only gated-GELU encoders (Flan-T5, T5 v1.1) are supported{}", ckpt.path(),
                block_key(0, kWi0),
                ckpt.contains("encoder.block.0.layer.1.DenseReluDense.wi.weight") ? " (this is a ReLU T5 v1.0)" : "");
  c.d_ff = dim(block_key(0, kWi0), 2, 0);
  c.num_layers = 0;
  while (ckpt.contains(block_key(c.num_layers, kQ))) ++c.num_layers;
  c.validate();
  return c;
}

void apply_config_json(const std::filesystem::path& weights_path, T5Config& cfg) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::is_directory(weights_path) ? weights_path : weights_path.parent_path();
  const fs::path file = dir / "config.json";
  if (!fs::exists(file)) return;
  std::ifstream in(file);
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(in);
  } catch (const std::exception& e) {
    fail("T5 config {}: not valid JSON ({})", file.string(), e.what());
  }
  SPARVAR_CHECK(j.is_object(), "T5 config {}: not a JSON object", file.string());
  auto agree = [&](const char* field, int have) {
    if (!j.contains(field)) return;
    SPARVAR_CHECK(j[field].is_number_integer() && j[field].get<int>() == have,
                  "T5 config {}: {} = {} but the weights' shapes say {}", file.string(), field, j[field].dump(), have);
  };
  agree("vocab_size", cfg.vocab_size);
  agree("d_model", cfg.d_model);
  agree("d_kv", cfg.d_kv);
  agree("num_heads", cfg.num_heads);
  agree("d_ff", cfg.d_ff);
  agree("num_layers", cfg.num_layers);
  agree("relative_attention_num_buckets", cfg.num_buckets);
  if (j.contains("relative_attention_max_distance")) {
    SPARVAR_CHECK(j["relative_attention_max_distance"].is_number_integer(),
                  "T5 config {}: relative_attention_max_distance is not an integer", file.string());
    cfg.max_distance = j["relative_attention_max_distance"].get<int>();
  }
  if (j.contains("layer_norm_epsilon")) {
    SPARVAR_CHECK(j["layer_norm_epsilon"].is_number(), "T5 config {}: layer_norm_epsilon is not a number",
                  file.string());
    cfg.layer_norm_epsilon = j["layer_norm_epsilon"].get<float>();
  }
  if (j.contains("feed_forward_proj")) {
    const auto proj = j["feed_forward_proj"].is_string() ? j["feed_forward_proj"].get<std::string>() : "";
    SPARVAR_CHECK(proj == "gated-gelu", "T5 config {}: feed_forward_proj '{}' is not supported (only 'gated-gelu', "
                  "the Flan-T5 / T5 v1.1 FFN)", file.string(), proj);
  }
  cfg.validate();
}

}  // namespace sparvar::t5
