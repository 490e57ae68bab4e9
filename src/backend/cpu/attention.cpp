// Dense attention: per (batch, head), blocks of query rows; S = scale * Q K^T and O = P V by cblas_sgemm,
// the masked softmax exactly in fp32 (row max subtracted) on the thread pool. Both GEMMs stop at the last key
// any row of the block can see (its kv length, its mask end): keys past it are never read, so they may hold
// anything, NaN included (the KV cache's unfilled tail, padded text). Within that span, keys a row cannot see
// get weight exactly 0, and every such key is one another row sees, so it holds a real value.
#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "backend/cpu/checks.h"
#include "backend/cpu/cpu_backend.h"

namespace sparvar::cpu {

namespace {
constexpr int64_t kQueryBlock = 256;

// Validates the mask and kv lengths against the shapes; returns, per query row, the end of its visible keys
// under the scale mask (Nk when there is no mask).
std::vector<int64_t> visible_key_ends(const AttentionParams& params, int64_t B, int64_t Nq, int64_t Nk) {
  const ScaleMask& mask = params.mask;
  std::vector<int64_t> k_end(static_cast<size_t>(Nq), Nk);
  SPARVAR_CHECK(mask.q_ends.size() == mask.k_ends.size(),
                "attention: mask has {} q_ends but {} k_ends", mask.q_ends.size(), mask.k_ends.size());
  if (!mask.empty()) {
    int64_t q_begin = 0;
    for (size_t s = 0; s < mask.q_ends.size(); ++s) {
      const int64_t q_end = mask.q_ends[s], k = mask.k_ends[s];
      SPARVAR_CHECK(q_end >= q_begin && q_end <= Nq,
                    "attention: mask q_ends[{}] = {} must be non-decreasing and within Nq = {}", s, q_end, Nq);
      SPARVAR_CHECK(k >= 0 && k <= Nk, "attention: mask k_ends[{}] = {} is outside [0, Nk = {}]", s, k, Nk);
      SPARVAR_CHECK(q_end == q_begin || k > 0, "attention: query rows [{}, {}) of mask scale {} see no key", q_begin,
                    q_end, s);
      std::fill(k_end.begin() + q_begin, k_end.begin() + q_end, k);
      q_begin = q_end;
    }
    SPARVAR_CHECK(q_begin == Nq, "attention: mask q_ends ends at {} but there are Nq = {} query rows", q_begin, Nq);
  }
  if (!params.kv_lengths.empty()) {
    SPARVAR_CHECK(static_cast<int64_t>(params.kv_lengths.size()) == B,
                  "attention: kv_lengths has {} entries for batch size {}", params.kv_lengths.size(), B);
    for (size_t b = 0; b < params.kv_lengths.size(); ++b)
      SPARVAR_CHECK(params.kv_lengths[b] >= 1 && params.kv_lengths[b] <= Nk,
                    "attention: kv_lengths[{}] = {} is outside [1, Nk = {}]", b, params.kv_lengths[b], Nk);
  }
  return k_end;
}
}  // namespace

void CpuBackend::attention(const Tensor& q, const Tensor& k, const Tensor& v, const AttentionParams& params,
                           Tensor& out) {
  constexpr std::string_view op = "attention";
  check_f32(q, op, "q");
  check_f32(k, op, "k");
  check_f32(v, op, "v");
  if (params.q_tokens_major || params.out_tokens_major) {
    // The reference works head-major: token-major q / out go through permutes.
    SPARVAR_CHECK(q.ndim() == 4, "attention: q must be {}, got {}",
                  params.q_tokens_major ? "[B, Nq, H, D]" : "[B, H, Nq, D]", shape_string(q.shape()));
    const int64_t B = q.dim(0), H = q.dim(params.q_tokens_major ? 2 : 1), Nq = q.dim(params.q_tokens_major ? 1 : 2),
                  D = q.dim(3);
    if (params.out_tokens_major) check_output(out, {B, Nq, H, D}, op);
    check_disjoint(q, out, op, "q");
    check_disjoint(k, out, op, "k");
    check_disjoint(v, out, op, "v");
    AttentionParams head_major = params;
    head_major.q_tokens_major = head_major.out_tokens_major = false;
    Tensor qh = q;
    if (params.q_tokens_major) {
      qh = empty({B, H, Nq, D}, DType::F32);
      permute(q, {0, 2, 1, 3}, qh);
    }
    Tensor oh = params.out_tokens_major ? empty({B, H, Nq, D}, DType::F32) : out;
    attention(qh, k, v, head_major, oh);
    if (params.out_tokens_major) permute(oh, {0, 2, 1, 3}, out);
    return;
  }
  SPARVAR_CHECK(q.ndim() == 4, "attention: q must be [B, H, Nq, D], got {}", shape_string(q.shape()));
  const int64_t B = q.dim(0), H = q.dim(1), Nq = q.dim(2), D = q.dim(3);
  SPARVAR_CHECK(k.ndim() == 4 && k.dim(0) == B && k.dim(1) == H && k.dim(3) == D,
                "attention: k {} does not match q {} (expected [{},{},Nk,{}])", shape_string(k.shape()),
                shape_string(q.shape()), B, H, D);
  const int64_t Nk = k.dim(2);
  SPARVAR_CHECK(v.shape() == k.shape(), "attention: v {} does not match k {}", shape_string(v.shape()),
                shape_string(k.shape()));
  check_output(out, q.shape(), op);
  check_disjoint(q, out, op, "q");
  check_disjoint(k, out, op, "k");
  check_disjoint(v, out, op, "v");
  SPARVAR_CHECK(Nq == 0 || Nk > 0, "attention: q {} has query rows but k {} has no keys", shape_string(q.shape()),
                shape_string(k.shape()));
  const std::vector<int64_t> mask_end = visible_key_ends(params, B, Nq, Nk);
  if (out.numel() == 0) return;
  if (D == 0) return;  // nothing to write

  const float* pq = q.data_as<float>();
  const float* pk = k.data_as<float>();
  const float* pv = v.data_as<float>();
  float* po = out.data_as<float>();
  const int64_t rows_max = std::min(kQueryBlock, Nq);
  std::vector<float> scores(static_cast<size_t>(rows_max * Nk));
  for (int64_t b = 0; b < B; ++b) {
    const int64_t kv_len = params.kv_lengths.empty() ? Nk : params.kv_lengths[static_cast<size_t>(b)];
    for (int64_t h = 0; h < H; ++h) {
      const int64_t head = b * H + h;
      const float* qh = pq + head * Nq * D;
      const float* kh = pk + head * Nk * D;
      const float* vh = pv + head * Nk * D;
      float* oh = po + head * Nq * D;
      for (int64_t r0 = 0; r0 < Nq; r0 += kQueryBlock) {
        const int64_t rows = std::min(kQueryBlock, Nq - r0);
        // Keys [0, cols) are visible to some row of this block; none past them is read (see the top).
        const int64_t cols = std::min(
            kv_len, *std::max_element(mask_end.begin() + r0, mask_end.begin() + r0 + rows));  // >= 1, validated
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(rows), static_cast<int>(cols),
                    static_cast<int>(D), params.softmax_scale, qh + r0 * D, static_cast<int>(D), kh,
                    static_cast<int>(D), 0.0f, scores.data(), static_cast<int>(cols));
        pool_.parallel_for(0, rows, std::max<int64_t>(1, 8192 / cols), [&](int64_t lo, int64_t hi) {
          for (int64_t r = lo; r < hi; ++r) {
            float* s = scores.data() + r * cols;
            const int64_t visible = std::min(mask_end[static_cast<size_t>(r0 + r)], kv_len);  // >= 1, validated
            const float mx = *std::max_element(s, s + visible);
            float sum = 0.0f;
            for (int64_t j = 0; j < visible; ++j) {
              s[j] = std::exp(s[j] - mx);
              sum += s[j];
            }
            const float inv = 1.0f / sum;
            for (int64_t j = 0; j < visible; ++j) s[j] *= inv;
            std::fill(s + visible, s + cols, 0.0f);
          }
        });
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(rows), static_cast<int>(D),
                    static_cast<int>(cols), 1.0f, scores.data(), static_cast<int>(cols), vh, static_cast<int>(D),
                    0.0f, oh + r0 * D, static_cast<int>(D));
      }
    }
  }
}

}  // namespace sparvar::cpu
