// The CUDA backend's tensor allocator (src/backend/cuda/device_stream.h): stream-ordered reuse keeps results right,
// a tensor may outlive its backend, the counters, out-of-memory as a sparvar::Error, SPARVAR_CUDA_ALLOC=malloc, and
// allocations and frees inside a graph capture. Skipped without a GPU.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <optional>
#include <set>
#include <string>

#include "backend/backend.h"
#include "backend/cuda/cuda_backend.h"
#include "core/error.h"
#include "core/philox.h"

namespace sparvar {
namespace {

Tensor host_floats(int64_t n, uint64_t stream) {
  Tensor t = Tensor::empty({n}, DType::F32);
  PhiloxStream(5, stream).fill_normal(t.data_as<float>(), static_cast<uint64_t>(n));
  return t;
}

// Sets SPARVAR_CUDA_ALLOC for the backends made in its scope (read by the backend's constructor).
class AllocEnv {
 public:
  explicit AllocEnv(const char* value) {
    if (const char* old = std::getenv(kName)) old_ = old;
    setenv(kName, value, 1);
  }
  ~AllocEnv() {
    if (old_) {
      setenv(kName, old_->c_str(), 1);
    } else {
      unsetenv(kName);
    }
  }

 private:
  static constexpr const char* kName = "SPARVAR_CUDA_ALLOC";
  std::optional<std::string> old_;
};

cuda::AllocMode mode_of(Backend& be) { return dynamic_cast<cuda::CudaBackend&>(be).alloc_mode(); }

// y = x * x + x through a temporary freed at the end of each iteration, with no host sync in between: a block
// reused before the work of its previous owner ran would change the results.
void check_reuse(Backend& be) {
  constexpr int kRounds = 12;
  constexpr int64_t n = 1 << 18;
  std::vector<Tensor> hosts, xs, ys;
  for (int i = 0; i < kRounds; ++i) {
    hosts.push_back(host_floats(n, static_cast<uint64_t>(i)));
    xs.push_back(be.upload(hosts.back(), DType::F32));
  }
  std::set<void*> temporaries;
  for (int i = 0; i < kRounds; ++i) {
    Tensor tmp = be.empty({n}, DType::F32);
    temporaries.insert(tmp.data());
    be.mul(xs[static_cast<size_t>(i)], xs[static_cast<size_t>(i)], tmp);
    ys.push_back(be.empty({n}, DType::F32));
    be.add(tmp, xs[static_cast<size_t>(i)], ys.back());
  }
  if (mode_of(be) == cuda::AllocMode::Pool) {
    EXPECT_LT(temporaries.size(), static_cast<size_t>(kRounds)) << "the pool never reused a freed block";
  }
  for (int i = 0; i < kRounds; ++i) {
    const std::vector<float> got = be.download(ys[static_cast<size_t>(i)]).to_floats();
    const float* x = hosts[static_cast<size_t>(i)].data_as<float>();
    for (int64_t j = 0; j < n; ++j) {
      const float want = x[j] * x[j] + x[j];
      ASSERT_NEAR(got[static_cast<size_t>(j)], want, 1e-6f * (1.0f + std::fabs(want))) << "round " << i << " at " << j;
    }
  }
}

TEST(CudaAlloc, ReuseAfterFreeKeepsResults) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA device in this build/machine";
  auto be = make_cuda_backend();
  EXPECT_EQ(mode_of(*be), cuda::AllocMode::Pool);
  check_reuse(*be);
}

TEST(CudaAlloc, TensorOutlivesItsBackend) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA device in this build/machine";
  const size_t before = gpu_memory_stats().current;
  const Tensor host = host_floats(4096, 20);
  Tensor y;
  {
    auto be = make_cuda_backend();
    const Tensor x = be->upload(host, DType::F32);
    y = be->empty({4096}, DType::F32);
    be->mul(x, x, y);
  }  // the backend is gone (it waited for its stream); y holds the stream until it goes too
  EXPECT_EQ(gpu_memory_stats().current, before + y.nbytes());
  auto other = make_cuda_backend();
  const std::vector<float> got = other->download(y).to_floats();
  for (int64_t i = 0; i < host.numel(); ++i) {
    const float v = host.data_as<float>()[i];
    ASSERT_EQ(got[static_cast<size_t>(i)], v * v) << i;
  }
  const size_t with_other = gpu_memory_stats().current;  // the new backend holds its own scratch
  y = Tensor();  // freed on the first backend's stream
  EXPECT_EQ(gpu_memory_stats().current, with_other - 4096 * sizeof(float));
  check_reuse(*other);
}

TEST(CudaAlloc, CountersFollowAllocationsAndFrees) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA device in this build/machine";
  auto be = make_cuda_backend();
  be->synchronize();
  const size_t base = gpu_memory_stats().current;
  reset_gpu_memory_peak();
  const size_t big = size_t{64} << 20;
  {
    const Tensor a = be->empty({1000}, DType::F32);
    const Tensor b = be->empty({3, 333}, DType::BF16);
    const Tensor c = be->empty({static_cast<int64_t>(big / 4)}, DType::F32);
    const GpuMemoryStats s = gpu_memory_stats();
    EXPECT_EQ(s.current, base + 4000 + 1998 + big);
    EXPECT_EQ(s.peak, base + 4000 + 1998 + big);
    EXPECT_GE(s.pool_reserved, big);  // the pool holds at least the live blocks
  }
  GpuMemoryStats s = gpu_memory_stats();
  EXPECT_EQ(s.current, base);
  EXPECT_EQ(s.peak, base + 4000 + 1998 + big);
  EXPECT_GE(s.pool_reserved, big);  // freed blocks stay cached
  EXPECT_GE(s.pool_reserved_peak, s.pool_reserved);
  reset_gpu_memory_peak();
  s = gpu_memory_stats();
  EXPECT_EQ(s.peak, base);
  EXPECT_GE(s.pool_reserved_peak, s.pool_reserved);
}

TEST(CudaAlloc, OutOfMemoryIsAnError) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA device in this build/machine";
  for (const char* mode : {"pool", "malloc"}) {
    const AllocEnv env(mode);
    auto be = make_cuda_backend();
    be->synchronize();
    const size_t before = gpu_memory_stats().current;
    const int64_t absurd = int64_t{1} << 46;  // 256 TiB of f32
    try {
      (void)be->empty({absurd}, DType::F32);
      ADD_FAILURE() << mode << ": no error for a 256 TiB tensor";
    } catch (const Error& e) {
      const std::string message = e.what();
      EXPECT_NE(message.find("out of GPU memory allocating 281474976710656 bytes for tensor f32["), std::string::npos)
          << mode << ": " << message;
      EXPECT_NE(message.find("(free "), std::string::npos) << mode << ": " << message;
    }
    EXPECT_EQ(gpu_memory_stats().current, before) << mode;
    check_reuse(*be);  // the backend still works
  }
}

TEST(CudaAlloc, MallocSwitchAllocatesOutsideThePool) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA device in this build/machine";
  {
    const AllocEnv env("malloc");
    auto be = make_cuda_backend();
    EXPECT_EQ(mode_of(*be), cuda::AllocMode::Malloc);
    const size_t reserved = gpu_memory_stats().pool_reserved;
    {
      const Tensor big = be->empty({int64_t{1} << 26}, DType::F32);  // 256 MiB
      EXPECT_EQ(gpu_memory_stats().pool_reserved, reserved);
    }
    check_reuse(*be);
    EXPECT_EQ(gpu_memory_stats().pool_reserved, reserved);
  }
  {
    const AllocEnv env("pool");
    EXPECT_EQ(mode_of(*make_cuda_backend()), cuda::AllocMode::Pool);
  }
  const AllocEnv env("bogus");
  try {
    (void)make_cuda_backend();
    ADD_FAILURE() << "SPARVAR_CUDA_ALLOC=bogus was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("SPARVAR_CUDA_ALLOC=bogus"), std::string::npos) << e.what();
  }
}

// Inside a capture, an allocation is a plain cudaMalloc (no graph memory node): the recording writes the tensor
// allocated during the capture at every replay.
TEST(CudaAlloc, AllocationDuringCaptureOutlivesIt) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA device in this build/machine";
  auto be = make_cuda_backend();
  const Tensor host = host_floats(1024, 30);
  const Tensor x = be->upload(host, DType::F32);
  Tensor out;
  const auto work = be->record([&] {
    out = be->empty({1024}, DType::F32);
    be->mul(x, x, out);
  });
  ASSERT_TRUE(work->valid());
  ASSERT_TRUE(out.defined());
  work->replay();
  const std::vector<float> got = be->download(out).to_floats();
  for (int64_t i = 0; i < host.numel(); ++i) {
    const float v = host.data_as<float>()[i];
    ASSERT_EQ(got[static_cast<size_t>(i)], v * v) << i;
  }
}

// A tensor freed inside a capture is freed once the capture has ended, and the recording is invalid (it may read
// the freed memory); the stream stays usable.
TEST(CudaAlloc, FreeDuringCaptureWaitsForItsEnd) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA device in this build/machine";
  auto be = make_cuda_backend();
  const Tensor x = be->upload(host_floats(1024, 31), DType::F32);
  Tensor y = be->empty({1024}, DType::F32);
  Tensor doomed = be->empty({1 << 20}, DType::F32);
  be->synchronize();
  const size_t held = gpu_memory_stats().current;
  std::unique_ptr<RecordedWork> work;
  ASSERT_NO_THROW(work = be->record([&] {
    be->activation(x, Activation::Silu, y);
    doomed = Tensor();
  }));
  EXPECT_FALSE(work->valid());
  EXPECT_EQ(gpu_memory_stats().current, held - (size_t{4} << 20));
  check_reuse(*be);
}

}  // namespace
}  // namespace sparvar
