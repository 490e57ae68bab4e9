// The checks of qkv_to_attention that do not depend on the backend (shapes, the row maps' shapes, cache range,
// aliasing), shared by the CPU and CUDA entry points so both reject the same calls with the same messages. Each
// backend checks the float tensors' dtype and device itself, around these, and the CPU backend the maps' values.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string_view>

#include "backend/backend.h"
#include "core/tensor.h"

namespace sparvar {

struct QkvDims {
  int64_t B, N, H, D, capacity;
  int64_t q_rows, kv_rows;  // q's rows and the cache rows written from offset: N, or the maps' lengths
};

// One map of QkvRowMap: a 1-D I32 tensor on `device`. Returns its length, or `identity_rows` without a map.
inline int64_t check_qkv_map(const Tensor* map, Device device, int64_t identity_rows, std::string_view op,
                             std::string_view arg) {
  if (!map) return identity_rows;
  SPARVAR_CHECK(map->defined(), "{}: {} is missing (undefined tensor)", op, arg);
  SPARVAR_CHECK(map->dtype() == DType::I32 && map->ndim() == 1 && map->device() == device,
                "{}: {} {} must be a 1-D i32 tensor on the {} backend (one source token per destination row)", op,
                arg, map->describe(), device_name(device));
  return map->dim(0);
}

// The dimensions from k_cache [B, H, capacity, D] and qkv [B, N, 3 * H * D]; D must be even (RoPE pairs). The
// maps of `rows` (may be null), on `device`, give q_rows and kv_rows.
inline QkvDims check_qkv_dims(const Tensor& qkv, const Tensor& k_cache, const QkvRowMap* rows, Device device,
                              std::string_view op) {
  SPARVAR_CHECK(k_cache.ndim() == 4, "{}: k_cache must be [B, H, capacity, D], got {}", op,
                shape_string(k_cache.shape()));
  const int64_t B = k_cache.dim(0), H = k_cache.dim(1), capacity = k_cache.dim(2), D = k_cache.dim(3);
  SPARVAR_CHECK(qkv.ndim() == 3 && qkv.dim(0) == B && qkv.dim(2) == 3 * H * D,
                "{}: qkv {} must be [{}, N, {}] for the cache {} (3 x {} heads x {})", op, shape_string(qkv.shape()),
                B, 3 * H * D, shape_string(k_cache.shape()), H, D);
  const int64_t N = qkv.dim(1);
  SPARVAR_CHECK(D % 2 == 0, "{}: head dim {} must be even (RoPE pairs)", op, D);
  const int64_t q_rows = check_qkv_map(rows ? rows->q_src : nullptr, device, N, op, "q_src");
  const int64_t kv_rows = check_qkv_map(rows ? rows->kv_src : nullptr, device, N, op, "kv_src");
  return {B, N, H, D, capacity, q_rows, kv_rows};
}

// The cache rows fit at offset, and no output overlaps an input (the maps included) or another output.
inline void check_qkv_targets(const Tensor& qkv, const Tensor* q_scale, const Tensor& cos, const Tensor& sin,
                              int64_t offset, const QkvDims& dims, const Tensor& q, const Tensor& k_cache,
                              const Tensor& v_cache, const QkvRowMap* rows, std::string_view op) {
  SPARVAR_CHECK(offset >= 0 && offset + dims.kv_rows <= dims.capacity,
                "{}: cache rows [{}, {}) do not fit the cache's {} rows", op, offset, offset + dims.kv_rows,
                dims.capacity);
  for (const Tensor* out : {&q, &k_cache, &v_cache}) {
    check_disjoint(qkv, *out, op, "qkv");
    check_disjoint(cos, *out, op, "cos");
    check_disjoint(sin, *out, op, "sin");
    if (q_scale) check_disjoint(*q_scale, *out, op, "q_scale");
    if (rows && rows->q_src) check_disjoint(*rows->q_src, *out, op, "q_src");
    if (rows && rows->kv_src) check_disjoint(*rows->kv_src, *out, op, "kv_src");
  }
  check_disjoint(q, k_cache, op, "q");
  check_disjoint(q, v_cache, op, "q");
  check_disjoint(k_cache, v_cache, op, "k_cache");
}

}  // namespace sparvar
