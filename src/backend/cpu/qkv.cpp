// qkv_to_attention: Infinity's q/k/v from the fused projection to attention layout and the KV cache, with the
// arithmetic of permute + l2_normalize + rope (bit-identical to that composition: the normalised values are
// rounded to f32 before the rotation, as the separate ops store them).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "backend/cpu/checks.h"
#include "backend/cpu/cpu_backend.h"
#include "backend/qkv_checks.h"

namespace sparvar::cpu {

namespace {
QkvDims check_qkv(const Tensor& qkv, const Tensor* q_scale, const Tensor& cos, const Tensor& sin, int64_t offset,
                  const Tensor& q, const Tensor& k_cache, const Tensor& v_cache) {
  constexpr std::string_view op = "qkv_to_attention";
  check_f32(qkv, op, "qkv");
  check_f32(k_cache, op, "k_cache");
  const QkvDims dims = check_qkv_dims(qkv, k_cache, op);
  const int64_t B = dims.B, N = dims.N, H = dims.H, D = dims.D;
  check_f32_shape(v_cache, k_cache.shape(), op, "v_cache");
  check_f32_shape(q, {B, H, N, D}, op, "q");
  check_f32_shape(cos, {N, D / 2}, op, "cos");
  check_f32_shape(sin, {N, D / 2}, op, "sin");
  if (q_scale) check_f32_shape(*q_scale, {H}, op, "q_scale");
  check_qkv_targets(qkv, q_scale, cos, sin, offset, dims, q, k_cache, v_cache, op);
  return dims;
}
}  // namespace

void CpuBackend::qkv_to_attention(const Tensor& qkv, const Tensor* q_scale, const Tensor& cos, const Tensor& sin,
                                  float eps, int64_t offset, Tensor& q, Tensor& k_cache, Tensor& v_cache) {
  const QkvDims dims = check_qkv(qkv, q_scale, cos, sin, offset, q, k_cache, v_cache);
  const int64_t B = dims.B, N = dims.N, H = dims.H, D = dims.D, capacity = dims.capacity;
  if (B * N * H * D == 0) return;
  const int64_t half = D / 2;
  const float* pin = qkv.data_as<float>();
  const float* pscale = q_scale ? q_scale->data_as<float>() : nullptr;
  const float* pc = cos.data_as<float>();
  const float* ps = sin.data_as<float>();
  float* pq = q.data_as<float>();
  float* pk = k_cache.data_as<float>();
  float* pv = v_cache.data_as<float>();
  // One task unit = one token of one batch row: its 3H head vectors.
  pool_.parallel_for(0, B * N, std::max<int64_t>(1, 4096 / (3 * H * D)), [&](int64_t lo, int64_t hi) {
    std::vector<float> normed(static_cast<size_t>(D));
    for (int64_t bt = lo; bt < hi; ++bt) {
      const int64_t b = bt / N, t = bt % N;
      const float* c = pc + t * half;
      const float* s = ps + t * half;
      for (int64_t h = 0; h < H; ++h) {
        const int64_t q_row = ((b * H + h) * N + t) * D, cache_row = ((b * H + h) * capacity + offset + t) * D;
        for (int which = 0; which < 2; ++which) {  // q, then k
          const float* in = pin + (bt * 3 + which) * H * D + h * D;
          double sq = 0.0;
          for (int64_t d = 0; d < D; ++d) sq += static_cast<double>(in[d]) * in[d];
          const double scale = which == 0 && pscale ? pscale[h] : 1.0;
          const double factor = scale / std::max(std::sqrt(sq), static_cast<double>(eps));
          for (int64_t d = 0; d < D; ++d) normed[static_cast<size_t>(d)] = static_cast<float>(in[d] * factor);
          float* out = which == 0 ? pq + q_row : pk + cache_row;
          for (int64_t i = 0; i < half; ++i) {
            const float x0 = normed[static_cast<size_t>(2 * i)], x1 = normed[static_cast<size_t>(2 * i + 1)];
            out[2 * i] = c[i] * x0 - s[i] * x1;
            out[2 * i + 1] = s[i] * x0 + c[i] * x1;
          }
        }
        std::memcpy(pv + cache_row, pin + (bt * 3 + 2) * H * D + h * D, sizeof(float) * static_cast<size_t>(D));
      }
    }
  });
}

}  // namespace sparvar::cpu
