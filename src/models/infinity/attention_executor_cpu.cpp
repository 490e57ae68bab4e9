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
    const Call c = prepare(q, k, v, scale, slot, out, /*in_place=*/false);
    const ScaleLayouts& L = c.L;
    const int64_t D = dim_, Nq = L.q.num_rows(), Nk = L.k.num_rows(), cap = k.dim(2), qs = L.q.num_slots(),
                  ks = L.k.num_slots();
    Tensor qt = q_.slice0(0, c.B * heads_ * qs * D).view({c.B, heads_, qs, D});
    const float *qp = q.data_as<float>(), *kp = k.data_as<float>(), *vp = v.data_as<float>();
    float *qtp = qt.data_as<float>(), *ktp = k_.data_as<float>(), *vtp = v_.data_as<float>();
    pool_.parallel_for(0, c.B * heads_, 1, [&](int64_t lo, int64_t hi) {
      for (int64_t bh = lo; bh < hi; ++bh) {
        rows_to_padded(L.q, {qp + bh * Nq * D, size_t(Nq * D)}, {qtp + bh * qs * D, size_t(qs * D)}, D);
        rows_to_padded(L.k, {kp + bh * cap * D, size_t(Nk * D)}, {ktp + bh * ks * D, size_t(ks * D)}, D);
        rows_to_padded(L.k, {vp + bh * cap * D, size_t(Nk * D)}, {vtp + bh * ks * D, size_t(ks * D)}, D);
      }
    });
    run(c, qt, mass_out, out);
  }

  bool in_place(DType dtype) const override { return dtype == DType::F32; }

  void cache_rows(const Tensor& cache, const Tensor& slots, Tensor& dst) override {
    check_cache_rows(cache, slots, dst, heads_, dim_, DType::F32);
    const int64_t B = dst.dim(0), H = heads_, D = dim_, rows = dst.dim(2), cap = cache.dim(2);
    const int32_t* slot = slots.data_as<int32_t>();
    for (int64_t r = 0; r < rows; ++r)
      SPARVAR_CHECK(slot[r] >= 0 && slot[r] < cap, "cpu cache rows: row {} maps to slot {} of {}", r, slot[r], cap);
    const float* src = cache.data_as<float>();
    float* out = dst.data_as<float>();
    for (int64_t bh = 0; bh < B * H; ++bh)
      for (int64_t r = 0; r < rows; ++r) std::copy_n(src + (bh * cap + slot[r]) * D, D, out + (bh * rows + r) * D);
  }

  // q is already padded; the cache's first key slots are copied out only because cpu_block_sparse_attention takes
  // contiguous [B, H, ks, D] keys.
  void attend_in_place(const Tensor& q, const Tensor& k, const Tensor& v, int scale, int slot, MassOutput mass_out,
                       Tensor& out) override {
    const Call c = prepare(q, k, v, scale, slot, out, /*in_place=*/true);
    const int64_t D = dim_, cap = k.dim(2), ks = c.L.k.num_slots();
    const float *kp = k.data_as<float>(), *vp = v.data_as<float>();
    float *ktp = k_.data_as<float>(), *vtp = v_.data_as<float>();
    pool_.parallel_for(0, c.B * heads_, 1, [&](int64_t lo, int64_t hi) {
      for (int64_t bh = lo; bh < hi; ++bh) {
        std::copy_n(kp + bh * cap * D, ks * D, ktp + bh * ks * D);
        std::copy_n(vp + bh * cap * D, ks * D, vtp + bh * ks * D);
      }
    });
    run(c, q, mass_out, out);
  }

 private:
  struct Call {
    const ScaleLayouts& L;
    const BlockSparseLayout& layout;
    int64_t B;
  };

  // Shapes and dtypes, before anything is written. In place: q [B, H, q slots, D] and k / v at least the scale's
  // key slots; otherwise q row-major and k / v at least its key rows.
  Call prepare(const Tensor& q, const Tensor& k, const Tensor& v, int scale, int slot, const Tensor& out,
               bool in_place) {
    const auto sit = scales_.find(scale);
    const auto pit = patterns_.find(slot);
    SPARVAR_CHECK(sit != scales_.end() && pit != patterns_.end(), "cpu sparse attention: scale {} / pattern {} not "
                  "registered", scale, slot);
    const ScaleLayouts& L = sit->second;
    const BlockSparseLayout& layout = pit->second;
    const int64_t B = q.dim(0), H = heads_, D = dim_, Nq = L.q.num_rows();
    const int64_t q_rows = in_place ? L.q.num_slots() : Nq, k_rows = in_place ? L.k.num_slots() : L.k.num_rows();
    expect_shape(q, {B, H, q_rows, D}, in_place ? "sparse attention q (padded tile order)" : "sparse attention q");
    expect_shape(out, {B, Nq, H, D}, "sparse attention out");
    SPARVAR_CHECK(k.ndim() == 4 && k.dim(0) == B && k.dim(1) == H && k.dim(3) == D && k.dim(2) >= k_rows &&
                      v.shape() == k.shape(),
                  "sparse attention: k {} / v {} must be [{}, {}, >= {}, {}]", k.describe(), v.describe(), B, H, k_rows, D);
    for (const Tensor* t : {&q, &k, &v, &out}) {
      expect_dtype(*t, DType::F32, "sparse attention tensor (CPU)");
      SPARVAR_CHECK(t->device() == Device::CPU, "sparse attention: {} is not on the CPU", t->describe());
    }
    SPARVAR_CHECK(layout.pattern.num_q_blocks == L.q.num_blocks() && layout.pattern.num_k_blocks == L.k.num_blocks(),
                  "sparse attention: pattern {} does not fit scale {}", slot, scale);
    reserve(B, true);  // grows once if a larger batch shows up
    return Call{L, layout, B};
  }

  // The kernel on padded q (qt) and the staged keys / values, then the token-major output (slot s of head h of
  // item b, holding token n, at [b, n, h, :]).
  void run(const Call& c, const Tensor& qt, const MassOutput& mass_out, Tensor& out) {
    const ScaleLayouts& L = c.L;
    const int64_t B = c.B, H = heads_, D = dim_, Nq = L.q.num_rows(), qs = L.q.num_slots(), ks = L.k.num_slots();
    Tensor ot = o_.slice0(0, B * H * qs * D).view({B, H, qs, D});
    Tensor kt = k_.slice0(0, B * H * ks * D).view({B, H, ks, D});
    Tensor vt = v_.slice0(0, B * H * ks * D).view({B, H, ks, D});
    std::vector<float>* mass = mass_out.host;
    Tensor mass_t;
    if (mass) {
      mass->resize(static_cast<size_t>(B * H) * c.layout.pattern.num_q_blocks * c.layout.pattern.num_k_blocks);
      mass_t = Tensor::wrap(mass->data(), {B, H, c.layout.pattern.num_q_blocks, c.layout.pattern.num_k_blocks},
                            DType::F32, Device::CPU);
    }
    cpu_block_sparse_attention(qt, kt, vt, c.layout, 1.0f, ot, mass ? &mass_t : nullptr, &pool_);
    const float* otp = ot.data_as<float>();
    float* op = out.data_as<float>();
    const std::vector<int32_t>& token_of_slot = L.q.row_of_slot();
    pool_.parallel_for(0, B * H, 1, [&](int64_t lo, int64_t hi) {
      for (int64_t bh = lo; bh < hi; ++bh) {
        const int64_t b = bh / H, h = bh % H;
        for (int64_t s = 0; s < qs; ++s) {
          const int32_t n = token_of_slot[static_cast<size_t>(s)];
          if (n >= 0) std::copy_n(otp + (bh * qs + s) * D, D, op + ((b * Nq + n) * H + h) * D);
        }
      }
    });
  }

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
