// Instantiations and launch of the phase-2 (pipelined, persistent) kernel.
#include "pipelined_launch.cuh"

namespace sparvar::attention_cuda {

// Every shape (128-token key blocks as two 64-token halves), with or without block mass.
bool pipelined_supports(const LaunchShape&) { return true; }

// The block-mass variant is its own instantiation, so calls without it pay nothing for it.
cudaError_t launch_pipelined(const LaunchShape& shape, const KernelParams& p, cudaStream_t stream) {
  const bool mass = p.block_mass != nullptr;
  if (shape.head_dim == 128)
    return mass ? launch_on_lanes<128>(pipelined_block_sparse_kernel<128, true>, shape, p, stream)
                : launch_on_lanes<128>(pipelined_block_sparse_kernel<128, false>, shape, p, stream);
  return mass ? launch_on_lanes<64>(pipelined_block_sparse_kernel<64, true>, shape, p, stream)
              : launch_on_lanes<64>(pipelined_block_sparse_kernel<64, false>, shape, p, stream);
}

}  // namespace sparvar::attention_cuda
