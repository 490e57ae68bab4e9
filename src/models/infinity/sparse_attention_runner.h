// SparVAR self-attention for Infinity: an AttentionRunner that drives the block-sparse kernel with the CSLA
// (static) or CS4A (dynamic) patterns of src/attention, on the CPU (cpu_block_sparse.h) or the GPU
// (attention/cuda/block_sparse_attention.h). See docs/attention.md, "Runtime".
//
// Per call at query scale k: scales with fewer than dense_below_tokens tokens use the backend's dense
// attention; otherwise q (scale k) and the KV cache's scales 0..k are gathered into padded tile order,
// block-sparse attention runs with the scale's pattern, and the output is scattered back to row-major.
// Everything that depends only on the schedule (layouts, CSLA patterns, permutation tables, scratch) is
// built once at construction; nothing is allocated per call (a batch larger than max_batch grows the
// scratch once).
// CS4A: scales below the decision scale k_d run dense (backend); at k_d the kernel runs with every block
// listed and records the block mass per layer and head; the selection (tau, cap) and its map to every later
// scale give per-layer patterns kept for the rest of the image. On CUDA the executor does this on the device
// (no host sync; the patterns never leave the device unless asked for); on the CPU the runner does it with
// cs4a_select and Cs4aMapper. Both follow the same rule (attention/cs4a_rule.h) and give the same patterns.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "attention/pattern_cs4a.h"
#include "attention/pattern_csla.h"
#include "models/infinity/attention_runner.h"

namespace sparvar::infinity {

enum class AttentionMode { Dense, Csla, Cs4a };

std::string_view attention_mode_name(AttentionMode mode);  // "dense", "csla", "cs4a"
// Throws Error listing the modes on anything else.
AttentionMode parse_attention_mode(std::string_view name);

// What the runner saw at the CS4A decision scale of one layer (for `sparvar analyse` and tests).
struct Cs4aDecisionView {
  int layer = 0;
  int scale = 0;
  const ScaleLayouts* layouts = nullptr;  // decision scale's q / k layouts
  int64_t batch = 0, heads = 0;
  std::span<const float> mass;            // [batch, heads, q blocks, k blocks]: the kernel's block mass
  const BlockPattern* selected = nullptr; // the selection on the batch-averaged mass (per head)
};
// (On CUDA an observer costs a device sync per layer at k_d: the mass and the selection are downloaded.)

// Defaults put fidelity first: 64-token tiles (the finest the kernel runs efficiently), CSLA with 6 sink
// scales, a 2-token window in every earlier scale and a 3x3-tile own window; CS4A with tau 0.95, no cap,
// and the CSLA own-scale window added to the mapped patterns (locality the decision scale cannot see).
struct SparseAttentionOptions {
  SparseAttentionOptions() { cs4a.union_own_window = true; }

  CslaOptions csla;  // its q_tile / k_tile / dense_below_tokens are replaced by the fields below
  Cs4aOptions cs4a;  // its q_tile / k_tile are replaced by the fields below
  TileShape q_tile{8, 8};
  TileShape k_tile{8, 8};
  // Query scales with fewer tokens use the backend's dense attention (24x24 and below at 1M: ~6% of the
  // FLOPs, where a block kernel gains nothing). CS4A: scales below the decision scale always run dense, the
  // decision scale always through the kernel (it must record the mass).
  int64_t dense_below_tokens = 1024;
  // Dense mode: run the block-sparse kernel with every block listed (at scales >= dense_below_tokens)
  // instead of the backend's dense attention. For measuring the kernel and for tests.
  bool dense_as_block_sparse = false;
  // Keep q and the KV cache in padded tile order (cache_order(); CUDA bf16 and CPU f32), so the kernel reads them in
  // place and writes the token-major output itself: no per-call gather of the KV prefix, no scatter. Dense scales
  // gather their (small) key prefix back into row order for the backend's dense attention, so they compute what
  // the dense runner does. Off: row-major cache, gathered per call. The
  // environment variable SPARVAR_ATTN_IN_PLACE=0 turns it off too (for measuring both).
  bool in_place = true;
  int max_batch = 2;     // scratch is sized for this batch (CFG: 2 per image) at construction
  int cuda_kernel = 0;   // BlockSparseKernel of the CUDA kernel (0 = AUTO)
  int cpu_threads = 0;   // CPU path's thread pool (0 = all cores)
  std::function<void(const Cs4aDecisionView&)> on_cs4a_decision;  // optional observer
};

// Device-specific half of the runner (gather, kernel, scatter): attention_executor.h.
class AttentionExecutor;

class SparseAttentionRunner final : public AttentionRunner {
 public:
  SparseAttentionRunner(Backend& backend, AttentionMode mode, SparseAttentionOptions options,
                        const ScaleSchedule& schedule, int heads, int head_dim);
  ~SparseAttentionRunner() override;

  void self_attention(Backend& backend, const Tensor& q, const Tensor& k, const Tensor& v,
                      const SelfAttentionCall& call, Tensor& out) override;
  // Every scale but one: CS4A's decision scale when the decision needs the host (the CPU builds the patterns,
  // or an on_cs4a_decision observer wants the mass), which downloads and synchronises.
  bool capturable(int scale) const override;
  const CacheOrder* cache_order(DType dtype) const override;
  // Drops the host copies of this image's CS4A patterns (cs4a_layout downloads them again on demand) and
  // reports a bad device build.
  void end_image() override;

  AttentionMode mode() const { return mode_; }
  const SparseAttentionOptions& options() const { return options_; }
  // True when scale k goes through the block-sparse kernel.
  bool runs_block_sparse(int scale) const;
  // CS4A decision scale (-1 in other modes).
  int decision_scale() const { return decision_scale_; }
  // The static pattern of scale k (CSLA / dense-listed; null when k runs dense or the mode is CS4A).
  const BlockSparseLayout* static_layout(int scale) const;
  // The CS4A pattern of (layer, scale > k_d) chosen at this image's decision scale (null before it). On
  // CUDA a host copy is downloaded on first use after each image (synchronises; for analysis and tests).
  const BlockSparseLayout* cs4a_layout(int layer, int scale) const;
  // Scale k's layouts (q: scale k; k: scales 0..k) as this runner tiles them.
  const ScaleLayouts& layouts(int scale) const;

 private:
  void decide_cs4a(int layer, std::span<const float> mass, int64_t batch);
  void decide_cs4a_on_device(int layer, int64_t batch);
  std::vector<int> cs4a_slots(int layer) const;  // executor slots of the layer's later-scale patterns
  void build_cache_order(Backend& backend, int packed);
  void dense_in_cache_order(Backend& backend, const Tensor& q, const Tensor& k, const Tensor& v,
                            const SelfAttentionCall& call, Tensor& out);

  AttentionMode mode_;
  SparseAttentionOptions options_;
  ScaleSchedule schedule_;
  int heads_, head_dim_;
  int decision_scale_ = -1;
  std::vector<char> sparse_;                      // [scale]: runs through the kernel
  std::vector<ScaleLayouts> layouts_;             // [scale] (empty for dense scales)
  std::vector<std::unique_ptr<BlockSparseLayout>> static_;  // [scale]
  BlockSparseLayout decision_dense_;              // CS4A: every block listed at k_d
  std::vector<std::unique_ptr<Cs4aMapper>> mappers_;        // [scale > k_d]
  bool cs4a_on_device_ = false;                   // the executor builds CS4A patterns (CUDA)
  std::set<int> cs4a_decided_;                    // layers whose later-scale patterns exist
  // (layer, scale) -> this image's pattern: built here on the CPU; on CUDA a host copy made on demand
  // (cs4a_layout), dropped at the layer's next decision and at end_image.
  mutable std::map<std::pair<int, int>, BlockSparseLayout> cs4a_;
  std::vector<float> mass_, mass_avg_;            // decision-scale mass scratch
  std::unique_ptr<AttentionExecutor> exec_;
  // In place (options.in_place on an executor that can): the cache order; the dense scales' keys in row order
  // (cache rows [0, row_major_) already are; slot_of_row_ [total tokens] maps the rest, into rows_k_ / rows_v_,
  // [max_batch, heads, gathered_rows_, head dim]).
  bool in_place_ = false;
  CacheOrder order_;
  int64_t row_major_ = 0, gathered_rows_ = 0;
  Tensor slot_of_row_, rows_k_, rows_v_;
};

// Dense mode without dense_as_block_sparse gives a DenseAttentionRunner; everything else a
// SparseAttentionRunner for this schedule, head count and head dim (the CUDA kernel takes head dim 64 or
// 128 and 64- or 128-token tiles; anything else is an Error here, not at the first call).
std::unique_ptr<AttentionRunner> make_attention_runner(Backend& backend, AttentionMode mode,
                                                       const SparseAttentionOptions& options,
                                                       const ScaleSchedule& schedule, int heads, int head_dim);

}  // namespace sparvar::infinity
