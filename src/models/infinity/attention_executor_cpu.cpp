// CPU executor: fp32 host scratch in padded tile order, cpu_block_sparse_attention on an own thread pool
// (the backend's pool is private to it; the two never run at the same time).
#include <algorithm>
#include <map>
#include <vector>

#include "attention/cpu_block_sparse.h"
#include "core/error.h"
#include "core/thread_pool.h"
#include "models/infinity/attention_executor.h"

namespace sparvar::infinity {
namespace {

class CpuAttentionExecutor final : public AttentionExecutor {
 public:
  CpuAttentionExecutor(int heads, int head_dim, int threads) : heads_(heads), dim_(head_dim), pool_(threads) {}

  void add_scale(int scale, const ScaleLayouts& layouts) override {
    scales_[scale] = layouts;
    max_q_ = std::max(max_q_, layouts.q.num_slots());
    max_k_ = std::max(max_k_, layouts.k.num_slots());
  }

  void reserve(int64_t batch, bool /*gather: the CPU always gathers*/) override {
    if (batch <= batch_) return;
    batch_ = batch;
    const int64_t bhd = batch * heads_ * dim_;
    q_ = Tensor::empty({bhd * max_q_}, DType::F32);
    o_ = Tensor::empty({bhd * max_q_}, DType::F32);
    k_ = Tensor::empty({bhd * max_k_}, DType::F32);
    v_ = Tensor::empty({bhd * max_k_}, DType::F32);
  }

  void set_pattern(int slot, const BlockSparseLayout& layout) override { patterns_[slot] = layout; }

  // The mass is computed only when asked for on the host (`keep` has no meaning without a device).
  void attend(const Tensor& q, const Tensor& k, const Tensor& v, int scale, int slot, MassOutput mass_out,
              Tensor& out) override {
    std::vector<float>* mass = mass_out.host;
    const auto sit = scales_.find(scale);
    const auto pit = patterns_.find(slot);
    SPARVAR_CHECK(sit != scales_.end() && pit != patterns_.end(), "cpu sparse attention: scale {} / pattern {} not "
                  "registered", scale, slot);
    const ScaleLayouts& L = sit->second;
    const BlockSparseLayout& layout = pit->second;
    const int64_t B = q.dim(0), H = heads_, D = dim_, Nq = L.q.num_rows(), Nk = L.k.num_rows(), cap = k.dim(2);
    expect_shape(q, {B, H, Nq, D}, "sparse attention q");
    expect_shape(out, {B, Nq, H, D}, "sparse attention out");
    SPARVAR_CHECK(k.ndim() == 4 && k.dim(0) == B && k.dim(1) == H && k.dim(3) == D && cap >= Nk && v.shape() == k.shape(),
                  "sparse attention: k {} / v {} must be [{}, {}, >= {}, {}]", k.describe(), v.describe(), B, H, Nk, D);
    for (const Tensor* t : {&q, &k, &v, const_cast<const Tensor*>(&out)}) {
      expect_dtype(*t, DType::F32, "sparse attention tensor (CPU)");
      SPARVAR_CHECK(t->device() == Device::CPU, "sparse attention: {} is not on the CPU", t->describe());
    }
    SPARVAR_CHECK(layout.pattern.num_q_blocks == L.q.num_blocks() && layout.pattern.num_k_blocks == L.k.num_blocks(),
                  "sparse attention: pattern {} does not fit scale {}", slot, scale);
    reserve(B, true);  // grows once if a larger batch shows up

    const int64_t qs = L.q.num_slots(), ks = L.k.num_slots();
    Tensor qt = q_.slice0(0, B * H * qs * D).view({B, H, qs, D});
    Tensor ot = o_.slice0(0, B * H * qs * D).view({B, H, qs, D});
    Tensor kt = k_.slice0(0, B * H * ks * D).view({B, H, ks, D});
    Tensor vt = v_.slice0(0, B * H * ks * D).view({B, H, ks, D});
    const float *qp = q.data_as<float>(), *kp = k.data_as<float>(), *vp = v.data_as<float>();
    float *qtp = qt.data_as<float>(), *ktp = kt.data_as<float>(), *vtp = vt.data_as<float>();
    pool_.parallel_for(0, B * H, 1, [&](int64_t lo, int64_t hi) {
      for (int64_t bh = lo; bh < hi; ++bh) {
        rows_to_padded(L.q, {qp + bh * Nq * D, size_t(Nq * D)}, {qtp + bh * qs * D, size_t(qs * D)}, D);
        rows_to_padded(L.k, {kp + bh * cap * D, size_t(Nk * D)}, {ktp + bh * ks * D, size_t(ks * D)}, D);
        rows_to_padded(L.k, {vp + bh * cap * D, size_t(Nk * D)}, {vtp + bh * ks * D, size_t(ks * D)}, D);
      }
    });
    Tensor mass_t;
    if (mass) {
      mass->resize(static_cast<size_t>(B * H) * layout.pattern.num_q_blocks * layout.pattern.num_k_blocks);
      mass_t = Tensor::wrap(mass->data(), {B, H, layout.pattern.num_q_blocks, layout.pattern.num_k_blocks}, DType::F32,
                            Device::CPU);
    }
    cpu_block_sparse_attention(qt, kt, vt, layout, 1.0f, ot, mass ? &mass_t : nullptr, &pool_);
    const float* otp = ot.data_as<float>();
    float* op = out.data_as<float>();
    // Back to row order, then into the token-major output (row n of head h of item b at [b, n, h, :]).
    pool_.parallel_for(0, B * H, 1, [&](int64_t lo, int64_t hi) {
      std::vector<float> rows(static_cast<size_t>(Nq * D));
      for (int64_t bh = lo; bh < hi; ++bh) {
        padded_to_rows(L.q, {otp + bh * qs * D, size_t(qs * D)}, rows, D);
        const int64_t b = bh / H, h = bh % H;
        for (int64_t n = 0; n < Nq; ++n)
          std::copy_n(rows.data() + n * D, D, op + ((b * Nq + n) * H + h) * D);
      }
    });
  }

 private:
  int64_t heads_, dim_;
  ThreadPool pool_;
  std::map<int, ScaleLayouts> scales_;
  std::map<int, BlockSparseLayout> patterns_;
  int64_t max_q_ = 0, max_k_ = 0, batch_ = 0;
  Tensor q_, o_, k_, v_;  // flat scratch, sized for batch_ over every registered scale
};

}  // namespace

std::unique_ptr<AttentionExecutor> make_cpu_attention_executor(int heads, int head_dim, int threads) {
  return std::make_unique<CpuAttentionExecutor>(heads, head_dim, threads);
}

}  // namespace sparvar::infinity
