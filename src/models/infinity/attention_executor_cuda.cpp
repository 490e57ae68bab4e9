// CUDA executor: bf16 device scratch in padded tile order, tile_gather.cu for the permutations and the
// Hopper block-sparse kernel, all on the backend's stream. Permutation tables and static patterns are
// uploaded once. CS4A patterns are built on the device (cs4a_device.h) from the decision call's block mass,
// which never leaves the device, into per-slot buffers allocated once at the plan's bounds: no host sync.
#include <algorithm>
#include <map>

#include "backend/cuda/device_buffer.h"
#include "backend/cuda/stream_of.h"
#include "block_sparse_attention.h"
#include "core/error.h"
#include "cs4a_device.h"
#include "models/infinity/attention_executor.h"
#include "tile_gather.h"

namespace sparvar::infinity {
namespace {

using cuda::DeviceBuffer;

void upload(DeviceBuffer& buf, const std::vector<int32_t>& host, cudaStream_t stream, const char* what) {
  buf.reserve(std::max<size_t>(host.size(), 1) * sizeof(int32_t), what);
  if (!host.empty())
    CUDA_CHECK(cudaMemcpyAsync(buf.data(), host.data(), host.size() * sizeof(int32_t), cudaMemcpyHostToDevice, stream));
}

struct DeviceScale {
  ScaleLayouts host;
  DeviceBuffer q_row_of_slot, q_slot_of_row, k_row_of_slot;
  DeviceBuffer q_valid, k_valid;  // for patterns built on the device (host-built ones carry their own)
};

struct DevicePattern {
  BlockSparseLayout host;  // host-built: the host copy stays alive while the async upload reads it
  DeviceBuffer row_offsets, col_blocks, q_valid, k_valid;
  int cs4a_scale = -1;     // built on the device: index into the CS4A plan's scales (no host copy)
};

class CudaAttentionExecutor final : public AttentionExecutor {
 public:
  CudaAttentionExecutor(Backend& backend, int heads, int head_dim, int kernel)
      : stream_(cuda::cuda_stream(backend)), heads_(heads), dim_(head_dim), kernel_(kernel) {
    SPARVAR_CHECK(head_dim == 64 || head_dim == 128, "CUDA block-sparse attention takes head dim 64 or 128, the model "
                  "has {}", head_dim);
  }

  void add_scale(int scale, const ScaleLayouts& layouts) override {
    for (int bs : {layouts.q.block_size(), layouts.k.block_size()})
      SPARVAR_CHECK(bs == 64 || bs == 128, "CUDA block-sparse attention takes 64- or 128-token tiles, got {} "
                    "(tile {}x{})", bs, layouts.q.tile().h, layouts.q.tile().w);
    DeviceScale& d = scales_[scale];
    d.host = layouts;
    upload(d.q_row_of_slot, layouts.q.row_of_slot(), stream_, "q tile permutation");
    upload(d.q_slot_of_row, layouts.q.slot_of_row(), stream_, "q tile permutation");
    upload(d.k_row_of_slot, layouts.k.row_of_slot(), stream_, "k tile permutation");
    upload(d.q_valid, layouts.q.block_valid(), stream_, "q block valid lengths");
    upload(d.k_valid, layouts.k.block_valid(), stream_, "k block valid lengths");
    max_q_ = std::max(max_q_, layouts.q.num_slots());
    max_k_ = std::max(max_k_, layouts.k.num_slots());
    max_mass_ = std::max(max_mass_, int64_t{layouts.q.num_blocks()} * layouts.k.num_blocks());
  }

  void reserve(int64_t batch, bool gather) override {
    if (batch > batch_) {
      batch_ = batch;
      mass_.reserve(static_cast<size_t>(batch * heads_ * max_mass_) * sizeof(float), "sparse attention block mass");
    }
    if (!gather || batch <= gather_batch_) return;
    gather_batch_ = batch;
    const size_t bhd = static_cast<size_t>(batch * heads_ * dim_) * 2;  // bf16
    q_.reserve(bhd * max_q_, "sparse attention q tiles");
    o_.reserve(bhd * max_q_, "sparse attention out tiles");
    k_.reserve(bhd * max_k_, "sparse attention k tiles");
    v_.reserve(bhd * max_k_, "sparse attention v tiles");
  }

  void set_pattern(int slot, const BlockSparseLayout& layout) override {
    DevicePattern& p = patterns_[slot];
    p.host = layout;
    p.cs4a_scale = -1;
    upload(p.row_offsets, p.host.pattern.row_offsets, stream_, "pattern row offsets");
    upload(p.col_blocks, p.host.pattern.col_blocks, stream_, "pattern blocks");
    upload(p.q_valid, p.host.q_block_valid, stream_, "pattern q valid");
    upload(p.k_valid, p.host.k_block_valid, stream_, "pattern k valid");
  }

  void attend(const Tensor& q, const Tensor& k, const Tensor& v, int scale, int slot, MassOutput mass,
              Tensor& out) override {
    const Call c = prepare(q, k, v, scale, slot, mass, out, /*in_place=*/false);
    const bool f32 = q.dtype() == DType::F32;
    const int64_t qs = c.S.host.q.num_slots(), ks = c.S.host.k.num_slots(), BH = c.B * heads_;
    CUDA_CHECK(attn_cuda::gather_rows_to_tiles_bf16(q.data(), f32, c.Nq, c.S.q_row_of_slot.as<int32_t>(), qs,
                                                    q_.data(), BH, static_cast<int>(dim_), stream_));
    CUDA_CHECK(attn_cuda::gather_rows_to_tiles_bf16(k.data(), f32, k.dim(2), c.S.k_row_of_slot.as<int32_t>(), ks,
                                                    k_.data(), BH, static_cast<int>(dim_), stream_));
    CUDA_CHECK(attn_cuda::gather_rows_to_tiles_bf16(v.data(), f32, k.dim(2), c.S.k_row_of_slot.as<int32_t>(), ks,
                                                    v_.data(), BH, static_cast<int>(dim_), stream_));
    BlockSparseAttentionArgs a = kernel_args(c, q_.data(), k_.data(), v_.data(), o_.data(), mass);
    block_sparse_attention(a, stream_);
    CUDA_CHECK(attn_cuda::scatter_tiles_to_rows(o_.data(), qs, c.S.q_slot_of_row.as<int32_t>(), c.Nq, out.data(), f32,
                                                BH, static_cast<int>(dim_), stream_, /*dst_heads=*/heads_));
    finish(c, mass);
  }

  bool in_place(DType dtype) const override { return dtype == DType::BF16; }

  void attend_in_place(const Tensor& q, const Tensor& k, const Tensor& v, int scale, int slot, MassOutput mass,
                       Tensor& out) override {
    SPARVAR_CHECK(in_place(q.dtype()), "cuda sparse attention: in place takes bf16 (q {})", q.describe());
    const Call c = prepare(q, k, v, scale, slot, mass, out, /*in_place=*/true);
    BlockSparseAttentionArgs a = kernel_args(c, q.data(), k.data(), v.data(), out.data(), mass);
    a.kv_rows = static_cast<int>(k.dim(2));
    a.out_rows = c.S.q_row_of_slot.as<int>();
    a.out_tokens = static_cast<int>(c.Nq);
    block_sparse_attention(a, stream_);
    finish(c, mass);
  }

  void cache_rows(const Tensor& cache, const Tensor& slots, Tensor& dst) override {
    check_cache_rows(cache, slots, dst, heads_, dim_, DType::BF16);
    const int64_t B = dst.dim(0), rows = dst.dim(2);
    CUDA_CHECK(attn_cuda::gather_rows_to_tiles_bf16(cache.data(), false, cache.dim(2), slots.data_as<int32_t>(), rows,
                                                    dst.data(), B * heads_, static_cast<int>(dim_), stream_));
  }

  bool builds_cs4a() const override { return true; }

  void set_cs4a_plan(const Cs4aPlan& plan) override { cs4a_ = std::make_unique<Cs4aDeviceBuilder>(plan); }

  void build_cs4a(std::span<const int> slots) override {
    SPARVAR_CHECK(cs4a_, "cuda sparse attention: build_cs4a before set_cs4a_plan");
    const Cs4aPlan& plan = cs4a_->plan();
    SPARVAR_CHECK(mass_batch_ > 0 && mass_scale_ == plan.decision_scale,
                  "cuda sparse attention: build_cs4a needs the block mass kept by an attend() at the decision scale "
                  "{} with every block listed, right before", plan.decision_scale);
    SPARVAR_CHECK(slots.size() == plan.scales.size(), "cuda sparse attention: {} CS4A slots for {} scales",
                  slots.size(), plan.scales.size());
    std::vector<Cs4aDeviceTarget> targets;
    for (size_t i = 0; i < slots.size(); ++i) {
      const Cs4aPlanScale& s = plan.scales[i];
      const auto sit = scales_.find(s.scale);
      SPARVAR_CHECK(sit != scales_.end() && sit->second.host.q.num_blocks() == s.num_q_blocks &&
                        sit->second.host.k.num_blocks() == s.num_k_blocks,
                    "cuda sparse attention: CS4A scale {} is not registered with this geometry", s.scale);
      DevicePattern& p = patterns_[slots[i]];
      if (p.cs4a_scale != static_cast<int>(i)) {  // first build into this slot: buffers at the plan's bounds
        p.host = BlockSparseLayout{};
        p.cs4a_scale = static_cast<int>(i);
        p.row_offsets.reserve((static_cast<size_t>(plan.heads) * s.num_q_blocks + 1) * sizeof(int32_t), "CS4A row offsets");
        p.col_blocks.reserve(std::max<size_t>(static_cast<size_t>(s.nnz_bound), 1) * sizeof(int32_t), "CS4A blocks");
      }
      targets.push_back({p.row_offsets.as<int32_t>(), p.col_blocks.as<int32_t>()});
    }
    cs4a_->build(mass_.as<float>(), static_cast<int>(mass_batch_), targets, stream_);
  }

  BlockPattern cs4a_selection() override {
    SPARVAR_CHECK(cs4a_, "cuda sparse attention: no CS4A plan");
    return cs4a_->download_selection(stream_);
  }

  void end_image() override {
    if (cs4a_) cs4a_->check(false);
  }

  BlockPattern download_pattern(int slot) override {
    const auto pit = patterns_.find(slot);
    SPARVAR_CHECK(pit != patterns_.end(), "cuda sparse attention: pattern {} not registered", slot);
    const DevicePattern& p = pit->second;
    if (p.cs4a_scale < 0) return p.host.pattern;
    return download_cs4a_pattern(cs4a_->plan(), p.cs4a_scale,
                                 {p.row_offsets.as<int32_t>(), p.col_blocks.as<int32_t>()}, stream_);
  }

 private:
  // One call's validated operands.
  struct Call {
    const DeviceScale& S;
    const DevicePattern& P;
    int64_t B, Nq;
    bool device_built;
    int scale;
  };

  // Shapes, dtypes and the pattern's fit, before any launch. In place: q holds the scale's padded q slots and k / v
  // at least its padded key slots, in bf16 (the kernel's type); otherwise q / k / v are row-major, bf16 or f32.
  Call prepare(const Tensor& q, const Tensor& k, const Tensor& v, int scale, int slot, const MassOutput& mass,
               const Tensor& out, bool in_place) {
    const auto sit = scales_.find(scale);
    const auto pit = patterns_.find(slot);
    SPARVAR_CHECK(sit != scales_.end() && pit != patterns_.end(), "cuda sparse attention: scale {} / pattern {} not "
                  "registered", scale, slot);
    const DeviceScale& S = sit->second;
    const DevicePattern& P = pit->second;
    const int64_t B = q.dim(0), H = heads_, D = dim_, Nq = S.host.q.num_rows();
    const int64_t q_rows = in_place ? S.host.q.num_slots() : Nq, k_rows = in_place ? S.host.k.num_slots() : S.host.k.num_rows();
    expect_shape(q, {B, H, q_rows, D}, in_place ? "sparse attention q (padded tile order)" : "sparse attention q");
    expect_shape(out, {B, Nq, H, D}, "sparse attention out");
    SPARVAR_CHECK(k.ndim() == 4 && k.dim(0) == B && k.dim(1) == H && k.dim(3) == D && k.dim(2) >= k_rows &&
                      v.shape() == k.shape(),
                  "sparse attention: k {} / v {} must be [{}, {}, >= {}, {}]", k.describe(), v.describe(), B, H, k_rows, D);
    const DType dt = q.dtype();
    SPARVAR_CHECK(dt == DType::BF16 || (dt == DType::F32 && !in_place), "sparse attention: q is {}, want bf16{}",
                  q.describe(), in_place ? " (in place)" : " or f32");
    for (const Tensor* t : {&q, &k, &v, &out}) {
      SPARVAR_CHECK(t->dtype() == dt, "sparse attention: {} and q {} must share one dtype", t->describe(), q.describe());
      SPARVAR_CHECK(t->device() == Device::CUDA, "sparse attention: {} is not on the GPU", t->describe());
    }
    const bool device_built = P.cs4a_scale >= 0;
    if (device_built) {
      SPARVAR_CHECK(cs4a_ && cs4a_->plan().scales[static_cast<size_t>(P.cs4a_scale)].scale == scale,
                    "sparse attention: pattern {} was built for another scale than {}", slot, scale);
      SPARVAR_CHECK(!mass.wanted(), "sparse attention: block mass is only recorded with host-built patterns");
    } else {
      SPARVAR_CHECK(P.host.pattern.num_q_blocks == S.host.q.num_blocks() &&
                        P.host.pattern.num_k_blocks == S.host.k.num_blocks(),
                    "sparse attention: pattern {} does not fit scale {}", slot, scale);
    }
    reserve(B, !in_place);
    mass_batch_ = 0;  // a kept mass is the last call's only
    return Call{S, P, B, Nq, device_built, scale};
  }

  BlockSparseAttentionArgs kernel_args(const Call& c, const void* q, const void* k, const void* v, void* out,
                                       const MassOutput& mass) {
    BlockSparseAttentionArgs a{};
    a.q = q;
    a.k = k;
    a.v = v;
    a.out = out;
    a.batch = static_cast<int>(c.B);
    a.heads = static_cast<int>(heads_);
    a.head_dim = static_cast<int>(dim_);
    a.nq = static_cast<int>(c.S.host.q.num_slots());
    a.nk = static_cast<int>(c.S.host.k.num_slots());
    a.q_block = c.S.host.q.block_size();
    a.k_block = c.S.host.k.block_size();
    a.row_offsets = c.P.row_offsets.as<int>();
    a.col_blocks = c.P.col_blocks.as<int>();
    // A device-built pattern's nnz stays on the device: it is only needed for block_mass, which it never has.
    a.nnz = c.device_built ? 0 : static_cast<int>(c.P.host.pattern.nnz());
    a.pattern_heads = c.device_built ? static_cast<int>(heads_) : c.P.host.pattern.pattern_heads();
    a.k_valid = c.device_built ? c.S.k_valid.as<int>() : c.P.k_valid.as<int>();
    a.q_valid = c.device_built ? c.S.q_valid.as<int>() : c.P.q_valid.as<int>();
    a.softmax_scale = 1.0f;
    a.block_mass = mass.wanted() ? mass_.as<float>() : nullptr;
    a.kernel = kernel_;
    return a;
  }

  // After the kernel: the mass to the host and / or kept for build_cs4a, as asked.
  void finish(const Call& c, const MassOutput& mass) {
    if (mass.host) download_mass(c.P.host, c.B, *mass.host);
    if (mass.keep) {
      const BlockPattern& p = c.P.host.pattern;
      // build_cs4a reads the mass as [B, H, nq, nk]: the kernel's layout for a dense pattern shared by heads.
      const bool dense_shared = p.shared_across_heads && p.nnz() == int64_t{p.num_q_blocks} * p.num_k_blocks;
      mass_batch_ = dense_shared ? c.B : 0;
      mass_scale_ = c.scale;
    }
  }

  // The kernel's mass follows col_blocks ([B*H, nnz] for a shared pattern, [B, nnz] for a per-head one, whose
  // rows hold their own slice of col_blocks); expand to [B, H, nq, nk]. Synchronises: CS4A needs it now.
  void download_mass(const BlockSparseLayout& layout, int64_t B, std::vector<float>& mass) {
    const BlockPattern& p = layout.pattern;
    const int64_t nnz = p.nnz();
    const int64_t entries = p.shared_across_heads ? B * heads_ * nnz : B * nnz;
    staging_.resize(static_cast<size_t>(entries));
    CUDA_CHECK(cudaMemcpyAsync(staging_.data(), mass_.data(), staging_.size() * sizeof(float), cudaMemcpyDeviceToHost,
                               stream_));
    CUDA_CHECK(cudaStreamSynchronize(stream_));
    const int nq = p.num_q_blocks, nk = p.num_k_blocks;
    mass.assign(static_cast<size_t>(B * heads_) * nq * nk, 0.0f);
    for (int64_t b = 0; b < B; ++b)
      for (int h = 0; h < heads_; ++h) {
        const float* src = p.shared_across_heads ? staging_.data() + (b * heads_ + h) * nnz
                                                 : staging_.data() + b * nnz;
        float* dst = mass.data() + (b * heads_ + h) * int64_t{nq} * nk;
        for (int qb = 0; qb < nq; ++qb) {
          const int r = (p.shared_across_heads ? 0 : h) * nq + qb;
          for (int32_t e = p.row_offsets[r]; e < p.row_offsets[r + 1]; ++e) dst[int64_t{qb} * nk + p.col_blocks[e]] = src[e];
        }
      }
  }

  cudaStream_t stream_;
  int64_t heads_, dim_;
  int kernel_;
  std::map<int, DeviceScale> scales_;
  std::map<int, DevicePattern> patterns_;
  int64_t max_q_ = 0, max_k_ = 0, max_mass_ = 0, batch_ = 0, gather_batch_ = 0;
  DeviceBuffer q_, o_, k_, v_, mass_;
  std::vector<float> staging_;
  std::unique_ptr<Cs4aDeviceBuilder> cs4a_;
  int64_t mass_batch_ = 0;  // rows of the mass the last attend() kept in mass_ for build_cs4a (0: none usable)
  int mass_scale_ = -1;
};

}  // namespace

std::unique_ptr<AttentionExecutor> make_cuda_attention_executor(Backend& backend, int heads, int head_dim,
                                                                int cuda_kernel) {
  return std::make_unique<CudaAttentionExecutor>(backend, heads, head_dim, cuda_kernel);
}

}  // namespace sparvar::infinity
