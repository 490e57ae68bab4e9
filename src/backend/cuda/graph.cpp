// Backend::record on CUDA: the body's ops captured from the backend's stream into a CUDA graph, instantiated
// once; each replay is one cudaGraphLaunch on the same stream. Relaxed capture mode: library calls that are
// legal but "potentially unsafe" in the stricter modes (cuBLASLt's and cuDNN's host-side queries) do not
// invalidate the capture, while anything that synchronises the capturing stream still fails loudly.
// Tensors allocated or freed by the body: see device_stream.h (cudaMalloc inside the capture, frees after it).
#include <cuda_runtime.h>

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/device_buffer.h"
#include "backend/cuda/device_pool.h"

namespace sparvar::cuda {

namespace {

// Ends a capture that the body left unfinished (it threw), dropping whatever was captured.
void abandon_capture(cudaStream_t stream) {
  cudaGraph_t partial = nullptr;
  if (cudaStreamEndCapture(stream, &partial) == cudaSuccess && partial) (void)cudaGraphDestroy(partial);
  (void)cudaGetLastError();
}

class CudaGraphWork final : public RecordedWork {
 public:
  CudaGraphWork(int device, cudaStream_t stream, cudaGraphExec_t exec, uint64_t generation)
      : device_(device), stream_(stream), exec_(exec), generation_(generation) {}
  ~CudaGraphWork() override {
    (void)cudaSetDevice(device_);
    if (cudaGraphExecDestroy(exec_) != cudaSuccess) (void)cudaGetLastError();
  }
  CudaGraphWork(const CudaGraphWork&) = delete;
  CudaGraphWork& operator=(const CudaGraphWork&) = delete;

  void replay() override {
    SPARVAR_CHECK(valid(), "CUDA graph replay: a scratch buffer it uses was reallocated since it was recorded "
                  "(record it again)");
    CUDA_CHECK(cudaSetDevice(device_));
    CUDA_CHECK(cudaGraphLaunch(exec_, stream_));
  }
  bool valid() const override { return scratch_generation().load() == generation_; }
  bool is_graph() const override { return true; }

 private:
  int device_;
  cudaStream_t stream_;
  cudaGraphExec_t exec_;
  uint64_t generation_;  // scratch_generation() at capture
};

}  // namespace

std::unique_ptr<RecordedWork> CudaBackend::record(const std::function<void()>& body) {
  make_current();
  const uint64_t generation = scratch_generation().load();
  cudaGraph_t graph = nullptr;
  cudaError_t ended = cudaSuccess;
  const auto abandon = [&] {
    abandon_capture(stream_);
    device_stream_->flush_deferred();
  };
  {
    const CaptureScope scope;
    CUDA_CHECK(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeRelaxed));
    try {
      body();
    } catch (const Error& e) {
      abandon();
      fail("while recording a CUDA graph: {}", e.what());
    } catch (...) {
      abandon();
      throw;
    }
    ended = cudaStreamEndCapture(stream_, &graph);
  }
  device_stream_->flush_deferred();  // what the body freed (the recording is then invalid, see device_stream.h)
  if (ended != cudaSuccess) {
    if (graph) (void)cudaGraphDestroy(graph);
    (void)cudaGetLastError();
    fail("CUDA graph capture failed: {} (an op of the recorded work is not capturable: it synchronised, copied "
         "from pageable host memory or used another stream)", cudaGetErrorString(ended));
  }
  cudaGraphExec_t exec = nullptr;
  const cudaError_t instantiated = cudaGraphInstantiate(&exec, graph, 0);
  (void)cudaGraphDestroy(graph);  // the executable graph keeps what it needs
  if (instantiated != cudaSuccess) {
    (void)cudaGetLastError();
    fail("CUDA graph instantiation failed: {}", cudaGetErrorString(instantiated));
  }
  auto work = std::make_unique<CudaGraphWork>(device_, stream_, exec, generation);
  CUDA_CHECK(cudaGraphUpload(exec, stream_));  // the first replay then launches at full speed
  return work;
}

}  // namespace sparvar::cuda
