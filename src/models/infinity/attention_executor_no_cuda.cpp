// Builds without CUDA: the CUDA executor cannot exist.
#include "core/error.h"
#include "models/infinity/attention_executor.h"

namespace sparvar::infinity {

std::unique_ptr<AttentionExecutor> make_cuda_attention_executor(Backend& backend, int, int, int) {
  fail("sparse attention on {}: this build has no CUDA (configure with -DSPARVAR_CUDA=ON)", backend.name());
}

}  // namespace sparvar::infinity
