// skinny_bench: the skinny GEMM (src/backend/cuda/gemm_skinny.h) against cuBLASLt at Infinity's first-scale linear
// layers: M = 2, 8, 16, 32 rows (1x1, 2x2 and 4x4 with CFG) against the 8B and 2B weights (qkv, proj, fc1 + GELU,
// fc2, each with its bias), BF16.
//
// Both paths go through CudaBackend::linear: one backend made with SPARVAR_SKINNY_GEMM=0 (cuBLASLt, tuned on its
// first call as in the engine), one with SPARVAR_SKINNY_GEMM_ROWS=32 (the kernel for every M here). Per shape and
// path: rotating weight / bias sets of at least 3x the L2 in total (so every call streams its weight from HBM, as in
// the model, where each layer's weights evict the last's), one warm-up call per set, then --reps calls queued behind a
// blocked stream (bench/stream_blocker.h) each between its own pair of CUDA events; the median is reported, with the
// effective bandwidth weight bytes / time.
//   skinny_bench [--m 2,8,16,32] [--model 8b|2b|all] [--reps R] [--sweep]
// Output (CSV):
//   name,M,K,N,act,cublaslt_us,cublaslt_tbps,skinny_us,skinny_tbps,speedup,config
//   total,<model>,M,cublaslt_us,skinny_us,speedup                 (the four layers of one block)
// --sweep also times every kernel configuration (gemm_skinny.h's SkinnyConfig) per shape, launched directly:
//   sweep,name,M,k_warps,cluster,unroll,us,tbps
// config is the planner's choice (k_warps/cluster/unroll), as run by the skinny backend.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/gemm_skinny.h"
#include "backend/cuda/op_helpers.h"
#include "random_host.h"
#include "stream_blocker.h"

using namespace sparvar;
using sparvar::bench::random_host;

namespace {

struct LinearShape {
  const char* model;
  const char* name;
  int64_t k, n;
  Activation act;
};

// One path's tensors: `sets` weights and biases in rotation, one x and y (as in the model: x was just written by
// the layer before, y is read by the next).
struct Operands {
  std::vector<Tensor> w, bias;
  Tensor x, y;
};

Operands make_operands(Backend& be, const LinearShape& s, int64_t m, int sets) {
  Operands o;
  // One host weight, uploaded `sets` times: the device copies are distinct buffers, which is all the rotation needs.
  const Tensor w = random_host({s.n, s.k}, 2, 1.0f / std::sqrt(static_cast<float>(s.k)));
  const Tensor b = random_host({s.n}, 3, 0.5f);
  for (int i = 0; i < sets; ++i) {
    o.w.push_back(be.upload(w, DType::BF16));
    o.bias.push_back(be.upload(b, DType::BF16));
  }
  o.x = be.upload(random_host({m, s.k}, 1, 1.0f), DType::BF16);
  o.y = be.empty({m, s.n}, DType::BF16);
  return o;
}

double time_linear(Backend& be, bench::StreamBlocker& blocker, const LinearShape& s, int64_t m, int sets, int reps) {
  Operands o = make_operands(be, s, m, sets);
  auto call = [&](int i) {
    const size_t r = static_cast<size_t>(i % sets);
    be.linear(o.x, o.w[r], &o.bias[r], s.act, o.y);
  };
  for (int i = 0; i < sets; ++i) call(i);  // warm-up: cuBLASLt tunes the shape here, the kernel plans it
  be.synchronize();
  const cudaStream_t stream = dynamic_cast<cuda::CudaBackend&>(be).stream();
  return 1000.0 * bench::median_call_ms(stream, blocker, reps, call);
}

double tbps(const LinearShape& s, double us) {
  return static_cast<double>(s.n) * static_cast<double>(s.k) * 2.0 / (us * 1e-6) / 1e12;
}

const char* act_name(Activation a) { return a == Activation::GeluTanh ? "gelu" : "none"; }

// Every kernel configuration, launched directly on `be`'s stream with its operands.
void sweep(Backend& be, bench::StreamBlocker& blocker, cuda::SkinnyGemm& skinny, const LinearShape& s, int64_t m,
           int sets, int reps) {
  Operands o = make_operands(be, s, m, sets);
  const cudaStream_t stream = dynamic_cast<cuda::CudaBackend&>(be).stream();
  for (int k_warps : {1, 2, 4, 8})
    for (int cluster : {1, 2, 4, 8})
      for (int unroll : {4, 8}) {
        const cuda::SkinnyConfig c{k_warps, cluster, unroll};
        bool ran = true;
        auto call = [&](int i) {
          const size_t r = static_cast<size_t>(i % sets);
          const cuda::SkinnyGemmArgs a{o.x.data(), o.w[r].data(), o.bias[r].data(), o.y.data(), m, s.n, s.k,
                                       cuda::kernel_act(s.act), false};
          ran = skinny.launch(a, c, stream) && ran;
        };
        for (int i = 0; i < sets; ++i) call(i);
        be.synchronize();
        if (!ran) {
          std::printf("sweep,%s %s,%lld,%d,%d,%d,-,-\n", s.model, s.name, static_cast<long long>(m), k_warps, cluster,
                      unroll);
          continue;
        }
        const double us = 1000.0 * bench::median_call_ms(stream, blocker, reps, call);
        std::printf("sweep,%s %s,%lld,%d,%d,%d,%.2f,%.3f\n", s.model, s.name, static_cast<long long>(m), k_warps,
                    cluster, unroll, us, tbps(s, us));
        std::fflush(stdout);
      }
}

std::vector<int64_t> parse_list(const char* text) {
  std::vector<int64_t> v;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) v.push_back(std::atoll(item.c_str()));
  return v;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<int64_t> rows = {2, 8, 16, 32};
  std::string model = "all";
  int reps = 100;
  bool do_sweep = false;
  for (int i = 1; i < argc; ++i) {
    const bool has_value = i + 1 < argc;
    if (std::strcmp(argv[i], "--m") == 0 && has_value) rows = parse_list(argv[++i]);
    else if (std::strcmp(argv[i], "--model") == 0 && has_value) model = argv[++i];
    else if (std::strcmp(argv[i], "--reps") == 0 && has_value) reps = std::atoi(argv[++i]);
    else if (std::strcmp(argv[i], "--sweep") == 0) do_sweep = true;
    else {
      std::fprintf(stderr, "usage: %s [--m 2,8,16,32] [--model 8b|2b|all] [--reps R] [--sweep]\n", argv[0]);
      return 2;
    }
  }
  if (reps < 1 || reps > 300) {
    std::fprintf(stderr, "--reps: 1 to 300 (the calls are queued behind one blocked stream)\n");
    return 2;
  }
  for (int64_t m : rows) {
    if (m < 1 || m > cuda::kSkinnyMaxRows) {
      std::fprintf(stderr, "--m: rows from 1 to %d\n", cuda::kSkinnyMaxRows);
      return 2;
    }
  }
  if (!cuda_available()) {
    std::printf("skipped: no CUDA device\n");
    return 0;
  }
  try {
    setenv("SPARVAR_SKINNY_GEMM", "0", 1);
    auto cublaslt = make_cuda_backend(0);
    setenv("SPARVAR_SKINNY_GEMM", "1", 1);
    setenv("SPARVAR_SKINNY_GEMM_ROWS", std::to_string(cuda::kSkinnyMaxRows).c_str(), 1);
    auto skinny_be = make_cuda_backend(0);
    cuda::SkinnyGemm planner(0, cuda::kSkinnyMaxRows);  // the same planner as the backend's: for printing its choice
    bench::StreamBlocker blocker;
    int l2 = 0;
    CUDA_CHECK(cudaDeviceGetAttribute(&l2, cudaDevAttrL2CacheSize, 0));
    std::fprintf(stderr, "device: %s, L2 %d MiB\n", skinny_be->name().c_str(), l2 >> 20);

    const std::vector<LinearShape> shapes = {
        {"8B", "qkv", 3584, 3 * 3584, Activation::None},        {"8B", "proj", 3584, 3584, Activation::None},
        {"8B", "fc1+gelu", 3584, 4 * 3584, Activation::GeluTanh}, {"8B", "fc2", 4 * 3584, 3584, Activation::None},
        {"2B", "qkv", 2048, 3 * 2048, Activation::None},        {"2B", "proj", 2048, 2048, Activation::None},
        {"2B", "fc1+gelu", 2048, 4 * 2048, Activation::GeluTanh}, {"2B", "fc2", 4 * 2048, 2048, Activation::None},
    };
    std::printf("name,M,K,N,act,cublaslt_us,cublaslt_tbps,skinny_us,skinny_tbps,speedup,config\n");
    for (const char* m_name : {"8B", "2B"}) {
      if (model != "all" && !((model == "8b" && std::string(m_name) == "8B") ||
                              (model == "2b" && std::string(m_name) == "2B")))
        continue;
      for (int64_t m : rows) {
        double total_lt = 0.0, total_sk = 0.0;
        for (const LinearShape& s : shapes) {
          if (std::string(s.model) != m_name) continue;
          const double weight_bytes = static_cast<double>(s.n) * static_cast<double>(s.k) * 2.0;
          const int sets = std::clamp(static_cast<int>(std::ceil(3.0 * l2 / weight_bytes)), 2, 64);
          const double lt_us = time_linear(*cublaslt, blocker, s, m, sets, reps);
          const double sk_us = time_linear(*skinny_be, blocker, s, m, sets, reps);
          total_lt += lt_us;
          total_sk += sk_us;
          cuda::SkinnyConfig c;
          const std::string config = planner.plan(m, s.n, s.k, c)
                                         ? std::to_string(c.k_warps) + "/" + std::to_string(c.cluster) + "/" +
                                               std::to_string(c.unroll)
                                         : std::string("none (cuBLASLt)");
          std::printf("%s %s,%lld,%lld,%lld,%s,%.2f,%.3f,%.2f,%.3f,%.2f,%s\n", s.model, s.name,
                      static_cast<long long>(m), static_cast<long long>(s.k), static_cast<long long>(s.n),
                      act_name(s.act), lt_us, tbps(s, lt_us), sk_us, tbps(s, sk_us), lt_us / sk_us, config.c_str());
          std::fflush(stdout);
          if (do_sweep) sweep(*skinny_be, blocker, planner, s, m, sets, reps);
        }
        std::printf("total,%s,%lld,%.2f,%.2f,%.2f\n", m_name, static_cast<long long>(m), total_lt, total_sk,
                    total_lt / total_sk);
        std::fflush(stdout);
      }
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
