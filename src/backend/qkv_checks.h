// The checks of qkv_to_attention that do not depend on the backend (shapes, cache range, aliasing), shared by
// the CPU and CUDA entry points so both reject the same calls with the same messages. Each backend checks
// dtype and device itself, around these.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string_view>

#include "core/tensor.h"

namespace sparvar {

struct QkvDims {
  int64_t B, N, H, D, capacity;
};

// The dimensions from k_cache [B, H, capacity, D] and qkv [B, N, 3 * H * D]; D must be even (RoPE pairs).
inline QkvDims check_qkv_dims(const Tensor& qkv, const Tensor& k_cache, std::string_view op) {
  SPARVAR_CHECK(k_cache.ndim() == 4, "{}: k_cache must be [B, H, capacity, D], got {}", op,
                shape_string(k_cache.shape()));
  const int64_t B = k_cache.dim(0), H = k_cache.dim(1), capacity = k_cache.dim(2), D = k_cache.dim(3);
  SPARVAR_CHECK(qkv.ndim() == 3 && qkv.dim(0) == B && qkv.dim(2) == 3 * H * D,
                "{}: qkv {} must be [{}, N, {}] for the cache {} (3 x {} heads x {})", op, shape_string(qkv.shape()),
                B, 3 * H * D, shape_string(k_cache.shape()), H, D);
  const int64_t N = qkv.dim(1);
  SPARVAR_CHECK(D % 2 == 0, "{}: head dim {} must be even (RoPE pairs)", op, D);
  return {B, N, H, D, capacity};
}

// The N tokens fit the cache at offset, and no output overlaps an input or another output.
inline void check_qkv_targets(const Tensor& qkv, const Tensor* q_scale, const Tensor& cos, const Tensor& sin,
                              int64_t offset, const QkvDims& dims, const Tensor& q, const Tensor& k_cache,
                              const Tensor& v_cache, std::string_view op) {
  SPARVAR_CHECK(offset >= 0 && offset + dims.N <= dims.capacity, "{}: tokens [{}, {}) do not fit the cache's {} tokens",
                op, offset, offset + dims.N, dims.capacity);
  for (const Tensor* out : {&q, &k_cache, &v_cache}) {
    check_disjoint(qkv, *out, op, "qkv");
    check_disjoint(cos, *out, op, "cos");
    check_disjoint(sin, *out, op, "sin");
    if (q_scale) check_disjoint(*q_scale, *out, op, "q_scale");
  }
  check_disjoint(q, k_cache, op, "q");
  check_disjoint(q, v_cache, op, "q");
  check_disjoint(k_cache, v_cache, op, "k_cache");
}

}  // namespace sparvar
