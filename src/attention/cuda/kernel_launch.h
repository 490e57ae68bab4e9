// Launchers of the kernel variants (one .cu each, so each compiles on its own).
#pragma once

#include "kernel_params.cuh"

#include <cuda_runtime.h>

#include <string>

namespace sparvar::attention_cuda {

struct LaunchShape {
  int batch, head_dim, k_block;
  // The shared kernel's split tail (split_tail.h): the 128-key steps of a typical work tile where every list is about
  // as long (near-dense patterns; 0: lists of unknown lengths, no split), and whether to split whenever the last wave
  // is partial (SPARVAR_BSA_SPLIT=on: tests; =off: never).
  int uniform_steps = 0;
  bool split_always = false;
  bool split_never = false;
};

// Launchers return the first CUDA error (attribute setting or launch); the C++ caller turns it into an Error.
// (fmt's consteval format strings do not compile under nvcc, so errors are raised in the .cpp.)
cudaError_t launch_simple(const LaunchShape& shape, const KernelParams& p, cudaStream_t stream);
bool pipelined_supports(const LaunchShape& shape);
// v2; computes block_mass when p.block_mass is set (a separate instantiation).
cudaError_t launch_pipelined(const LaunchShape& shape, const KernelParams& p, cudaStream_t stream);
// v4 "wide": the pipelined kernel with 128 keys (two listed 64-token blocks) per consumer step; every shape, no
// block_mass (p.block_mass must be null).
cudaError_t launch_wide(const LaunchShape& shape, const KernelParams& p, cudaStream_t stream);
// v5 "shared": one K/V stream per 128-row tile read by both consumer warpgroups (kernel_shared.cuh); q_block 128,
// or q_block 64 with k_block 64 (two query blocks per tile, their lists merged); no block_mass (shared_supports).
bool shared_supports(const LaunchShape& shape, const KernelParams& p);
int shared_pair_max_k_blocks(const LaunchShape& shape);  // pairs: the most key blocks a list may range over
cudaError_t launch_shared(const LaunchShape& shape, const KernelParams& p, cudaStream_t stream);

// The dynamic tile schedule's counter for launches on `stream` (tile_schedule.cuh, tile_counter.cu), or null
// (SPARVAR_BSA_SCHEDULE=static, or more than 64 streams have one on this device): the static order then.
// A graph recorded on one stream must not be replayed on another stream while that stream runs the kernel.
cudaError_t stream_tile_counter(cudaStream_t stream, int** counter);

// The split tail's arrival counters (kMaxSplitTailTiles pairs) and workspace (`bytes`, allocated at the first call
// for the stream, the same size after) for launches on `stream`; both null when none is available (more than 64
// streams, or no memory for the workspace): the launch then runs unsplit.
constexpr int kMaxSplitTailTiles = 256;
cudaError_t stream_split_workspace(cudaStream_t stream, size_t bytes, int** arrivals, float** workspace);

}  // namespace sparvar::attention_cuda
