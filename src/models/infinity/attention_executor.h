// The device-specific half of SparseAttentionRunner: tile-order gather of q and the KV-cache prefix, the
// block-sparse kernel, scatter of the output. One implementation per backend (CPU: fp32 host buffers and
// cpu_block_sparse; CUDA: bf16 device buffers, tile_gather.cu and the Hopper kernel). Patterns are
// registered under integer slots (made resident once: a device copy on CUDA) and referred to by slot.
// CS4A: the CUDA executor also builds the later scales' patterns itself, on the device, from the block mass
// of its decision-scale call (build_cs4a); the CPU one leaves that to the runner (cs4a_select, Cs4aMapper).
#pragma once

#include <memory>
#include <span>
#include <vector>

#include "attention/cs4a_plan.h"
#include "attention/pattern.h"
#include "backend/backend.h"

namespace sparvar::infinity {

// What attend() does with the block mass (per (query block, key block) share of the softmax mass, averaged
// over the block's valid queries): nothing by default.
struct MassOutput {
  bool keep = false;                   // compute it and keep it on the device for build_cs4a (CUDA only)
  std::vector<float>* host = nullptr;  // compute it and copy it here as [B, H, nq, nk] (CUDA: synchronises)
  bool wanted() const { return keep || host != nullptr; }
};

class AttentionExecutor {
 public:
  virtual ~AttentionExecutor() = default;
  // Registers scale k's layouts (permutation tables); before reserve().
  virtual void add_scale(int scale, const ScaleLayouts& layouts) = 0;
  // Sizes the scratch for `batch` rows over every registered scale; never shrinks. gather = false: only what
  // attend_in_place needs (no tile copies of q, k, v and out).
  virtual void reserve(int64_t batch, bool gather = true) = 0;
  // Makes `layout` the pattern of `slot` (replacing any earlier one). Its geometry must match the scale it
  // is later used with.
  virtual void set_pattern(int slot, const BlockSparseLayout& layout) = 0;
  // out [B, Nq, H, D] (token-major) = block-sparse attention (softmax scale 1) of q [B, H, Nq, D] (row-major scale
  // `scale`) against k / v [B, H, capacity, D] (row-major KV cache; the first rows of scales 0..scale are
  // read) with the pattern of `slot`; the block mass as `mass` asks.
  virtual void attend(const Tensor& q, const Tensor& k, const Tensor& v, int scale, int slot, MassOutput mass,
                      Tensor& out) = 0;
  // The same, reading its operands in place (no gather, no scatter): q [B, H, q slots, D] already in scale
  // `scale`'s padded q tile order, k / v [B, H, capacity, D] a KV cache in the padded tile order of the whole
  // schedule (the layout of scales 0..K-1, whose first blocks are those of scales 0..scale), padding rows
  // finite. out as in attend(). Only for tensors of a dtype with in_place(dtype); otherwise it throws.
  virtual bool in_place(DType dtype) const {
    (void)dtype;
    return false;
  }
  virtual void attend_in_place(const Tensor& q, const Tensor& k, const Tensor& v, int scale, int slot, MassOutput mass,
                               Tensor& out);
  // dst [B, H, rows, D] = cache [B, H, capacity, D] rows slots[0..rows) (I32 on the executor's device): a cache kept
  // in tile order, back in row order for a dense attention. Same dtype (one of in_place's).
  virtual void cache_rows(const Tensor& cache, const Tensor& slots, Tensor& dst);

  // ---- CS4A on the executor's device (builds_cs4a() == true; the others throw elsewhere) ----
  virtual bool builds_cs4a() const { return false; }
  // Once, after add_scale: the static tables of the scales to build (plan.scales[i] for slots[i] below).
  virtual void set_cs4a_plan(const Cs4aPlan& plan);
  // From the block mass kept by the last attend() (at the decision scale, every block listed, shared across
  // heads), builds plan.scales[i]'s pattern into slots[i] (replacing it), without a host sync. A slot's
  // buffers are allocated once, at the plan's bound.
  virtual void build_cs4a(std::span<const int> slots);
  // Host copies (synchronise; for observers and tests): the last build's decision rows (per head), and the
  // pattern of a slot.
  virtual BlockPattern cs4a_selection();
  virtual BlockPattern download_pattern(int slot);
  // After an image's work has finished: raises an Error if a device build of it went wrong (builds replayed
  // from a CUDA graph have no host call of their own to report it).
  virtual void end_image() {}
};

// cache_rows's shapes and dtypes, the same for every executor: cache [B, H, capacity, D] and dst [B, H, rows, D] in
// `dtype`, slots I32 [rows].
void check_cache_rows(const Tensor& cache, const Tensor& slots, const Tensor& dst, int64_t heads, int64_t head_dim,
                      DType dtype);

std::unique_ptr<AttentionExecutor> make_cpu_attention_executor(int heads, int head_dim, int threads);
// Throws Error in a build without CUDA. cuda_kernel: BlockSparseKernel.
std::unique_ptr<AttentionExecutor> make_cuda_attention_executor(Backend& backend, int heads, int head_dim,
                                                                int cuda_kernel);

}  // namespace sparvar::infinity
