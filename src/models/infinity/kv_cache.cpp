#include "models/infinity/kv_cache.h"

#include "core/error.h"

namespace sparvar::infinity {

KvCache::KvCache(Backend& backend, int layers, int64_t batch, int64_t heads, int64_t total_tokens, int64_t head_dim,
                 DType dtype)
    : backend_(backend), batch_(batch), heads_(heads), total_(total_tokens), head_dim_(head_dim) {
  for (int l = 0; l < layers; ++l) {
    k_.push_back(backend.empty({batch, heads, total_tokens, head_dim}, dtype));
    v_.push_back(backend.empty({batch, heads, total_tokens, head_dim}, dtype));
  }
}

void KvCache::write(int layer, const Tensor& k, const Tensor& v, int64_t offset) {
  SPARVAR_CHECK(layer >= 0 && layer < static_cast<int>(k_.size()), "KV cache: layer {} of {}", layer, k_.size());
  const Shape& s = k.shape();
  SPARVAR_CHECK(s.size() == 4 && s[0] == batch_ && s[1] == heads_ && s[3] == head_dim_ && v.shape() == s,
                "KV cache: k {} / v {} do not match the cache [{}, {}, *, {}]", k.describe(), v.describe(), batch_,
                heads_, head_dim_);
  SPARVAR_CHECK(offset >= 0 && offset + s[2] <= total_, "KV cache: tokens [{}, {}) exceed its {} tokens", offset,
                offset + s[2], total_);
  backend_.copy_slice(k, k_[static_cast<size_t>(layer)], 2, offset);
  backend_.copy_slice(v, v_[static_cast<size_t>(layer)], 2, offset);
}

size_t KvCache::bytes() const {
  size_t total = 0;
  for (const auto& t : k_) total += t.nbytes();
  for (const auto& t : v_) total += t.nbytes();
  return total;
}

}  // namespace sparvar::infinity
