// Shared by the GPU attention tests (plain executables, no gtest): CUDA_OK, failure counting, exceptions
// turned into failures, a gate that holds a stream, the skip where no GPU is present and the exit code.
#pragma once

#include <cuda_runtime.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

// A failed CUDA call ends the test at once (exit 2): whatever follows would only report its consequences.
#define CUDA_OK(call)                                                                                         \
  do {                                                                                                        \
    cudaError_t e_ = (call);                                                                                  \
    if (e_ != cudaSuccess) {                                                                                  \
      std::fprintf(stderr, "CUDA error %s at %s:%d: %s\n", cudaGetErrorString(e_), __FILE__, __LINE__, #call); \
      std::exit(2);                                                                                           \
    }                                                                                                         \
  } while (0)

namespace sparvar::test {

inline int failures = 0;

// A failed expectation is printed and counted, and the test goes on: one run reports every failure.
inline void expect(bool ok, const std::string& what) {
  if (!ok) {
    ++failures;
    std::fprintf(stderr, "FAIL: %s\n", what.c_str());
  }
}

// Runs fn(); an exception (a library Error) is a failure of `what`, printed and counted, not the end of the
// test binary.
template <class F>
void guarded(const std::string& what, F&& fn) {
  try {
    fn();
  } catch (const std::exception& e) {
    expect(false, what + ": " + e.what());
  } catch (...) {
    expect(false, what + ": unknown exception");
  }
}

// Holds a stream: work enqueued on it after hold() does not start before release() (a host function that
// blocks the stream's queue, cudaLaunchHostFunc). So a result read without proper ordering is read
// unfinished, deterministically, not once in a while. Before the release only calls that do not wait for
// the held work may be made (enqueues, event queries): one that waits would hang, so the host function
// gives up after `timeout` and timed_out() reports it (read it once the stream has been synchronised).
// release_after(delay) releases from another thread, to test calls that must wait. The destructor releases.
class StreamGate {
 public:
  explicit StreamGate(std::chrono::milliseconds timeout = std::chrono::seconds(30))
      : state_(std::make_shared<State>()) {
    state_->timeout = timeout;
  }
  StreamGate(const StreamGate&) = delete;
  StreamGate& operator=(const StreamGate&) = delete;
  ~StreamGate() {
    release();
    if (releaser_.joinable()) releaser_.join();
  }

  void hold(cudaStream_t stream) {
    // The host function owns a reference: the state outlives the gate if the stream runs late.
    auto* ref = new std::shared_ptr<State>(state_);
    const cudaError_t e = cudaLaunchHostFunc(stream, &StreamGate::wait, ref);
    if (e != cudaSuccess) delete ref;
    CUDA_OK(e);
  }
  void release() {
    {
      const std::lock_guard<std::mutex> lock(state_->m);
      state_->released = true;
    }
    state_->cv.notify_all();
  }
  void release_after(std::chrono::milliseconds delay) {
    if (releaser_.joinable()) releaser_.join();
    releaser_ = std::thread([state = state_, delay] {
      std::this_thread::sleep_for(delay);
      {
        const std::lock_guard<std::mutex> lock(state->m);
        state->released = true;
      }
      state->cv.notify_all();
    });
  }
  bool timed_out() const {
    const std::lock_guard<std::mutex> lock(state_->m);
    return state_->timed_out;
  }

 private:
  struct State {
    std::mutex m;
    std::condition_variable cv;
    bool released = false, timed_out = false;
    std::chrono::milliseconds timeout{0};
  };
  static void CUDART_CB wait(void* p) {  // no CUDA call in here (not allowed in a host function)
    const std::unique_ptr<std::shared_ptr<State>> ref(static_cast<std::shared_ptr<State>*>(p));
    State& s = **ref;
    std::unique_lock<std::mutex> lock(s.m);
    if (!s.cv.wait_for(lock, s.timeout, [&] { return s.released; })) s.timed_out = true;
  }

  std::shared_ptr<State> state_;
  std::thread releaser_;
};

constexpr int kSkipped = 77;  // ctest SKIP_RETURN_CODE

// True, having printed "skipped: no CUDA device", where there is no GPU (CI): main then returns kSkipped.
inline bool no_cuda_device() {
  int devices = 0;
  if (cudaGetDeviceCount(&devices) == cudaSuccess && devices > 0) return false;
  std::printf("skipped: no CUDA device\n");
  return true;
}

// main's exit code: 1 after any failure, 0 when all passed; the verdict is printed under the test's name.
inline int finish(const char* test) {
  if (failures) {
    std::printf("%s: %d FAILURES\n", test, failures);
    return 1;
  }
  std::printf("%s: all passed\n", test);
  return 0;
}

}  // namespace sparvar::test
