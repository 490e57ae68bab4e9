// xattn_bench: the backend's attention() at Infinity's cross-attention shapes (image tokens attending to a short
// text): q and out token-major [2, N, H, 128], K/V [2, H, Nk, 128] with per-item kv_lengths, bf16; N in
// {1024, 2304, 4096} (the last scales), H in {16, 28} (Infinity-2B, 8B), Nk in {32, 64}.
// Each path runs on its own backend, made with its settings: the short-key kernel (the default), the flash kernel
// (SPARVAR_SHORT_ATTENTION=0) and cuDNN's SDPA (SPARVAR_ATTENTION=cudnn; a problem cuDNN refused would quietly
// run ours, so compare its column with care). Per shape: random inputs (uniform, never zeros) in enough rotating
// sets to exceed the L2 cache, warm-up calls, then --reps calls each between two CUDA events, all queued behind a
// held stream (bench/stream_blocker.h), so host-side launch costs stay out of the times. Prints the median
// per call in us, the effective bandwidth of what the call must move (Q read + O write) and flash / short.
//   xattn_bench [--reps R] [--warmup W] [--no-cudnn]
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_check.h"
#include "random_host.h"
#include "stream_blocker.h"

using namespace sparvar;
using sparvar::bench::random_host;

namespace {

constexpr int64_t kBatch = 2;  // classifier-free guidance: conditional and unconditional
constexpr int64_t kHeadDim = 128;
constexpr int64_t kL2Bytes = int64_t{50} << 20;         // H100 / H200

struct XShape {
  int64_t n, heads, nk;
  std::vector<int32_t> kv;  // per batch item
};

struct Path {
  const char* name;
  const char* attention;   // SPARVAR_ATTENTION
  const char* short_keys;  // SPARVAR_SHORT_ATTENTION
};

int64_t moved_bytes(const XShape& s) { return 2 * kBatch * s.n * s.heads * kHeadDim * 2; }  // Q + O, bf16

std::string kv_string(const std::vector<int32_t>& kv) {
  std::string s;
  for (int32_t l : kv) {
    if (!s.empty()) s += ',';
    s += std::to_string(l);
  }
  return s;
}

// The median time of one attention() call at shape s, in microseconds.
double time_shape(Backend& be, cudaStream_t stream, const XShape& s, int reps, int warmup,
                  bench::StreamBlocker& blocker) {
  const int sets = static_cast<int>(std::clamp<int64_t>(3 * kL2Bytes / moved_bytes(s) + 1, 2, 16));
  std::vector<Tensor> qs, ks, vs, os;
  for (int r = 0; r < sets; ++r) {
    const uint64_t seed = 3 * static_cast<uint64_t>(r) + 1;
    qs.push_back(be.upload(random_host({kBatch, s.n, s.heads, kHeadDim}, seed, 1.0f), DType::BF16));
    ks.push_back(be.upload(random_host({kBatch, s.heads, s.nk, kHeadDim}, seed + 1, 1.0f), DType::BF16));
    vs.push_back(be.upload(random_host({kBatch, s.heads, s.nk, kHeadDim}, seed + 2, 1.0f), DType::BF16));
    os.push_back(be.empty({kBatch, s.n, s.heads, kHeadDim}, DType::BF16));
  }
  AttentionParams params;
  params.softmax_scale = 1.0f / std::sqrt(float(kHeadDim));
  params.kv_lengths = s.kv;
  params.q_tokens_major = true;
  params.out_tokens_major = true;
  auto call = [&](int i) { be.attention(qs[i % sets], ks[i % sets], vs[i % sets], params, os[i % sets]); };
  for (int i = 0; i < warmup; ++i) call(i);
  be.synchronize();
  return 1000.0 * bench::median_call_ms(stream, blocker, reps, call);
}

}  // namespace

int main(int argc, char** argv) {
  int reps = 50, warmup = 10;
  bool with_cudnn = true;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--reps") == 0 && i + 1 < argc) reps = std::max(1, std::atoi(argv[++i]));
    else if (std::strcmp(argv[i], "--warmup") == 0 && i + 1 < argc) warmup = std::max(0, std::atoi(argv[++i]));
    else if (std::strcmp(argv[i], "--no-cudnn") == 0) with_cudnn = false;
    else {
      std::fprintf(stderr, "usage: %s [--reps R] [--warmup W] [--no-cudnn]\n", argv[0]);
      return 2;
    }
  }
  if (!cuda_available()) {
    std::printf("skipped: no CUDA device\n");
    return 0;
  }
  std::vector<XShape> shapes;
  for (int64_t n : {1024, 2304, 4096})
    for (int64_t heads : {16, 28}) {
      shapes.push_back({n, heads, 32, {32, 20}});
      shapes.push_back({n, heads, 64, {64, 50}});
    }
  std::vector<Path> paths = {{"short", "auto", "1"}, {"flash", "auto", "0"}};
  if (with_cudnn) paths.push_back({"cudnn", "cudnn", "1"});

  std::vector<std::vector<double>> us(paths.size());  // [path][shape]
  try {
    for (size_t p = 0; p < paths.size(); ++p) {
      // Both settings are read when the backend is made (SPARVAR_ATTENTION: at its first attention call).
      setenv("SPARVAR_ATTENTION", paths[p].attention, 1);
      setenv("SPARVAR_SHORT_ATTENTION", paths[p].short_keys, 1);
      auto backend = make_cuda_backend(0);
      if (p == 0) std::fprintf(stderr, "device: %s\n", backend->name().c_str());
      const cudaStream_t stream = dynamic_cast<cuda::CudaBackend&>(*backend).stream();
      bench::StreamBlocker blocker;
      for (const XShape& s : shapes) us[p].push_back(time_shape(*backend, stream, s, reps, warmup, blocker));
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }

  std::printf("bf16, B=%lld, D=%lld, q/out token-major; median of %d calls; GB/s = (Q read + O write) / time\n",
              static_cast<long long>(kBatch), static_cast<long long>(kHeadDim), reps);
  std::printf("%5s %3s %3s %-6s", "N", "H", "Nk", "kv");
  for (const Path& p : paths) std::printf(" %9s", (std::string(p.name) + " us").c_str());
  for (const Path& p : paths) std::printf(" %11s", (std::string(p.name) + " GB/s").c_str());
  std::printf(" %11s\n", "flash/short");
  for (size_t i = 0; i < shapes.size(); ++i) {
    const XShape& s = shapes[i];
    std::printf("%5lld %3lld %3lld %-6s", static_cast<long long>(s.n), static_cast<long long>(s.heads),
                static_cast<long long>(s.nk), kv_string(s.kv).c_str());
    for (size_t p = 0; p < paths.size(); ++p) std::printf(" %9.1f", us[p][i]);
    for (size_t p = 0; p < paths.size(); ++p) std::printf(" %11.0f", double(moved_bytes(s)) / (us[p][i] * 1e3));
    std::printf(" %11.2f\n", us[1][i] / us[0][i]);
  }
  return 0;
}
