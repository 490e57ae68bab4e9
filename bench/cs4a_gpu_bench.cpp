// CS4A's per-image pattern work on the GPU, next to the attention it drives. Infinity 1024x1024 (decision at
// 32x32, patterns for 40x40, 48x48, 64x64), batch 2 (one image with CFG), head dim 128, runner defaults
// (tau 0.95, no cap, own window added), 64- and 128-token tiles, 16 and 28 heads.
//   cs4a_gpu_bench [reps]      (default 200)
// Per configuration and layer:
//   build      Cs4aDeviceBuilder::build (batch average + select + map to the 3 later scales): GPU time per
//              build, back to back on one stream; the host time to enqueue one; and the GPU time per build
//              captured in a CUDA graph and replayed back to back (how the engine's per-scale graphs run it)
//   host path  what the runner did before: download the mass (sync), average, cs4a_select, 3 maps, upload
//   attention  the block-sparse kernel (AUTO) at the 3 later scales with the patterns just built (their sum)
//   ratio      build / attention: the budget is <= 2%
//   decision   the 32x32 dense call without and with block mass (what the mass pass adds)
// The mass is synthetic (peaked random rows): the densities, hence the attention times, depend on it; the
// build's cost hardly does. Prints "no CUDA device" and exits 0 where there is none.
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <vector>

#include "attention/cs4a_plan.h"
#include "block_sparse_attention.h"
#include "cs4a_device.h"

using namespace sparvar;

namespace {

#define CUDA_OK(call)                                                                                  \
  do {                                                                                                 \
    const cudaError_t e_ = (call);                                                                     \
    if (e_ != cudaSuccess) {                                                                           \
      std::fprintf(stderr, "CUDA error %s at %s:%d: %s\n", cudaGetErrorString(e_), __FILE__, __LINE__, #call); \
      std::exit(2);                                                                                    \
    }                                                                                                  \
  } while (0)

constexpr int kBatch = 2, kHeadDim = 128;

template <typename T>
struct Dev {
  T* ptr = nullptr;
  explicit Dev(size_t n) { CUDA_OK(cudaMalloc(&ptr, std::max<size_t>(n, 1) * sizeof(T))); }
  explicit Dev(const std::vector<T>& h) : Dev(h.size()) {
    CUDA_OK(cudaMemcpy(ptr, h.data(), h.size() * sizeof(T), cudaMemcpyHostToDevice));
    // cudaMemcpy goes on the legacy stream, which the builds' non-blocking stream does not wait for.
    CUDA_OK(cudaDeviceSynchronize());
  }
  Dev(const Dev&) = delete;
  ~Dev() { cudaFree(ptr); }
};

uint16_t to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  u += 0x7fff + ((u >> 16) & 1);
  return static_cast<uint16_t>(u >> 16);
}

// Rows of positive masses with a few dominant entries, summing to 1.
std::vector<float> peaked_mass(size_t rows, int nk, std::mt19937& rng) {
  std::exponential_distribution<float> e(1.0f);
  std::vector<float> m(rows * static_cast<size_t>(nk));
  for (size_t r = 0; r < rows; ++r) {
    float* row = m.data() + r * nk;
    double sum = 0;
    for (int c = 0; c < nk; ++c) sum += (row[c] = std::pow(e(rng), 4.0f));
    for (int c = 0; c < nk; ++c) row[c] = static_cast<float>(row[c] / sum);
  }
  return m;
}

// GPU time per call of f, averaged over back-to-back calls on `stream`.
template <typename F>
double gpu_us(cudaStream_t stream, int reps, F&& f) {
  for (int i = 0; i < 3; ++i) f();
  cudaEvent_t a, b;
  CUDA_OK(cudaEventCreate(&a));
  CUDA_OK(cudaEventCreate(&b));
  CUDA_OK(cudaEventRecord(a, stream));
  for (int i = 0; i < reps; ++i) f();
  CUDA_OK(cudaEventRecord(b, stream));
  CUDA_OK(cudaEventSynchronize(b));
  float ms = 0;
  CUDA_OK(cudaEventElapsedTime(&ms, a, b));
  CUDA_OK(cudaEventDestroy(a));
  CUDA_OK(cudaEventDestroy(b));
  return 1000.0 * ms / reps;
}

template <typename F>
double median_wall_us(int reps, F&& f) {
  std::vector<double> t;
  for (int i = 0; i < reps; ++i) {
    const auto a = std::chrono::steady_clock::now();
    f();
    t.push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - a).count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

// Block-sparse attention on random bf16 tensors of one scale's padded geometry.
struct AttentionCall {
  Dev<uint16_t> q, k, v, out;
  Dev<int32_t> q_valid, k_valid;
  BlockSparseAttentionArgs args{};
  AttentionCall(const ScaleLayouts& l, int heads, const std::vector<uint16_t>& noise)
      : q(size_t(kBatch) * heads * l.q.num_slots() * kHeadDim),
        k(size_t(kBatch) * heads * l.k.num_slots() * kHeadDim),
        v(size_t(kBatch) * heads * l.k.num_slots() * kHeadDim),
        out(size_t(kBatch) * heads * l.q.num_slots() * kHeadDim),
        q_valid(l.q.block_valid()),
        k_valid(l.k.block_valid()) {
    auto fill = [&](uint16_t* p, size_t n) {
      for (size_t i = 0; i < n; i += noise.size())
        CUDA_OK(cudaMemcpy(p + i, noise.data(), std::min(noise.size(), n - i) * 2, cudaMemcpyHostToDevice));
    };
    fill(q.ptr, size_t(kBatch) * heads * l.q.num_slots() * kHeadDim);
    fill(k.ptr, size_t(kBatch) * heads * l.k.num_slots() * kHeadDim);
    fill(v.ptr, size_t(kBatch) * heads * l.k.num_slots() * kHeadDim);
    CUDA_OK(cudaDeviceSynchronize());  // legacy-stream copies, before work on the non-blocking stream
    args.q = q.ptr;
    args.k = k.ptr;
    args.v = v.ptr;
    args.out = out.ptr;
    args.batch = kBatch;
    args.heads = heads;
    args.head_dim = kHeadDim;
    args.nq = static_cast<int>(l.q.num_slots());
    args.nk = static_cast<int>(l.k.num_slots());
    args.q_block = l.q.block_size();
    args.k_block = l.k.block_size();
    args.q_valid = q_valid.ptr;
    args.k_valid = k_valid.ptr;
    args.softmax_scale = 1.0f / std::sqrt(float(kHeadDim));
    args.kernel = BSA_KERNEL_AUTO;
  }
};

void run(TileShape tile, int heads, int reps, const std::vector<uint16_t>& noise, cudaStream_t stream) {
  const ScaleSchedule s = infinity_schedule(1.0, PixelBudget::M1);
  Cs4aOptions o;
  o.q_tile = o.k_tile = tile;
  o.union_own_window = true;  // the runner's default
  const int kd = o.resolve_decision_scale(s);
  std::vector<Cs4aMapper> mappers;
  for (int k = kd + 1; k < s.num_scales(); ++k) mappers.emplace_back(s, k, o);
  std::vector<const Cs4aMapper*> ptrs;
  for (const Cs4aMapper& m : mappers) ptrs.push_back(&m);
  const Cs4aPlan plan = make_cs4a_plan(ptrs, heads);
  Cs4aDeviceBuilder builder(plan);

  std::mt19937 rng(5);
  const std::vector<float> mass = peaked_mass(size_t(kBatch) * heads * plan.num_q_blocks, plan.num_k_blocks, rng);
  const Dev<float> dmass(mass);
  std::vector<std::unique_ptr<Dev<int32_t>>> buffers;
  std::vector<Cs4aDeviceTarget> targets;
  for (const Cs4aPlanScale& ps : plan.scales) {
    buffers.push_back(std::make_unique<Dev<int32_t>>(size_t(heads) * ps.num_q_blocks + 1));
    buffers.push_back(std::make_unique<Dev<int32_t>>(size_t(ps.nnz_bound)));
    targets.push_back({buffers[buffers.size() - 2]->ptr, buffers.back()->ptr});
  }

  // The build, back to back (GPU time), and the host's cost to enqueue one.
  const double build_us = gpu_us(stream, reps, [&] { builder.build(dmass.ptr, kBatch, targets, stream); });
  const double enqueue_us = median_wall_us(reps, [&] { builder.build(dmass.ptr, kBatch, targets, stream); });
  CUDA_OK(cudaStreamSynchronize(stream));
  builder.check(true);
  // As the engine runs it: captured in a CUDA graph (the per-scale graphs, relaxed mode as in backend/cuda/graph.cpp:
  // build() queries the previous build's event), replayed back to back.
  cudaGraph_t graph;
  cudaGraphExec_t graph_exec;
  CUDA_OK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeRelaxed));
  builder.build(dmass.ptr, kBatch, targets, stream);
  CUDA_OK(cudaStreamEndCapture(stream, &graph));
  CUDA_OK(cudaGraphInstantiate(&graph_exec, graph, 0));
  const double graph_us = gpu_us(stream, reps, [&] { CUDA_OK(cudaGraphLaunch(graph_exec, stream)); });
  CUDA_OK(cudaStreamSynchronize(stream));
  builder.check(true);
  CUDA_OK(cudaGraphExecDestroy(graph_exec));
  CUDA_OK(cudaGraphDestroy(graph));

  // The old host path on the same mass: download, average, select, map, upload (wall clock, synchronous).
  std::vector<float> host_mass(mass.size()), avg(mass.size() / kBatch);
  const double host_us = median_wall_us(std::max(5, reps / 10), [&] {
    CUDA_OK(cudaMemcpyAsync(host_mass.data(), dmass.ptr, host_mass.size() * 4, cudaMemcpyDeviceToHost, stream));
    CUDA_OK(cudaStreamSynchronize(stream));
    std::fill(avg.begin(), avg.end(), 0.0f);
    for (int b = 0; b < kBatch; ++b)
      for (size_t i = 0; i < avg.size(); ++i) avg[i] += host_mass[b * avg.size() + i];
    for (float& x : avg) x /= float(kBatch);
    const BlockPattern sel = cs4a_select(avg, heads, mappers.front().decision_layouts(), o);
    for (size_t i = 0; i < mappers.size(); ++i) {
      const BlockPattern p = mappers[i].map(sel);
      CUDA_OK(cudaMemcpyAsync(targets[i].row_offsets, p.row_offsets.data(), p.row_offsets.size() * 4,
                              cudaMemcpyHostToDevice, stream));
      CUDA_OK(cudaMemcpyAsync(targets[i].col_blocks, p.col_blocks.data(), p.col_blocks.size() * 4,
                              cudaMemcpyHostToDevice, stream));
    }
    CUDA_OK(cudaStreamSynchronize(stream));
  });

  // Rebuild on the device (the host path above wrote the same patterns), then time the attention they drive.
  builder.build(dmass.ptr, kBatch, targets, stream);
  builder.check(true);
  double attention_us = 0;
  std::printf("  tiles %dx%d, %2d heads | later scales:", tile.h, tile.w, heads);
  for (size_t i = 0; i < mappers.size(); ++i) {
    const BlockPattern p = download_cs4a_pattern(plan, int(i), targets[i], stream);
    AttentionCall call(mappers[i].layouts(), heads, noise);
    call.args.row_offsets = targets[i].row_offsets;
    call.args.col_blocks = targets[i].col_blocks;
    call.args.nnz = static_cast<int>(p.nnz());
    call.args.pattern_heads = heads;
    const double us = gpu_us(stream, reps, [&] { block_sparse_attention(call.args, stream); });
    attention_us += us;
    std::printf(" %dx%d %.1f us (%.0f%% of blocks)", s.grid(plan.scales[i].scale).h, s.grid(plan.scales[i].scale).w, us,
                100.0 * p.nnz() / (double(p.num_rows()) * p.num_k_blocks));
  }
  std::printf("\n");

  // The decision call: dense (shared pattern), without and with block mass.
  const ScaleLayouts& dl = mappers.front().decision_layouts();
  const BlockPattern dense = dense_pattern(plan.num_q_blocks, plan.num_k_blocks, heads);
  const Dev<int32_t> doff(dense.row_offsets), dcols(dense.col_blocks);
  Dev<float> dense_mass(size_t(kBatch) * heads * dense.nnz());
  AttentionCall dcall(dl, heads, noise);
  dcall.args.row_offsets = doff.ptr;
  dcall.args.col_blocks = dcols.ptr;
  dcall.args.nnz = static_cast<int>(dense.nnz());
  dcall.args.pattern_heads = 1;
  const double plain_us = gpu_us(stream, reps, [&] { block_sparse_attention(dcall.args, stream); });
  dcall.args.block_mass = dense_mass.ptr;
  const double mass_us = gpu_us(stream, reps, [&] { block_sparse_attention(dcall.args, stream); });

  std::printf("  %-28s build %6.1f us GPU (enqueue %5.1f us host; in a graph %5.1f us) | old host path %7.1f us | "
              "attention %7.1f us | build / attention %5.2f%% (graph %5.2f%%)\n", "", build_us, enqueue_us, graph_us,
              host_us, attention_us, 100.0 * build_us / attention_us, 100.0 * graph_us / attention_us);
  std::printf("  %-28s decision 32x32 dense: %.1f us, with block mass %.1f us (+%.0f%%)\n", "", plain_us, mass_us,
              100.0 * (mass_us - plain_us) / plain_us);
}

}  // namespace

int main(int argc, char** argv) {
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    std::printf("cs4a_gpu_bench: no CUDA device\n");
    return 0;
  }
  const int reps = argc > 1 ? std::max(1, std::atoi(argv[1])) : 200;
  cudaDeviceProp prop{};
  CUDA_OK(cudaGetDeviceProperties(&prop, 0));
  std::printf("cs4a_gpu_bench on %s: Infinity 1M, batch %d, head dim %d, tau 0.95, own window; %d reps\n", prop.name,
              kBatch, kHeadDim, reps);
  std::mt19937 rng(1);
  std::normal_distribution<float> normal(0.f, 1.f);
  std::vector<uint16_t> noise(1 << 20);
  for (uint16_t& x : noise) x = to_bf16(normal(rng));
  cudaStream_t stream;
  CUDA_OK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  for (TileShape t : {TileShape{8, 8}, TileShape{8, 16}})
    for (int heads : {16, 28}) run(t, heads, reps, noise, stream);
  CUDA_OK(cudaStreamDestroy(stream));
  return 0;
}
