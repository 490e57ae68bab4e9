#include "models/infinity/weights.h"

#include <algorithm>
#include <cmath>
#include <set>

#include "core/error.h"
#include "io/checkpoint.h"

namespace sparvar::infinity {
namespace {

// Reads keys, checks shapes, remembers which keys were used.
class Loader {
 public:
  Loader(const io::Checkpoint& ckpt, Backend& backend, DType dtype) : ckpt_(ckpt), backend_(backend), dtype_(dtype) {}

  std::vector<float> host(const std::string& key, const Shape& shape) {
    used_.insert(key);
    return ckpt_.tensor(key, shape).to_floats();
  }
  // Optional key (zero_k_bias buffers): zeros when absent.
  std::vector<float> host_or_zeros(const std::string& key, const Shape& shape) {
    if (!ckpt_.contains(key)) return std::vector<float>(static_cast<size_t>(shape_numel(shape)), 0.0f);
    return host(key, shape);
  }
  // The checkpoint's bytes go to the device as they are (bf16 files to a bf16 model: one copy, no host
  // conversion); only parameters that need host arithmetic (concatenations, exp of scales) use host().
  Tensor device(const std::string& key, const Shape& shape) {
    used_.insert(key);
    return backend_.upload(ckpt_.tensor(key, shape), dtype_);
  }
  Tensor upload(const std::vector<float>& values, const Shape& shape) {
    return backend_.upload(Tensor::from_floats(shape, values), dtype_);
  }

  void check_all_used() const {
    std::vector<std::string> unknown;
    for (const auto& t : ckpt_.tensors())
      if (!used_.count(t.name) && !t.name.ends_with("zero_k_bias")) unknown.push_back(t.name);
    if (unknown.empty()) return;
    const size_t shown = std::min<size_t>(unknown.size(), 5);
    fail("checkpoint {} has {} key(s) the Infinity model does not use, e.g. {}{}", ckpt_.path(),
         unknown.size(), fmt::join(unknown.begin(), unknown.begin() + static_cast<std::ptrdiff_t>(shown), ", "),
         unknown.size() > shown ? ", ..." : "");
  }

 private:
  const io::Checkpoint& ckpt_;
  Backend& backend_;
  DType dtype_;
  std::set<std::string> used_;
};

std::vector<float> concat(std::initializer_list<std::vector<float>> parts) {
  std::vector<float> out;
  for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

BlockWeights load_block(Loader& L, const InfinityConfig& c, int index) {
  const std::string p = c.block_prefix(index);
  const int64_t C = c.embed_dim, H = c.num_heads, F = c.ffn_hidden;
  BlockWeights b;
  b.ada_gss = L.host(p + "ada_gss", {1, 1, 6, C});

  b.qkv_w = L.device(p + "sa.mat_qkv.weight", {3 * C, C});
  b.qkv_b = L.upload(concat({L.host(p + "sa.q_bias", {C}), L.host_or_zeros(p + "sa.zero_k_bias", {C}),
                             L.host(p + "sa.v_bias", {C})}),
                     {3 * C});
  // q's learned temperature: exp(min(scale_mul, log 100)), one per head.
  std::vector<float> mul = L.host(p + "sa.scale_mul_1H11", {1, H, 1, 1});
  for (float& m : mul) m = std::exp(std::min(m, static_cast<float>(std::log(100.0))));
  b.q_head_scale = L.upload(mul, {H});
  b.sa_proj_w = L.device(p + "sa.proj.weight", {C, C});
  b.sa_proj_b = L.device(p + "sa.proj.bias", {C});

  b.ca_norm_w = L.device(p + "ca_norm.weight", {C});
  b.ca_norm_b = L.device(p + "ca_norm.bias", {C});
  b.ca_q_w = L.device(p + "ca.mat_q.weight", {C, C});
  b.ca_q_b = L.device(p + "ca.mat_q.bias", {C});
  b.ca_kv_w = L.device(p + "ca.mat_kv.weight", {2 * C, C});
  b.ca_kv_b = L.upload(concat({L.host_or_zeros(p + "ca.zero_k_bias", {C}), L.host(p + "ca.v_bias", {C})}), {2 * C});
  b.ca_proj_w = L.device(p + "ca.proj.weight", {C, C});
  b.ca_proj_b = L.device(p + "ca.proj.bias", {C});

  b.fc1_w = L.device(p + "ffn.fc1.weight", {F, C});
  b.fc1_b = L.device(p + "ffn.fc1.bias", {F});
  b.fc2_w = L.device(p + "ffn.fc2.weight", {C, F});
  b.fc2_b = L.device(p + "ffn.fc2.bias", {C});
  return b;
}

}  // namespace

DType compute_dtype(const Backend& backend) { return backend.device() == Device::CPU ? DType::F32 : DType::BF16; }

InfinityWeights load_weights(const io::Checkpoint& ckpt, const InfinityConfig& config, Backend& backend) {
  validate(config);
  InfinityWeights w;
  w.config = config;
  w.dtype = compute_dtype(backend);
  Loader L(ckpt, backend, w.dtype);
  const int64_t C = config.embed_dim, D = config.embed_dim, Ct5 = config.text_channels;
  const int64_t Hp = config.pool_heads, dv = config.d_vae();

  w.cfg_uncond = L.host("cfg_uncond", {config.text_maxlen, Ct5});
  w.text_norm_w = L.device("text_norm.weight", {Ct5});
  w.pool_q = L.host("text_proj_for_sos.ca.mat_q", {1, Hp, D / Hp});
  w.pool_kv_w = L.device("text_proj_for_sos.ca.mat_kv.weight", {2 * D, Ct5});
  w.pool_kv_b = L.upload(concat({L.host_or_zeros("text_proj_for_sos.ca.zero_k_bias", {D}),
                                 L.host("text_proj_for_sos.ca.v_bias", {D})}),
                         {2 * D});
  w.pool_proj_w = L.device("text_proj_for_sos.ca.proj.weight", {D, D});
  w.pool_proj_b = L.device("text_proj_for_sos.ca.proj.bias", {D});
  w.text_ca0_w = L.device("text_proj_for_ca.0.weight", {D, Ct5});
  w.text_ca0_b = L.device("text_proj_for_ca.0.bias", {D});
  w.text_ca2_w = L.device("text_proj_for_ca.2.weight", {D, D});
  w.text_ca2_b = L.device("text_proj_for_ca.2.bias", {D});

  w.pos_start = L.host("pos_start", {1, 1, C});
  w.lvl_embed = L.device("lvl_embed.weight", {config.num_lvl, C});
  w.word_embed_w = L.device("word_embed.weight", {C, dv});
  w.word_embed_b = L.device("word_embed.bias", {C});
  w.shared_ada_w = L.device("shared_ada_lin.1.weight", {6 * C, D});
  w.shared_ada_b = L.device("shared_ada_lin.1.bias", {6 * C});
  for (int i = 0; i < config.depth; ++i) w.blocks.push_back(load_block(L, config, i));
  w.head_nm_w = L.device("head_nm.ada_lin.1.weight", {2 * C, D});
  w.head_nm_b = L.device("head_nm.ada_lin.1.bias", {2 * C});
  w.head_w = L.device("head.weight", {2 * dv, C});
  w.head_b = L.device("head.bias", {2 * dv});
  L.check_all_used();
  return w;
}

}  // namespace sparvar::infinity
