#include "attention/cpu_block_sparse.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/error.h"

namespace sparvar {
namespace {

// Per-thread buffers, grown to the largest block seen and reused across calls (no allocation per block).
struct Scratch {
  std::vector<float> k_t;       // [D, kv]: the key block transposed, so the score loop runs along keys
  std::vector<float> scores;    // [qv, kv]
  std::vector<float> q_scaled;  // [qv, D]
  std::vector<float> acc;       // [qv, D]
  std::vector<float> row_max, row_sum;      // [qv]
  std::vector<float> blk_ref, blk_sum;      // [listed, qv]: for block mass (max used, sum at that max)
};

Scratch& thread_scratch() {
  thread_local Scratch s;
  return s;
}

struct Job {
  const float *q, *k, *v;
  float *out, *mass;
  const BlockSparseLayout* layout;
  int64_t heads, dim;
  float scale;
};

// One (batch, head, query block): online softmax over the listed key blocks.
void attend_block(const Job& job, int64_t bh, int qb) {
  const BlockSparseLayout& L = *job.layout;
  const BlockPattern& p = L.pattern;
  const int64_t D = job.dim, Bq = L.q_block_size, Bk = L.k_block_size;
  const int h = static_cast<int>(bh % job.heads);
  const int qv = L.q_block_valid[static_cast<size_t>(qb)];
  const float* Q = job.q + (bh * L.q_slots() + qb * Bq) * D;
  const float* K = job.k + bh * L.k_slots() * D;
  const float* V = job.v + bh * L.k_slots() * D;
  float* O = job.out + (bh * L.q_slots() + qb * Bq) * D;
  const auto row = p.row(h, qb);

  Scratch& s = thread_scratch();
  s.k_t.resize(static_cast<size_t>(D * Bk));
  s.scores.resize(static_cast<size_t>(Bq * Bk));
  s.q_scaled.resize(static_cast<size_t>(Bq * D));
  s.acc.assign(static_cast<size_t>(qv * D), 0.0f);
  s.row_max.assign(static_cast<size_t>(qv), -INFINITY);
  s.row_sum.assign(static_cast<size_t>(qv), 0.0f);
  if (job.mass) {
    s.blk_ref.resize(row.size() * static_cast<size_t>(qv));
    s.blk_sum.resize(row.size() * static_cast<size_t>(qv));
  }
  for (int64_t i = 0; i < qv * D; ++i) s.q_scaled[static_cast<size_t>(i)] = Q[i] * job.scale;

  for (size_t e = 0; e < row.size(); ++e) {
    const int kb = row[e];
    const int kv = L.k_block_valid[static_cast<size_t>(kb)];
    const float* Kb = K + int64_t{kb} * Bk * D;
    const float* Vb = V + int64_t{kb} * Bk * D;
    float* kt = s.k_t.data();
    for (int j = 0; j < kv; ++j)
      for (int64_t d = 0; d < D; ++d) kt[d * kv + j] = Kb[j * D + d];
    for (int i = 0; i < qv; ++i) {
      float* sc = s.scores.data() + int64_t{i} * kv;
      std::fill(sc, sc + kv, 0.0f);
      const float* qi = s.q_scaled.data() + i * D;
      for (int64_t d = 0; d < D; ++d) {
        const float qd = qi[d];
        const float* kd = kt + d * kv;
        for (int j = 0; j < kv; ++j) sc[j] += qd * kd[j];
      }
      float mb = -INFINITY;
      for (int j = 0; j < kv; ++j) mb = std::max(mb, sc[j]);
      const float m_old = s.row_max[static_cast<size_t>(i)];
      const float m_new = std::max(m_old, mb);
      const float corr = m_old == -INFINITY ? 0.0f : std::exp(m_old - m_new);
      float sum = 0;
      for (int j = 0; j < kv; ++j) {
        sc[j] = std::exp(sc[j] - m_new);
        sum += sc[j];
      }
      s.row_max[static_cast<size_t>(i)] = m_new;
      s.row_sum[static_cast<size_t>(i)] = s.row_sum[static_cast<size_t>(i)] * corr + sum;
      if (job.mass) {
        s.blk_ref[e * static_cast<size_t>(qv) + static_cast<size_t>(i)] = m_new;
        s.blk_sum[e * static_cast<size_t>(qv) + static_cast<size_t>(i)] = sum;
      }
      float* a = s.acc.data() + i * D;
      if (corr != 1.0f)
        for (int64_t d = 0; d < D; ++d) a[d] *= corr;
      for (int j = 0; j < kv; ++j) {
        const float pj = sc[j];
        const float* vj = Vb + j * D;
        for (int64_t d = 0; d < D; ++d) a[d] += pj * vj[d];
      }
    }
  }

  for (int i = 0; i < qv; ++i) {
    const float inv = 1.0f / s.row_sum[static_cast<size_t>(i)];
    for (int64_t d = 0; d < D; ++d) O[i * D + d] = s.acc[static_cast<size_t>(i * D + d)] * inv;
  }
  std::fill(O + qv * D, O + Bq * D, 0.0f);

  if (job.mass) {
    float* m = job.mass + (bh * p.num_q_blocks + qb) * int64_t{p.num_k_blocks};
    std::fill(m, m + p.num_k_blocks, 0.0f);
    for (size_t e = 0; e < row.size(); ++e) {
      double share = 0;
      for (int i = 0; i < qv; ++i) {
        const size_t at = e * static_cast<size_t>(qv) + static_cast<size_t>(i);
        share += double(s.blk_sum[at]) * std::exp(double(s.blk_ref[at]) - s.row_max[static_cast<size_t>(i)]) /
                 s.row_sum[static_cast<size_t>(i)];
      }
      m[row[e]] = static_cast<float>(share / qv);
    }
  }
}

}  // namespace

void cpu_block_sparse_attention(const Tensor& q, const Tensor& k, const Tensor& v, const BlockSparseLayout& layout,
                                float softmax_scale, Tensor& out, Tensor* block_mass, ThreadPool* pool) {
  const BlockPattern& p = layout.pattern;
  SPARVAR_CHECK(q.ndim() == 4, "cpu block-sparse attention: q must be [B, H, Nq, D], got {}", q.describe());
  const int64_t B = q.dim(0), H = q.dim(1), D = q.dim(3);
  SPARVAR_CHECK(H == p.heads, "cpu block-sparse attention: q has {} heads, the pattern {}", H, p.heads);
  SPARVAR_CHECK(static_cast<int64_t>(layout.q_block_valid.size()) == p.num_q_blocks &&
                    static_cast<int64_t>(layout.k_block_valid.size()) == p.num_k_blocks &&
                    static_cast<int64_t>(p.row_offsets.size()) == p.num_rows() + 1,
                "cpu block-sparse attention: layout geometry does not match its pattern (build it with "
                "make_block_sparse_layout)");
  expect_shape(q, {B, H, layout.q_slots(), D}, "cpu block-sparse attention q");
  expect_shape(k, {B, H, layout.k_slots(), D}, "cpu block-sparse attention k");
  expect_shape(v, {B, H, layout.k_slots(), D}, "cpu block-sparse attention v");
  expect_shape(out, {B, H, layout.q_slots(), D}, "cpu block-sparse attention out");
  for (const Tensor* t : {&q, &k, &v, const_cast<const Tensor*>(&out)}) {
    expect_dtype(*t, DType::F32, "cpu block-sparse attention tensor");
    SPARVAR_CHECK(t->device() == Device::CPU, "cpu block-sparse attention: {} is not on the CPU", t->describe());
  }
  float* mass = nullptr;
  if (block_mass) {
    expect_shape(*block_mass, {B, H, p.num_q_blocks, p.num_k_blocks}, "cpu block-sparse attention block_mass");
    expect_dtype(*block_mass, DType::F32, "cpu block-sparse attention block_mass");
    mass = block_mass->data_as<float>();
  }
  const Job job{q.data_as<float>(), k.data_as<float>(), v.data_as<float>(), out.data_as<float>(), mass,
                &layout, H, D, softmax_scale};
  const int64_t nq = p.num_q_blocks, tasks = B * H * nq;
  auto run = [&](int64_t lo, int64_t hi) {
    for (int64_t t = lo; t < hi; ++t) attend_block(job, t / nq, static_cast<int>(t % nq));
  };
  if (pool) pool->parallel_for(0, tasks, 1, run);
  else run(0, tasks);
}

}  // namespace sparvar
