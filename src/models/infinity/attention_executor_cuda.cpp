// CUDA executor: bf16 device scratch in padded tile order, tile_gather.cu for the permutations and the
// Hopper block-sparse kernel, all on the backend's stream. Permutation tables and static patterns are
// uploaded once; CS4A patterns are re-uploaded into grow-only buffers once per image and layer.
#include <algorithm>
#include <map>

#include "backend/cuda/device_buffer.h"
#include "backend/cuda/stream_of.h"
#include "block_sparse_attention.h"
#include "core/error.h"
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
};

struct DevicePattern {
  BlockSparseLayout host;  // the host copy stays alive while the async upload reads it
  DeviceBuffer row_offsets, col_blocks, q_valid, k_valid;
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
    max_q_ = std::max(max_q_, layouts.q.num_slots());
    max_k_ = std::max(max_k_, layouts.k.num_slots());
    max_mass_ = std::max(max_mass_, int64_t{layouts.q.num_blocks()} * layouts.k.num_blocks());
  }

  void reserve(int64_t batch) override {
    if (batch <= batch_) return;
    batch_ = batch;
    const size_t bhd = static_cast<size_t>(batch * heads_ * dim_) * 2;  // bf16
    q_.reserve(bhd * max_q_, "sparse attention q tiles");
    o_.reserve(bhd * max_q_, "sparse attention out tiles");
    k_.reserve(bhd * max_k_, "sparse attention k tiles");
    v_.reserve(bhd * max_k_, "sparse attention v tiles");
    mass_.reserve(static_cast<size_t>(batch * heads_ * max_mass_) * sizeof(float), "sparse attention block mass");
  }

  void set_pattern(int slot, const BlockSparseLayout& layout) override {
    DevicePattern& p = patterns_[slot];
    p.host = layout;
    upload(p.row_offsets, p.host.pattern.row_offsets, stream_, "pattern row offsets");
    upload(p.col_blocks, p.host.pattern.col_blocks, stream_, "pattern blocks");
    upload(p.q_valid, p.host.q_block_valid, stream_, "pattern q valid");
    upload(p.k_valid, p.host.k_block_valid, stream_, "pattern k valid");
  }

  void attend(const Tensor& q, const Tensor& k, const Tensor& v, int scale, int slot, std::vector<float>* mass,
              Tensor& out) override {
    const auto sit = scales_.find(scale);
    const auto pit = patterns_.find(slot);
    SPARVAR_CHECK(sit != scales_.end() && pit != patterns_.end(), "cuda sparse attention: scale {} / pattern {} not "
                  "registered", scale, slot);
    const DeviceScale& S = sit->second;
    const DevicePattern& P = pit->second;
    const BlockSparseLayout& layout = P.host;
    const int64_t B = q.dim(0), H = heads_, D = dim_, Nq = S.host.q.num_rows(), Nk = S.host.k.num_rows(),
                  cap = k.dim(2);
    expect_shape(q, {B, H, Nq, D}, "sparse attention q");
    expect_shape(out, {B, H, Nq, D}, "sparse attention out");
    SPARVAR_CHECK(k.ndim() == 4 && k.dim(0) == B && k.dim(1) == H && k.dim(3) == D && cap >= Nk && v.shape() == k.shape(),
                  "sparse attention: k {} / v {} must be [{}, {}, >= {}, {}]", k.describe(), v.describe(), B, H, Nk, D);
    const DType dt = q.dtype();
    SPARVAR_CHECK(dt == DType::BF16 || dt == DType::F32, "sparse attention: q is {}, want bf16 or f32", q.describe());
    for (const Tensor* t : {&q, &k, &v, const_cast<const Tensor*>(&out)}) {
      SPARVAR_CHECK(t->dtype() == dt, "sparse attention: {} and q {} must share one dtype", t->describe(), q.describe());
      SPARVAR_CHECK(t->device() == Device::CUDA, "sparse attention: {} is not on the GPU", t->describe());
    }
    SPARVAR_CHECK(layout.pattern.num_q_blocks == S.host.q.num_blocks() &&
                      layout.pattern.num_k_blocks == S.host.k.num_blocks(),
                  "sparse attention: pattern {} does not fit scale {}", slot, scale);
    reserve(B);

    const bool f32 = dt == DType::F32;
    const int64_t qs = S.host.q.num_slots(), ks = S.host.k.num_slots(), BH = B * H;
    CUDA_CHECK(attn_cuda::gather_rows_to_tiles_bf16(q.data(), f32, Nq, S.q_row_of_slot.as<int32_t>(), qs, q_.data(),
                                                    BH, static_cast<int>(D), stream_));
    CUDA_CHECK(attn_cuda::gather_rows_to_tiles_bf16(k.data(), f32, cap, S.k_row_of_slot.as<int32_t>(), ks, k_.data(),
                                                    BH, static_cast<int>(D), stream_));
    CUDA_CHECK(attn_cuda::gather_rows_to_tiles_bf16(v.data(), f32, cap, S.k_row_of_slot.as<int32_t>(), ks, v_.data(),
                                                    BH, static_cast<int>(D), stream_));
    BlockSparseAttentionArgs a{};
    a.q = q_.data();
    a.k = k_.data();
    a.v = v_.data();
    a.out = o_.data();
    a.batch = static_cast<int>(B);
    a.heads = static_cast<int>(H);
    a.head_dim = static_cast<int>(D);
    a.nq = static_cast<int>(qs);
    a.nk = static_cast<int>(ks);
    a.q_block = layout.q_block_size;
    a.k_block = layout.k_block_size;
    a.row_offsets = P.row_offsets.as<int>();
    a.col_blocks = P.col_blocks.as<int>();
    a.nnz = static_cast<int>(layout.pattern.nnz());
    a.pattern_heads = layout.pattern.pattern_heads();
    a.k_valid = P.k_valid.as<int>();
    a.q_valid = P.q_valid.as<int>();
    a.softmax_scale = 1.0f;
    a.block_mass = mass ? mass_.as<float>() : nullptr;
    a.kernel = kernel_;
    block_sparse_attention(a, stream_);
    CUDA_CHECK(attn_cuda::scatter_tiles_to_rows(o_.data(), qs, S.q_slot_of_row.as<int32_t>(), Nq, out.data(), f32, BH,
                                                static_cast<int>(D), stream_));
    if (mass) download_mass(layout, B, *mass);
  }

 private:
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
  int64_t max_q_ = 0, max_k_ = 0, max_mass_ = 0, batch_ = 0;
  DeviceBuffer q_, o_, k_, v_, mass_;
  std::vector<float> staging_;
};

}  // namespace

std::unique_ptr<AttentionExecutor> make_cuda_attention_executor(Backend& backend, int heads, int head_dim,
                                                                int cuda_kernel) {
  return std::make_unique<CudaAttentionExecutor>(backend, heads, head_dim, cuda_kernel);
}

}  // namespace sparvar::infinity
