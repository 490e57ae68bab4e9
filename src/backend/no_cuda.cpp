#include "backend/backend.h"

namespace sparvar {

std::unique_ptr<Backend> make_cuda_backend(int) {
  fail("this sparvar was built without CUDA (configure with nvcc available and -DSPARVAR_CUDA=ON)");
}

bool cuda_available() { return false; }

}  // namespace sparvar
