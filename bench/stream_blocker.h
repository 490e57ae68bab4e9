// Holds a stream back while the host queues the calls to time, so their CUDA events measure the kernels and not the
// host's launch rate (a 3 us kernel launched one by one would otherwise time the ~4 us launch call). block() queues a
// kernel that spins until release() (or ~2 s, so a mistake cannot hang the run); kept free of fmt and core headers
// (compiled by nvcc).
#pragma once

#include <cuda_runtime.h>

#include <functional>

namespace sparvar::bench {

class StreamBlocker {
 public:
  StreamBlocker();
  ~StreamBlocker();
  StreamBlocker(const StreamBlocker&) = delete;
  StreamBlocker& operator=(const StreamBlocker&) = delete;

  void block(cudaStream_t stream);
  void release();
  // Whether the last block() ran into its time limit before release() (then the first timings include host gaps).
  bool timed_out();

 private:
  volatile int* flag_ = nullptr;  // host-mapped: 1 = released
  int* timed_out_ = nullptr;      // host-mapped: set by the kernel at its time limit
};

// Median milliseconds of call(0) .. call(reps - 1), each between its own pair of CUDA events on `stream`, all queued
// behind blocker.block(stream) so the events see the GPU's time only (warns on stderr if the blocker timed out).
double median_call_ms(cudaStream_t stream, StreamBlocker& blocker, int reps, const std::function<void(int)>& call);

}  // namespace sparvar::bench
