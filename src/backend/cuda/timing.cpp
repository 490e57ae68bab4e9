// Backend::record_event on CUDA: timing the work queued on the stream without synchronising the host.
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_check.h"

namespace sparvar::cuda {

namespace {
// A cudaEvent recorded on the backend's stream (timing enabled); destroyed with the object.
class CudaTimingEvent final : public TimingEvent {
 public:
  CudaTimingEvent(int device, cudaStream_t stream) : device_(device) {
    CUDA_CHECK(cudaEventCreate(&event_));
    const cudaError_t status = cudaEventRecord(event_, stream);
    if (status != cudaSuccess) {  // the destructor will not run: release the event here
      (void)cudaEventDestroy(event_);
      fail_cuda(status, "cudaEventRecord(event_, stream)", __FILE__, __LINE__);
    }
  }
  ~CudaTimingEvent() override {
    (void)cudaSetDevice(device_);
    if (cudaEventDestroy(event_) != cudaSuccess) (void)cudaGetLastError();
  }
  CudaTimingEvent(const CudaTimingEvent&) = delete;
  CudaTimingEvent& operator=(const CudaTimingEvent&) = delete;

  double ms_since(const TimingEvent& earlier) const override {
    const auto* e = dynamic_cast<const CudaTimingEvent*>(&earlier);
    SPARVAR_CHECK(e != nullptr, "timing: the earlier event is not a cuda backend event");
    float ms = 0.0f;
    CUDA_CHECK(cudaEventElapsedTime(&ms, e->event_, event_));  // cudaErrorNotReady: not synchronised yet
    return ms;
  }

 private:
  int device_;
  cudaEvent_t event_ = nullptr;
};
}  // namespace

std::unique_ptr<TimingEvent> CudaBackend::record_event() {
  make_current();
  return std::make_unique<CudaTimingEvent>(device_, stream_);
}

}  // namespace sparvar::cuda
