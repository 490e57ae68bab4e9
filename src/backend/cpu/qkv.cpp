// qkv_to_attention: Infinity's q/k/v from the fused projection to attention layout and the KV cache, with the
// arithmetic of permute + l2_normalize + rope (bit-identical to that composition: the normalised values are
// rounded to f32 before the rotation, as the separate ops store them). With row maps (QkvRowMap) the work runs
// over destination rows, each taking its source token's head vectors (or zeros for a padding row).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "backend/cpu/checks.h"
#include "backend/cpu/cpu_backend.h"
#include "backend/qkv_checks.h"

namespace sparvar::cpu {

namespace {
constexpr std::string_view kOp = "qkv_to_attention";

// Every entry a token of [0, N) or -1 (padding): the loops below index qkv and the tables with it.
void check_map_values(const Tensor* map, int64_t N, std::string_view arg) {
  if (!map) return;
  const int32_t* p = map->data_as<int32_t>();
  for (int64_t r = 0; r < map->numel(); ++r)
    SPARVAR_CHECK(p[r] >= -1 && p[r] < N, "{}: {}[{}] = {} is neither a token of [0, {}) nor -1 (padding)", kOp,
                  arg, r, p[r], N);
}

QkvDims check_qkv(const Tensor& qkv, const Tensor* q_scale, const Tensor& cos, const Tensor& sin, int64_t offset,
                  const Tensor& q, const Tensor& k_cache, const Tensor& v_cache, const QkvRowMap* rows) {
  check_f32(qkv, kOp, "qkv");
  check_f32(k_cache, kOp, "k_cache");
  const QkvDims dims = check_qkv_dims(qkv, k_cache, rows, Device::CPU, kOp);
  const int64_t B = dims.B, N = dims.N, H = dims.H, D = dims.D;
  check_f32_shape(v_cache, k_cache.shape(), kOp, "v_cache");
  check_f32_shape(q, {B, H, dims.q_rows, D}, kOp, "q");
  check_f32_shape(cos, {N, D / 2}, kOp, "cos");
  check_f32_shape(sin, {N, D / 2}, kOp, "sin");
  if (q_scale) check_f32_shape(*q_scale, {H}, kOp, "q_scale");
  check_qkv_targets(qkv, q_scale, cos, sin, offset, dims, q, k_cache, v_cache, rows, kOp);
  if (rows) {
    check_map_values(rows->q_src, N, "q_src");
    check_map_values(rows->kv_src, N, "kv_src");
  }
  return dims;
}

// out = rope(in * factor) for one head vector of token row c/s (the tables' row); `normed` is D floats of scratch.
void normalise_rotate(const float* in, double factor, const float* c, const float* s, int64_t D, float* normed,
                      float* out) {
  for (int64_t d = 0; d < D; ++d) normed[d] = static_cast<float>(in[d] * factor);
  for (int64_t i = 0; i < D / 2; ++i) {
    const float x0 = normed[2 * i], x1 = normed[2 * i + 1];
    out[2 * i] = c[i] * x0 - s[i] * x1;
    out[2 * i + 1] = s[i] * x0 + c[i] * x1;
  }
}

// l2_normalize's factor: scale / max(||in||, eps), in double as the op computes it.
double l2_factor(const float* in, int64_t D, double scale, float eps) {
  double sq = 0.0;
  for (int64_t d = 0; d < D; ++d) sq += static_cast<double>(in[d]) * in[d];
  return scale / std::max(std::sqrt(sq), static_cast<double>(eps));
}

// The pointers and sizes of one call.
struct QkvJob {
  QkvDims dims;
  const float *in, *scale, *cos, *sin;
  const int32_t *q_src, *kv_src;  // null: identity
  float eps;
  int64_t offset;
  float *q, *k, *v;

  // The source token of destination row r (-1: padding).
  static int64_t token(const int32_t* map, int64_t r) { return map ? map[r] : r; }
  // Head h of part `which` (0 q, 1 k, 2 v) of token t of batch row b.
  const float* head(int64_t b, int64_t t, int which, int64_t h) const {
    return in + ((b * dims.N + t) * 3 + which) * dims.H * dims.D + h * dims.D;
  }

  // q rows r of batch row b, every head.
  void q_row(int64_t b, int64_t r, float* normed) const {
    const int64_t H = dims.H, D = dims.D, t = token(q_src, r);
    for (int64_t h = 0; h < H; ++h) {
      float* out = q + ((b * H + h) * dims.q_rows + r) * D;
      if (t < 0) {
        std::fill(out, out + D, 0.0f);
        continue;
      }
      const float* x = head(b, t, 0, h);
      normalise_rotate(x, l2_factor(x, D, scale ? scale[h] : 1.0, eps), cos + t * (D / 2), sin + t * (D / 2), D,
                       normed, out);
    }
  }

  // Cache row offset + r of batch row b, k and v, every head.
  void cache_row(int64_t b, int64_t r, float* normed) const {
    const int64_t H = dims.H, D = dims.D, t = token(kv_src, r);
    for (int64_t h = 0; h < H; ++h) {
      const int64_t row = ((b * H + h) * dims.capacity + offset + r) * D;
      if (t < 0) {
        std::fill(k + row, k + row + D, 0.0f);
        std::fill(v + row, v + row + D, 0.0f);
        continue;
      }
      const float* x = head(b, t, 1, h);
      normalise_rotate(x, l2_factor(x, D, 1.0, eps), cos + t * (D / 2), sin + t * (D / 2), D, normed, k + row);
      std::memcpy(v + row, head(b, t, 2, h), sizeof(float) * static_cast<size_t>(D));
    }
  }
};
}  // namespace

void CpuBackend::qkv_to_attention(const Tensor& qkv, const Tensor* q_scale, const Tensor& cos, const Tensor& sin,
                                  float eps, int64_t offset, Tensor& q, Tensor& k_cache, Tensor& v_cache,
                                  const QkvRowMap* rows) {
  const QkvDims dims = check_qkv(qkv, q_scale, cos, sin, offset, q, k_cache, v_cache, rows);
  const int64_t B = dims.B, H = dims.H, D = dims.D;
  if (B * H * D == 0) return;
  const QkvJob job{dims,
                   qkv.data_as<float>(),
                   q_scale ? q_scale->data_as<float>() : nullptr,
                   cos.data_as<float>(),
                   sin.data_as<float>(),
                   rows && rows->q_src ? rows->q_src->data_as<int32_t>() : nullptr,
                   rows && rows->kv_src ? rows->kv_src->data_as<int32_t>() : nullptr,
                   eps,
                   offset,
                   q.data_as<float>(),
                   k_cache.data_as<float>(),
                   v_cache.data_as<float>()};
  // One task unit = one destination row of one batch row, every head: H vectors for q, 2H for the cache.
  auto run = [&](int64_t count, int64_t vectors, void (QkvJob::*row)(int64_t, int64_t, float*) const) {
    if (count == 0) return;
    pool_.parallel_for(0, B * count, std::max<int64_t>(1, 4096 / (vectors * D)), [&](int64_t lo, int64_t hi) {
      std::vector<float> normed(static_cast<size_t>(D));
      for (int64_t br = lo; br < hi; ++br) (job.*row)(br / count, br % count, normed.data());
    });
  };
  run(dims.q_rows, H, &QkvJob::q_row);
  run(dims.kv_rows, 2 * H, &QkvJob::cache_row);
}

}  // namespace sparvar::cpu
