// The shared kernel's instantiations with the split tail (split_tail.h), apart from launch_shared.cu so that the two
// compile in parallel.
#include "kernel_shared.cuh"

namespace sparvar::attention_cuda {

template cudaError_t run_shared_kernel<64, false, true>(const SharedKernel<64, false>::Params&, cudaStream_t);
template cudaError_t run_shared_kernel<64, true, true>(const SharedKernel<64, true>::Params&, cudaStream_t);
template cudaError_t run_shared_kernel<128, false, true>(const SharedKernel<128, false>::Params&, cudaStream_t);
template cudaError_t run_shared_kernel<128, true, true>(const SharedKernel<128, true>::Params&, cudaStream_t);

}  // namespace sparvar::attention_cuda
