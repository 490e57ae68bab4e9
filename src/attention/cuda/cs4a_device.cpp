// Host side of the GPU CS4A builder: uploads the plan, checks arguments before any launch, reads the
// builds' status without blocking.
#include "cs4a_device.h"

#include <utility>
#include <vector>

#include "attention/cs4a_rule.h"
#include "core/error.h"
#include "cs4a_build.h"

namespace sparvar {
namespace {

void check_cuda(cudaError_t status, const char* what) {
  if (status != cudaSuccess) fail("CS4A (GPU): {}: {}", what, cudaGetErrorString(status));
}

// One cudaMalloc'ed array, freed on destruction.
class DeviceArray {
 public:
  DeviceArray() = default;
  DeviceArray(size_t bytes, const char* what) {
    if (bytes == 0) return;
    check_cuda(cudaMalloc(&ptr_, bytes), what);
  }
  template <typename T>
  DeviceArray(const std::vector<T>& host, const char* what) : DeviceArray(host.size() * sizeof(T), what) {
    if (!host.empty()) check_cuda(cudaMemcpy(ptr_, host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice), what);
  }
  ~DeviceArray() {
    if (ptr_) (void)cudaFree(ptr_);
  }
  DeviceArray(DeviceArray&& o) noexcept : ptr_(o.ptr_) { o.ptr_ = nullptr; }
  DeviceArray& operator=(DeviceArray&& o) noexcept {
    std::swap(ptr_, o.ptr_);
    return *this;
  }
  template <typename T>
  T* as() const { return static_cast<T*>(ptr_); }

 private:
  void* ptr_ = nullptr;
};

template <typename T>
std::vector<T> download(const T* device, size_t n, cudaStream_t stream, const char* what) {
  std::vector<T> host(n);
  if (n) check_cuda(cudaMemcpyAsync(host.data(), device, n * sizeof(T), cudaMemcpyDeviceToHost, stream), what);
  check_cuda(cudaStreamSynchronize(stream), what);
  return host;
}

struct ScaleTables {
  DeviceArray decision_row, rows_by_decision_offsets, rows_by_decision, cover, own, expanded, lengths;
};

}  // namespace

struct Cs4aDeviceBuilder::Impl {
  Cs4aPlan plan;
  DeviceArray forced, selected, bad_rows;
  std::vector<ScaleTables> scales;
  unsigned int* host_status = nullptr;  // mapped pinned: the builds write it themselves (no copy, no sync)
  unsigned int reported[2] = {0, 0};
  cudaEvent_t done = nullptr;           // recorded after the last build
  cudaStream_t last_stream = nullptr;   // the stream of the last build
  bool built = false;

  ~Impl() {
    // A build still running writes the status and the scratch freed below.
    if (done && built) (void)cudaEventSynchronize(done);
    if (done) (void)cudaEventDestroy(done);
    if (host_status) (void)cudaFreeHost(host_status);
  }
};

Cs4aDeviceBuilder::Cs4aDeviceBuilder(Cs4aPlan plan) : impl_(std::make_unique<Impl>()) {
  Impl& d = *impl_;
  const Cs4aPlan& p = d.plan = std::move(plan);
  SPARVAR_CHECK(p.heads >= 1 && p.num_q_blocks >= 1 && p.num_k_blocks >= 1 && p.words == (p.num_k_blocks + 63) / 64,
                "CS4A (GPU): plan has {} heads, {} x {} decision blocks, {} words", p.heads, p.num_q_blocks,
                p.num_k_blocks, p.words);
  SPARVAR_CHECK(!p.scales.empty() && p.scales.size() <= static_cast<size_t>(attn_cuda::kCs4aMaxScales),
                "CS4A (GPU): {} scales to build, 1..{} supported", p.scales.size(), attn_cuda::kCs4aMaxScales);
  SPARVAR_CHECK(p.forced.size() == static_cast<size_t>(p.num_q_blocks) * p.words, "CS4A (GPU): forced table size");
  const size_t d_rows = static_cast<size_t>(p.heads) * p.num_q_blocks;
  d.forced = DeviceArray(p.forced, "upload forced blocks");
  d.selected = DeviceArray(d_rows * p.words * sizeof(uint64_t), "selection scratch");
  d.bad_rows = DeviceArray(std::vector<unsigned int>{0}, "clear status");
  for (const Cs4aPlanScale& s : p.scales) {
    SPARVAR_CHECK(s.words == (s.num_k_blocks + 63) / 64 && s.decision_row.size() == static_cast<size_t>(s.num_q_blocks) &&
                      s.rows_by_decision_offsets.size() == static_cast<size_t>(p.num_q_blocks) + 1 &&
                      s.cover.size() == static_cast<size_t>(p.num_k_blocks - p.decision_first_block) * s.words &&
                      (s.own.empty() || s.own.size() == static_cast<size_t>(s.num_q_blocks) * s.words),
                  "CS4A (GPU): inconsistent plan tables for scale {}", s.scale);
    // The write kernel keeps a head's row starts in shared memory (8 bytes each, 48 KB).
    SPARVAR_CHECK(s.num_q_blocks <= 6144, "CS4A (GPU): scale {} has {} query blocks, at most 6144 supported", s.scale,
                  s.num_q_blocks);
    ScaleTables t;
    t.decision_row = DeviceArray(s.decision_row, "upload decision rows");
    t.rows_by_decision_offsets = DeviceArray(s.rows_by_decision_offsets, "upload inverse map");
    t.rows_by_decision = DeviceArray(s.rows_by_decision, "upload inverse map");
    t.cover = DeviceArray(s.cover, "upload cover sets");
    t.own = DeviceArray(s.own, "upload own windows");
    t.expanded = DeviceArray(d_rows * s.words * sizeof(uint64_t), "expansion scratch");
    t.lengths = DeviceArray(static_cast<size_t>(p.heads) * s.num_q_blocks * sizeof(int32_t), "row length scratch");
    d.scales.push_back(std::move(t));
  }
  check_cuda(cudaHostAlloc(&d.host_status, 2 * sizeof(unsigned int), cudaHostAllocMapped), "mapped status");
  d.host_status[0] = d.host_status[1] = 0;
  check_cuda(cudaEventCreateWithFlags(&d.done, cudaEventDisableTiming), "status event");
  // The uploads above went through the legacy stream and may still be in flight; builds use other streams.
  check_cuda(cudaDeviceSynchronize(), "finish the table uploads");
}

Cs4aDeviceBuilder::~Cs4aDeviceBuilder() = default;

const Cs4aPlan& Cs4aDeviceBuilder::plan() const { return impl_->plan; }

void Cs4aDeviceBuilder::build(const float* mass, int batch, std::span<const Cs4aDeviceTarget> targets,
                              cudaStream_t stream) {
  Impl& d = *impl_;
  const Cs4aPlan& p = d.plan;
  check(false);
  SPARVAR_CHECK(mass != nullptr && batch >= 1, "CS4A (GPU): needs the block mass of a batch >= 1 (got batch {})",
                batch);
  SPARVAR_CHECK(targets.size() == p.scales.size(), "CS4A (GPU): {} targets for {} scales", targets.size(),
                p.scales.size());
  attn_cuda::Cs4aBuildArgs a{};
  a.mass = mass;
  a.batch = batch;
  a.heads = p.heads;
  a.num_q_blocks = p.num_q_blocks;
  a.num_k_blocks = p.num_k_blocks;
  a.words = p.words;
  a.decision_first_block = p.decision_first_block;
  a.tau_fixed = cs4a_rule::tau_fixed(p.tau);
  a.cap = p.cap;
  a.forced = d.forced.as<uint64_t>();
  a.selected = d.selected.as<uint64_t>();
  a.bad_rows = d.bad_rows.as<unsigned int>();
  unsigned int* host_status_device = nullptr;
  check_cuda(cudaHostGetDevicePointer(reinterpret_cast<void**>(&host_status_device), d.host_status, 0),
             "mapped status pointer");
  a.host_status = host_status_device;
  a.num_scales = static_cast<int>(p.scales.size());
  for (size_t i = 0; i < p.scales.size(); ++i) {
    const Cs4aPlanScale& s = p.scales[i];
    const ScaleTables& t = d.scales[i];
    SPARVAR_CHECK(targets[i].row_offsets && targets[i].col_blocks, "CS4A (GPU): target of scale {} is null", s.scale);
    attn_cuda::Cs4aScaleArgs& sa = a.scales[i];
    sa.num_q_blocks = s.num_q_blocks;
    sa.num_k_blocks = s.num_k_blocks;
    sa.words = s.words;
    sa.decision_row = t.decision_row.as<int32_t>();
    sa.rows_by_decision_offsets = t.rows_by_decision_offsets.as<int32_t>();
    sa.rows_by_decision = t.rows_by_decision.as<int32_t>();
    sa.cover = t.cover.as<uint64_t>();
    sa.own = s.own.empty() ? nullptr : t.own.as<uint64_t>();
    sa.expanded = t.expanded.as<uint64_t>();
    sa.lengths = t.lengths.as<int32_t>();
    sa.row_offsets = targets[i].row_offsets;
    sa.col_blocks = targets[i].col_blocks;
    sa.capacity = static_cast<int32_t>(s.nnz_bound);
  }
  cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
  check_cuda(cudaStreamIsCapturing(stream, &capture), "query stream capture");
  const bool capturing = capture == cudaStreamCaptureStatusActive;
  // Every build uses the same scratch (selection, expansions, row lengths) and status: one on another stream
  // than the last must not overlap it. Waits on the device (an external node inside a capture).
  if (d.built && stream != d.last_stream)
    check_cuda(cudaStreamWaitEvent(stream, d.done, capturing ? cudaEventWaitExternal : cudaEventWaitDefault),
               "order after the previous build");
  check_cuda(attn_cuda::launch_cs4a_build(a, stream), "build kernels");
  // Inside a CUDA graph capture a plain record would only order the capture; as an external node it marks
  // the end of the build at every replay, which check() relies on.
  check_cuda(capturing ? cudaEventRecordWithFlags(d.done, stream, cudaEventRecordExternal)
                       : cudaEventRecord(d.done, stream),
             "record status event");
  d.built = true;
  d.last_stream = stream;
}

BlockPattern Cs4aDeviceBuilder::download_selection(cudaStream_t stream) {
  Impl& d = *impl_;
  const Cs4aPlan& p = d.plan;
  SPARVAR_CHECK(d.built, "CS4A (GPU): no build to download the selection of");
  // The last build may have run on another stream.
  check_cuda(cudaStreamWaitEvent(stream, d.done, cudaEventWaitDefault), "order after the last build");
  const std::vector<uint64_t> bits = download(d.selected.as<uint64_t>(),
                                              static_cast<size_t>(p.heads) * p.num_q_blocks * p.words, stream,
                                              "download selection");
  check(true);
  BlockPattern out;
  out.num_q_blocks = p.num_q_blocks;
  out.num_k_blocks = p.num_k_blocks;
  out.heads = p.heads;
  out.shared_across_heads = false;
  out.row_offsets.push_back(0);
  for (size_t r = 0; r < static_cast<size_t>(p.heads) * p.num_q_blocks; ++r) {
    for (int c = 0; c < p.num_k_blocks; ++c)
      if ((bits[r * p.words + static_cast<size_t>(c >> 6)] >> (c & 63)) & 1) out.col_blocks.push_back(c);
    out.row_offsets.push_back(static_cast<int32_t>(out.col_blocks.size()));
  }
  return out;
}

void Cs4aDeviceBuilder::check(bool wait) {
  Impl& d = *impl_;
  if (!d.built) return;
  if (wait) {
    check_cuda(cudaEventSynchronize(d.done), "wait for the build");
  } else {
    const cudaError_t state = cudaEventQuery(d.done);
    if (state == cudaErrorNotReady) return;
    check_cuda(state, "query the build");
  }
  const volatile unsigned int* status = d.host_status;  // written by the device
  const unsigned int bad_rows = status[0], overflows = status[1];
  if (bad_rows > d.reported[0]) {
    const unsigned int n = bad_rows - d.reported[0];
    d.reported[0] = bad_rows;
    fail("CS4A (GPU): {} decision rows of block mass were not shares (a value negative or not finite, or a row not "
         "summing to 1 within 1e-2); the CPU builder rejects such mass", n);
  }
  if (overflows > d.reported[1]) {  // a sticky flag: reported once
    d.reported[1] = overflows;
    fail("CS4A (GPU): a mapped pattern exceeded the plan's capacity bound (a bug: the bound must hold; the pattern "
         "was cut to fit)");
  }
}

BlockPattern download_cs4a_pattern(const Cs4aPlan& plan, int scale_index, const Cs4aDeviceTarget& target,
                                   cudaStream_t stream) {
  SPARVAR_CHECK(scale_index >= 0 && static_cast<size_t>(scale_index) < plan.scales.size(),
                "CS4A (GPU): scale index {} of {}", scale_index, plan.scales.size());
  const Cs4aPlanScale& s = plan.scales[static_cast<size_t>(scale_index)];
  BlockPattern out;
  out.num_q_blocks = s.num_q_blocks;
  out.num_k_blocks = s.num_k_blocks;
  out.heads = plan.heads;
  out.shared_across_heads = false;
  out.row_offsets = download(target.row_offsets, static_cast<size_t>(plan.heads) * s.num_q_blocks + 1, stream,
                             "download row offsets");
  const int32_t nnz = out.row_offsets.back();
  SPARVAR_CHECK(nnz >= 0 && nnz <= s.nnz_bound, "CS4A (GPU): pattern of scale {} has {} entries, capacity {}",
                s.scale, nnz, s.nnz_bound);
  out.col_blocks = download(target.col_blocks, static_cast<size_t>(nnz), stream, "download columns");
  return out;
}

}  // namespace sparvar
