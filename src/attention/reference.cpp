#include "attention/reference.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/error.h"

namespace sparvar {

void reference_block_sparse_attention(const Tensor& q, const Tensor& k, const Tensor& v,
                                      const BlockSparseLayout& layout, float softmax_scale, Tensor& out,
                                      Tensor* block_mass) {
  validate(layout);
  const BlockPattern& p = layout.pattern;
  SPARVAR_CHECK(q.ndim() == 4, "reference attention: q must be [B, H, Nq, D], got {}", q.describe());
  const int64_t B = q.dim(0), H = q.dim(1), D = q.dim(3);
  SPARVAR_CHECK(H == p.heads, "reference attention: q has {} heads, the pattern {}", H, p.heads);
  expect_shape(q, {B, H, layout.q_slots(), D}, "reference attention q");
  expect_shape(k, {B, H, layout.k_slots(), D}, "reference attention k");
  expect_shape(v, {B, H, layout.k_slots(), D}, "reference attention v");
  expect_shape(out, {B, H, layout.q_slots(), D}, "reference attention out");
  for (const Tensor* t : {&q, &k, &v, const_cast<const Tensor*>(&out)}) {
    expect_dtype(*t, DType::F32, "reference attention tensor");
    SPARVAR_CHECK(t->device() == Device::CPU, "reference attention: {} is not on the CPU", t->describe());
  }
  float* mass = nullptr;
  if (block_mass) {
    expect_shape(*block_mass, {B, H, p.num_q_blocks, p.num_k_blocks}, "reference attention block_mass");
    expect_dtype(*block_mass, DType::F32, "reference attention block_mass");
    mass = block_mass->data_as<float>();
    std::fill(mass, mass + block_mass->numel(), 0.0f);
  }

  const int Bq = layout.q_block_size, Bk = layout.k_block_size;
  const float* qd = q.data_as<float>();
  const float* kd = k.data_as<float>();
  const float* vd = v.data_as<float>();
  float* od = out.data_as<float>();
  std::vector<double> logits, acc(D), block_share;
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t h = 0; h < H; ++h) {
      const int64_t qk_base = (b * H + h);
      const float* Q = qd + qk_base * layout.q_slots() * D;
      const float* K = kd + qk_base * layout.k_slots() * D;
      const float* V = vd + qk_base * layout.k_slots() * D;
      float* O = od + qk_base * layout.q_slots() * D;
      for (int qb = 0; qb < p.num_q_blocks; ++qb) {
        const auto row = p.row(static_cast<int>(h), qb);
        block_share.assign(row.size(), 0.0);
        for (int i = 0; i < Bq; ++i) {
          float* o = O + (int64_t{qb} * Bq + i) * D;
          if (i >= layout.q_block_valid[qb]) {
            std::fill(o, o + D, 0.0f);
            continue;
          }
          const float* qv = Q + (int64_t{qb} * Bq + i) * D;
          logits.clear();
          double mx = -INFINITY;
          for (int32_t kb : row) {
            for (int j = 0; j < layout.k_block_valid[kb]; ++j) {
              const float* kv = K + (int64_t{kb} * Bk + j) * D;
              double s = 0;
              for (int64_t d = 0; d < D; ++d) s += double(qv[d]) * kv[d];
              s *= softmax_scale;
              logits.push_back(s);
              mx = std::max(mx, s);
            }
          }
          double sum = 0;
          for (double& l : logits) sum += (l = std::exp(l - mx));
          std::fill(acc.begin(), acc.end(), 0.0);
          size_t n = 0;
          for (size_t r = 0; r < row.size(); ++r) {
            const int32_t kb = row[r];
            double share = 0;
            for (int j = 0; j < layout.k_block_valid[kb]; ++j, ++n) {
              const double w = logits[n] / sum;
              share += w;
              const float* vv = V + (int64_t{kb} * Bk + j) * D;
              for (int64_t d = 0; d < D; ++d) acc[d] += w * vv[d];
            }
            block_share[r] += share;
          }
          for (int64_t d = 0; d < D; ++d) o[d] = static_cast<float>(acc[d]);
        }
        if (mass) {
          float* mrow = mass + ((qk_base * p.num_q_blocks) + qb) * p.num_k_blocks;
          for (size_t r = 0; r < row.size(); ++r)
            mrow[row[r]] = static_cast<float>(block_share[r] / layout.q_block_valid[qb]);
        }
      }
    }
  }
}

}  // namespace sparvar
