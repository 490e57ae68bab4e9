// Shared by the GPU attention tests (plain executables, no gtest): CUDA_OK, failure counting, the skip where
// no GPU is present and the exit code.
#pragma once

#include <cuda_runtime.h>

#include <cstdio>
#include <cstdlib>
#include <string>

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
