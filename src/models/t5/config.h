// Shape of a T5 encoder (Flan-T5 / T5 v1.1: gated-GELU FFN, RMS norm, relative position buckets).
#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace sparvar::io {
class Checkpoint;
}

namespace sparvar::t5 {

struct T5Config {
  int vocab_size = 32128;
  int d_model = 2048;
  int d_kv = 64;
  int num_heads = 32;
  int d_ff = 5120;
  int num_layers = 24;
  int num_buckets = 32;           // relative_attention_num_buckets
  int max_distance = 128;         // relative_attention_max_distance
  float layer_norm_epsilon = 1e-6f;

  int inner_dim() const { return num_heads * d_kv; }
  void validate() const;
  std::string describe() const;
  bool operator==(const T5Config&) const = default;
};

// "flan-t5-xl" (Infinity's text encoder) and "t5-tiny" (tests). Throws listing the known names.
T5Config t5_preset(const std::string& name);
std::vector<std::string> t5_preset_names();

// Structural numbers from the checkpoint's shapes (vocab, d_model, heads, d_kv, d_ff, layers, buckets);
// max_distance and eps cannot be seen in shapes and keep their defaults (128, 1e-6) unless config.json says.
T5Config infer_t5_config(const io::Checkpoint& ckpt);

// transformers' config.json next to the weights (the folder itself, or the file's folder), if there is one.
// Overrides max_distance and eps and must agree with the shapes on everything else (error names the field).
// Only gated-GELU ('gated-gelu', dense_act_fn 'gelu_new') is accepted: plain-ReLU T5 v1.0 is not Flan-T5.
void apply_config_json(const std::filesystem::path& weights_path, T5Config& cfg);

}  // namespace sparvar::t5
