// Launchers of the kernel variants (one .cu each, so each compiles on its own).
#pragma once

#include "kernel_params.cuh"

#include <cuda_runtime.h>

#include <string>

namespace sparvar::attention_cuda {

struct LaunchShape {
  int batch, head_dim, k_block;
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

}  // namespace sparvar::attention_cuda
