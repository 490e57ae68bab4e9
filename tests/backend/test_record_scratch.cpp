// CUDA graphs and the backend's scratch: a recording is invalid once a DeviceBuffer it may point into was
// reallocated (scratch_generation), and its replay refuses instead of touching freed memory. CUDA builds only;
// skipped without a GPU.
#include <gtest/gtest.h>

#include "backend/backend.h"
#include "backend/cuda/device_buffer.h"
#include "core/error.h"

namespace sparvar {
namespace {

TEST(RecordedWorkCuda, InvalidOnceScratchMoves) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA device in this build/machine";
  auto be = make_cuda_backend();
  Tensor x = be->upload(Tensor::from_floats({4}, {1, 2, 3, 4}), DType::F32);
  Tensor y = be->empty({4}, DType::F32);
  const auto work = be->record([&] { be->activation(x, Activation::Silu, y); });
  cuda::DeviceBuffer scratch(256, "test scratch");
  work->replay();  // a fresh buffer moves nothing
  ASSERT_TRUE(work->valid());
  scratch.reserve(1 << 20, "test scratch");  // grows: the old block is given back
  EXPECT_FALSE(work->valid());
  EXPECT_THROW(work->replay(), Error);
  const auto again = be->record([&] { be->activation(x, Activation::Silu, y); });
  EXPECT_TRUE(again->valid());
  again->replay();
  be->synchronize();
}

}  // namespace
}  // namespace sparvar
