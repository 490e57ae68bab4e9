// gemm_bench: times our linear (cuBLASLt, bias/GELU epilogues) at Infinity's GEMM shapes, BF16.
// Per shape: 3 rotating input sets (x, w, bias; larger than L2 together), warm-up (includes our first-call
// algorithm choice), then CUDA events around each of --reps calls on the backend's stream; the median is
// reported. Inputs are random (uniform in [-1, 1)), never zeros. Output: one CSV line per shape:
//   name,M,K,N,act,median_ms,tflops
// Host code only (compiled as C++): the kernels it times live in the CUDA backend.
//   gemm_bench [--tokens M] [--reps R] [--warmup W]
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_check.h"
#include "random_host.h"

using namespace sparvar;
using sparvar::bench::random_host;

namespace {

struct Shape3 {
  const char* name;
  int64_t k, n;
  Activation act;
};

}  // namespace

int main(int argc, char** argv) {
  int64_t tokens = 8192;  // 2 (CFG) x 4096 tokens
  int reps = 50, warmup = 10;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--tokens") == 0) tokens = std::atoll(argv[i + 1]);
    else if (std::strcmp(argv[i], "--reps") == 0) reps = std::atoi(argv[i + 1]);
    else if (std::strcmp(argv[i], "--warmup") == 0) warmup = std::atoi(argv[i + 1]);
  }
  if (!cuda_available()) {
    std::printf("skipped: no CUDA device\n");
    return 0;
  }
  try {
    auto backend = make_cuda_backend(0);
    auto* cuda_be = dynamic_cast<cuda::CudaBackend*>(backend.get());
    const cudaStream_t stream = cuda_be->stream();
    std::fprintf(stderr, "device: %s\n", backend->name().c_str());
    const std::vector<Shape3> shapes = {
        {"8B qkv", 3584, 3 * 3584, Activation::None},      {"8B proj", 3584, 3584, Activation::None},
        {"8B fc1+gelu", 3584, 4 * 3584, Activation::GeluTanh}, {"8B fc2", 4 * 3584, 3584, Activation::None},
        {"2B qkv", 2048, 3 * 2048, Activation::None},      {"2B proj", 2048, 2048, Activation::None},
        {"2B fc1+gelu", 2048, 4 * 2048, Activation::GeluTanh}, {"2B fc2", 4 * 2048, 2048, Activation::None},
    };
    cudaEvent_t start, stop;
    CUDA_CHECK(cudaEventCreate(&start));
    CUDA_CHECK(cudaEventCreate(&stop));
    std::printf("name,M,K,N,act,median_ms,tflops\n");
    for (const Shape3& s : shapes) {
      constexpr int kSets = 3;
      std::vector<Tensor> xs, ws, bs, ys;
      for (int r = 0; r < kSets; ++r) {
        xs.push_back(backend->upload(random_host({tokens, s.k}, 3 * r + 1, 1.0f), DType::BF16));
        ws.push_back(backend->upload(random_host({s.n, s.k}, 3 * r + 2, 0.05f), DType::BF16));
        bs.push_back(backend->upload(random_host({s.n}, 3 * r + 3, 1.0f), DType::BF16));
        ys.push_back(backend->empty({tokens, s.n}, DType::BF16));
      }
      for (int i = 0; i < warmup; ++i) backend->linear(xs[i % kSets], ws[i % kSets], &bs[i % kSets], s.act, ys[i % kSets]);
      backend->synchronize();
      std::vector<float> ms(static_cast<size_t>(reps));
      for (int i = 0; i < reps; ++i) {
        const int r = i % kSets;
        CUDA_CHECK(cudaEventRecord(start, stream));
        backend->linear(xs[r], ws[r], &bs[r], s.act, ys[r]);
        CUDA_CHECK(cudaEventRecord(stop, stream));
        CUDA_CHECK(cudaEventSynchronize(stop));
        CUDA_CHECK(cudaEventElapsedTime(&ms[static_cast<size_t>(i)], start, stop));
      }
      std::sort(ms.begin(), ms.end());
      const double median = ms[ms.size() / 2];
      const double tflops = 2.0 * double(tokens) * double(s.k) * double(s.n) / (median * 1e-3) / 1e12;
      std::printf("%s,%lld,%lld,%lld,%s,%.4f,%.1f\n", s.name, static_cast<long long>(tokens),
                  static_cast<long long>(s.k), static_cast<long long>(s.n),
                  s.act == Activation::GeluTanh ? "gelu" : "none", median, tflops);
      std::fflush(stdout);
    }
    CUDA_CHECK(cudaEventDestroy(start));
    CUDA_CHECK(cudaEventDestroy(stop));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
