// CS4A's per-image work on the GPU: from the decision scale's block mass (the dense call's, on the device) to
// the CSR pattern of every later scale, written straight into device buffers, on one stream, without a host
// sync. Same result as the CPU reference (batch average as the runner does it, cs4a_select, Cs4aMapper::map):
// both follow cs4a_rule.h. Kernels: cs4a_build.cu; tables: cs4a_plan.h (built once per resolution).
//
// A mass the CPU would reject (negative, non-finite, a row not summing to 1) cannot stop a GPU build: the row
// goes on without the bad values and the build counts it; check() turns the count into an Error once the
// build has finished (build() checks earlier builds without waiting), so it surfaces at most one call late.
//
// Ordering. A build reads the mass and writes the targets in `stream` order: whatever writes the mass or
// reads / rewrites a target must be ordered with `stream` by the caller (same stream, an event, or a host
// sync). Beware that the legacy default stream (plain cudaMemcpy / cudaMemset, stream 0) does not order a
// cudaStreamNonBlocking stream, that cudaMemset returns before it has run, and that cudaMemcpy from pageable
// memory returns once the data is staged, with the copy to the device possibly still in flight. Builds share
// the builder's scratch: a build on another stream than the previous one waits for it on the device (an
// event, no host sync), so builds of one builder never overlap.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <memory>
#include <span>

#include "attention/cs4a_plan.h"

namespace sparvar {

// Where one later scale's pattern goes: device buffers of at least the plan's sizes (row_offsets:
// heads * num_q_blocks + 1 entries; col_blocks: nnz_bound). The pattern is per head (pattern_heads = heads).
struct Cs4aDeviceTarget {
  int32_t* row_offsets = nullptr;
  int32_t* col_blocks = nullptr;
};

class Cs4aDeviceBuilder {
 public:
  // Uploads the plan's tables and allocates the scratch (synchronously; once per resolution).
  explicit Cs4aDeviceBuilder(Cs4aPlan plan);
  ~Cs4aDeviceBuilder();
  Cs4aDeviceBuilder(const Cs4aDeviceBuilder&) = delete;
  Cs4aDeviceBuilder& operator=(const Cs4aDeviceBuilder&) = delete;

  const Cs4aPlan& plan() const;

  // Enqueues the build on `stream`: mass [batch, heads, nq_d, nk_d] (device f32: the block mass of the decision
  // scale's dense, shared pattern), targets[i] receives plan().scales[i]'s pattern. First raises an Error
  // for an earlier build that has finished and was found bad (check()).
  void build(const float* mass, int batch, std::span<const Cs4aDeviceTarget> targets, cudaStream_t stream);

  // Host copy of the last build's decision rows, per head (waits for the last build, on whatever stream it
  // ran, and synchronises `stream`; for observers and tests).
  BlockPattern download_selection(cudaStream_t stream);

  // Raises an Error if a finished build saw a mass row the CPU would reject or overflowed a target (a bug).
  // wait: wait for the last build first; otherwise builds still running are left for a later check.
  void check(bool wait = false);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Host copy of the pattern a build wrote to `target` for plan.scales[scale_index] (synchronises `stream`: the
// build must be on `stream` or ordered before it).
BlockPattern download_cs4a_pattern(const Cs4aPlan& plan, int scale_index, const Cs4aDeviceTarget& target,
                                   cudaStream_t stream);

}  // namespace sparvar
