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

Tensor KvCache::row_view(const Tensor& cache, int64_t bh, int64_t offset, int64_t n) const {
  const size_t elem = dtype_size(cache.dtype());
  const size_t start = static_cast<size_t>((bh * total_ + offset) * head_dim_) * elem;
  const size_t base = static_cast<size_t>(static_cast<const char*>(cache.data()) -
                                          static_cast<const char*>(cache.storage()->data));
  return Tensor(cache.storage(), base + start, {n, head_dim_}, cache.dtype());
}

void KvCache::write(int layer, const Tensor& k, const Tensor& v, int64_t offset) {
  SPARVAR_CHECK(layer >= 0 && layer < static_cast<int>(k_.size()), "KV cache: layer {} of {}", layer, k_.size());
  const Shape& s = k.shape();
  SPARVAR_CHECK(s.size() == 4 && s[0] == batch_ && s[1] == heads_ && s[3] == head_dim_ && v.shape() == s,
                "KV cache: k {} / v {} do not match the cache [{}, {}, *, {}]", k.describe(), v.describe(), batch_,
                heads_, head_dim_);
  const int64_t n = s[2];
  SPARVAR_CHECK(offset >= 0 && offset + n <= total_, "KV cache: tokens [{}, {}) exceed its {} tokens", offset,
                offset + n, total_);
  // One contiguous [n, head_dim] run per (batch, head).
  for (int64_t bh = 0; bh < batch_ * heads_; ++bh) {
    const size_t src_off = static_cast<size_t>(bh * n * head_dim_) * dtype_size(k.dtype());
    const size_t kbase = static_cast<size_t>(static_cast<const char*>(k.data()) - static_cast<const char*>(k.storage()->data));
    const size_t vbase = static_cast<size_t>(static_cast<const char*>(v.data()) - static_cast<const char*>(v.storage()->data));
    Tensor kd = row_view(k_[static_cast<size_t>(layer)], bh, offset, n);
    Tensor vd = row_view(v_[static_cast<size_t>(layer)], bh, offset, n);
    backend_.copy(Tensor(k.storage(), kbase + src_off, {n, head_dim_}, k.dtype()), kd);
    backend_.copy(Tensor(v.storage(), vbase + src_off, {n, head_dim_}, v.dtype()), vd);
  }
}

size_t KvCache::bytes() const {
  size_t total = 0;
  for (const auto& t : k_) total += t.nbytes();
  for (const auto& t : v_) total += t.nbytes();
  return total;
}

}  // namespace sparvar::infinity
