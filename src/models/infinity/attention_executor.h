// The device-specific half of SparseAttentionRunner: tile-order gather of q and the KV-cache prefix, the
// block-sparse kernel, scatter of the output. One implementation per backend (CPU: fp32 host buffers and
// cpu_block_sparse; CUDA: bf16 device buffers, tile_gather.cu and the Hopper kernel). Patterns are
// registered under integer slots (made resident once: a device copy on CUDA) and referred to by slot.
#pragma once

#include <memory>
#include <vector>

#include "attention/pattern.h"
#include "backend/backend.h"

namespace sparvar::infinity {

class AttentionExecutor {
 public:
  virtual ~AttentionExecutor() = default;
  // Registers scale k's layouts (permutation tables); before reserve().
  virtual void add_scale(int scale, const ScaleLayouts& layouts) = 0;
  // Sizes the scratch for `batch` rows over every registered scale; never shrinks.
  virtual void reserve(int64_t batch) = 0;
  // Makes `layout` the pattern of `slot` (replacing any earlier one). Its geometry must match the scale it
  // is later used with.
  virtual void set_pattern(int slot, const BlockSparseLayout& layout) = 0;
  // out [B, H, Nq, D] = block-sparse attention (softmax scale 1) of q [B, H, Nq, D] (row-major scale
  // `scale`) against k / v [B, H, capacity, D] (row-major KV cache; the first rows of scales 0..scale are
  // read) with the pattern of `slot`. mass (optional): filled with the block mass [B, H, nq, nk] (host).
  virtual void attend(const Tensor& q, const Tensor& k, const Tensor& v, int scale, int slot,
                      std::vector<float>* mass, Tensor& out) = 0;
};

std::unique_ptr<AttentionExecutor> make_cpu_attention_executor(int heads, int head_dim, int threads);
// Throws Error in a build without CUDA. cuda_kernel: BlockSparseKernel.
std::unique_ptr<AttentionExecutor> make_cuda_attention_executor(Backend& backend, int heads, int head_dim,
                                                                int cuda_kernel);

}  // namespace sparvar::infinity
