// Self-attention keys and values of every scale generated so far, per layer. Sized once per image from the
// schedule ([batch, heads, total_tokens, head_dim] per layer), filled scale by scale; attention reads the
// whole buffer with kv_lengths = tokens filled, so no copy or allocation happens inside the scale loop.
// The generator writes a scale's keys and values straight into the layer tensors (Backend::qkv_to_attention);
// write() is for callers that hold k and v in attention layout.
#pragma once

#include <vector>

#include "backend/backend.h"

namespace sparvar::infinity {

class KvCache {
 public:
  KvCache(Backend& backend, int layers, int64_t batch, int64_t heads, int64_t total_tokens, int64_t head_dim,
          DType dtype);

  // Writes k, v [batch, heads, n, head_dim] (the cache's dtype) at token offset `offset` of layer `layer`: one
  // strided copy each (Backend::copy_slice).
  void write(int layer, const Tensor& k, const Tensor& v, int64_t offset);
  const Tensor& keys(int layer) const { return k_.at(static_cast<size_t>(layer)); }
  const Tensor& values(int layer) const { return v_.at(static_cast<size_t>(layer)); }
  // The same tensors as outputs, for ops that fill a token range in place.
  Tensor& mutable_keys(int layer) { return k_.at(static_cast<size_t>(layer)); }
  Tensor& mutable_values(int layer) { return v_.at(static_cast<size_t>(layer)); }
  int64_t capacity() const { return total_; }
  size_t bytes() const;

 private:
  Backend& backend_;
  int64_t batch_, heads_, total_, head_dim_;
  std::vector<Tensor> k_, v_;
};

}  // namespace sparvar::infinity
