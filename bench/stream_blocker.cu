#include "stream_blocker.h"

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <vector>

#include "backend/cuda/cuda_check.h"

namespace sparvar::bench {

namespace {
constexpr long long kSpinLimitCycles = 4'000'000'000LL;  // ~2 s at the H100's clock

__global__ void spin_until_released(const volatile int* flag, int* timed_out) {
  const long long start = clock64();
  while (*flag == 0) {
    if (clock64() - start > kSpinLimitCycles) {
      *timed_out = 1;
      return;
    }
  }
}
}  // namespace

StreamBlocker::StreamBlocker() {
  void* flag = nullptr;
  void* timed_out = nullptr;
  CUDA_CHECK(cudaHostAlloc(&flag, sizeof(int), cudaHostAllocMapped));
  CUDA_CHECK(cudaHostAlloc(&timed_out, sizeof(int), cudaHostAllocMapped));
  flag_ = static_cast<volatile int*>(flag);
  timed_out_ = static_cast<int*>(timed_out);
  *flag_ = 1;
  *timed_out_ = 0;
}

StreamBlocker::~StreamBlocker() {
  (void)cudaFreeHost(const_cast<int*>(flag_));
  (void)cudaFreeHost(timed_out_);
}

void StreamBlocker::block(cudaStream_t stream) {
  *flag_ = 0;
  *timed_out_ = 0;
  std::atomic_thread_fence(std::memory_order_seq_cst);
  int* flag_dev = nullptr;
  int* timed_out_dev = nullptr;
  CUDA_CHECK(cudaHostGetDevicePointer(reinterpret_cast<void**>(&flag_dev), const_cast<int*>(flag_), 0));
  CUDA_CHECK(cudaHostGetDevicePointer(reinterpret_cast<void**>(&timed_out_dev), timed_out_, 0));
  spin_until_released<<<1, 1, 0, stream>>>(flag_dev, timed_out_dev);
  CUDA_CHECK_LAUNCH();
}

void StreamBlocker::release() {
  std::atomic_thread_fence(std::memory_order_seq_cst);
  *flag_ = 1;
}

bool StreamBlocker::timed_out() { return *static_cast<volatile int*>(timed_out_) != 0; }

double median_call_ms(cudaStream_t stream, StreamBlocker& blocker, int reps, const std::function<void(int)>& call) {
  std::vector<cudaEvent_t> start(static_cast<size_t>(reps)), stop(static_cast<size_t>(reps));
  for (int i = 0; i < reps; ++i) {
    CUDA_CHECK(cudaEventCreate(&start[static_cast<size_t>(i)]));
    CUDA_CHECK(cudaEventCreate(&stop[static_cast<size_t>(i)]));
  }
  blocker.block(stream);
  for (int i = 0; i < reps; ++i) {
    CUDA_CHECK(cudaEventRecord(start[static_cast<size_t>(i)], stream));
    call(i);
    CUDA_CHECK(cudaEventRecord(stop[static_cast<size_t>(i)], stream));
  }
  blocker.release();
  CUDA_CHECK(cudaStreamSynchronize(stream));
  if (blocker.timed_out()) std::fprintf(stderr, "warning: the stream blocker timed out; timings include host gaps\n");
  std::vector<float> ms(static_cast<size_t>(reps));
  for (size_t i = 0; i < ms.size(); ++i) {
    CUDA_CHECK(cudaEventElapsedTime(&ms[i], start[i], stop[i]));
    CUDA_CHECK(cudaEventDestroy(start[i]));
    CUDA_CHECK(cudaEventDestroy(stop[i]));
  }
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

}  // namespace sparvar::bench
