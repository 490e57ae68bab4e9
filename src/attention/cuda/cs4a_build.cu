// Launch of the GPU CS4A builder's kernels (cs4a_kernels.cuh).
#include "cs4a_build.h"

#include "cs4a_kernels.cuh"

namespace sparvar::attn_cuda {

cudaError_t launch_cs4a_build(const Cs4aBuildArgs& a, cudaStream_t stream) {
  if (!cs4a::args_ok(a)) return cudaErrorInvalidValue;
  const cs4a::LaunchShape l = cs4a::launch_shape(a);
  if (l.select_smem > 48 * 1024) {
    const cudaError_t status = cudaFuncSetAttribute(cs4a::cs4a_select_expand_kernel,
                                                    cudaFuncAttributeMaxDynamicSharedMemorySize, l.select_smem);
    if (status != cudaSuccess) return status;
  }
  cs4a::cs4a_select_expand_kernel<<<l.select_blocks, l.select_threads, l.select_smem, stream>>>(a, l.max_words,
                                                                                               l.warp_bytes);
  const cudaError_t status = cudaGetLastError();
  if (status != cudaSuccess) return status;
  if (l.write_smem > 48 * 1024) {
    const cudaError_t attr = cudaFuncSetAttribute(cs4a::cs4a_write_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                                  l.write_smem);
    if (attr != cudaSuccess) return attr;
  }
  cs4a::cs4a_write_kernel<<<dim3(l.write_blocks_x, l.write_blocks_y, l.write_blocks_z), l.write_threads, l.write_smem,
                            stream>>>(a, l.max_q);
  return cudaGetLastError();
}

}  // namespace sparvar::attn_cuda
