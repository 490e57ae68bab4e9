// Instantiations and launch of the phase-4 (wide: 128 keys per consumer step) kernel. No block mass: the caller
// sends block-mass calls to the pipelined kernel.
#include "kernel_wide.cuh"
#include "pipelined_launch.cuh"

namespace sparvar::attention_cuda {

cudaError_t launch_wide(const LaunchShape& shape, const KernelParams& p, cudaStream_t stream) {
  int* counter = nullptr;  // the dynamic tile schedule's (tile_schedule.cuh)
  const cudaError_t status = stream_tile_counter(stream, &counter);
  if (status != cudaSuccess) return status;
  if (shape.head_dim == 128) return launch_on_lanes<128>(wide_block_sparse_kernel<128>, shape, p, stream, counter);
  return launch_on_lanes<64>(wide_block_sparse_kernel<64>, shape, p, stream, counter);
}

}  // namespace sparvar::attention_cuda
