// The CUDA backend object, its factory and its memory ops; the compute ops live in the files named after them.
#include "backend/cuda/cuda_backend.h"

#include <fmt/format.h>

#include <cstdlib>
#include <cstring>
#include <string_view>

#include "backend/cuda/cuda_check.h"
#include "backend/cuda/device_pool.h"
#include "backend/cuda/kernels.h"

namespace sparvar {

namespace {
// The kernels are built for sm_90a only (wgmma/TMA code elsewhere needs it), so only compute capability 9.0
// devices can run them; anything else would fail at the first launch with "no kernel image".
bool device_is_supported(const cudaDeviceProp& p) { return p.major == 9 && p.minor == 0; }
}  // namespace

bool cuda_available() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    (void)cudaGetLastError();  // no driver or no device: not an error for the caller
    return false;
  }
  for (int d = 0; d < count; ++d) {
    cudaDeviceProp props{};
    if (cudaGetDeviceProperties(&props, d) != cudaSuccess) {
      (void)cudaGetLastError();
      continue;
    }
    if (device_is_supported(props)) return true;
  }
  return false;
}

std::unique_ptr<Backend> make_cuda_backend(int device) { return std::make_unique<cuda::CudaBackend>(device); }

GpuMemoryStats gpu_memory_stats() {
  const cuda::AllocationCounters& c = cuda::allocation_counters();
  const cuda::PoolReserved pool = cuda::pool_reserved();
  return {c.current.load(), c.peak.load(), pool.current, pool.peak};
}

void reset_gpu_memory_peak() {
  cuda::AllocationCounters& c = cuda::allocation_counters();
  c.peak.store(c.current.load());
  cuda::reset_pool_peaks();
}

namespace cuda {

CudaBackend::CudaBackend(int device) : device_(device) {
  int count = 0;
  const cudaError_t status = cudaGetDeviceCount(&count);
  if (status != cudaSuccess) {
    (void)cudaGetLastError();
    fail("cuda backend: no usable CUDA device ({})", cudaGetErrorString(status));
  }
  SPARVAR_CHECK(device >= 0 && device < count, "cuda backend: device {} does not exist ({} CUDA devices)", device,
                count);
  CUDA_CHECK(cudaGetDeviceProperties(&props_, device));
  SPARVAR_CHECK(device_is_supported(props_),
                "cuda backend: device {} ({}) has compute capability {}.{}; this build runs on 9.0 (Hopper) only",
                device, props_.name, props_.major, props_.minor);
  make_current();
  device_stream_ = std::make_shared<DeviceStream>(device, alloc_mode_from_env());
  stream_ = device_stream_->get();
  gemm_ = std::make_unique<GemmRunner>(stream_);
  if (const char* env = std::getenv("SPARVAR_SHORT_ATTENTION")) short_key_attention_ = std::string_view(env) != "0";
  skinny_ = std::make_unique<SkinnyGemm>(device, skinny_rows_from_env());
}

CudaBackend::~CudaBackend() {
  gemm_.reset();
  skinny_.reset();
  conv_columns_ = DeviceBuffer();
  norm_scratch_ = DeviceBuffer();
  if (stream_) {
    (void)cudaSetDevice(device_);
    (void)cudaStreamSynchronize(stream_);
    (void)cudaGetLastError();
  }
  // The stream itself goes with device_stream_'s last owner: this backend or a tensor that outlives it.
}

std::string CudaBackend::name() const {
  return fmt::format("cuda:{} ({}, sm_{}{}, {} SMs)", device_, props_.name, props_.major, props_.minor,
                     props_.multiProcessorCount);
}

void CudaBackend::make_current() const { CUDA_CHECK(cudaSetDevice(device_)); }

void CudaBackend::synchronize() {
  make_current();
  CUDA_CHECK(cudaStreamSynchronize(stream_));
}

Tensor CudaBackend::empty(const Shape& shape, DType dtype) {
  make_current();
  const size_t bytes = static_cast<size_t>(shape_numel(shape)) * dtype_size(dtype);
  const std::string what = fmt::format("tensor {}{}", dtype_name(dtype), shape_string(shape));
  const DeviceBlock block = device_stream_->allocate(bytes, what);
  auto storage = std::make_shared<Storage>(block.ptr, bytes, Device::CUDA,
                                           [owner = device_stream_, block](void*) { owner->release(block); });
  return Tensor(std::move(storage), 0, shape, dtype);
}

namespace {
bool is_device_float(DType d) { return d == DType::F32 || d == DType::BF16 || d == DType::F16; }
}  // namespace

Tensor CudaBackend::upload(const Tensor& host, DType dtype) {
  SPARVAR_CHECK(host.defined(), "upload: host tensor is missing (undefined tensor)");
  SPARVAR_CHECK(host.device() == Device::CPU, "upload: {} is not a host tensor", host.describe());
  Tensor t = empty(host.shape(), dtype);
  if (t.numel() == 0) return t;
  if (host.dtype() == dtype) {
    CUDA_CHECK(cudaMemcpyAsync(t.data(), host.data(), host.nbytes(), cudaMemcpyHostToDevice, stream_));
  } else if (is_device_float(host.dtype()) && is_device_float(dtype)) {
    // Send the host bytes as they are, convert on the device (the staging tensor is freed in stream order).
    const Tensor staging = empty(host.shape(), host.dtype());
    CUDA_CHECK(cudaMemcpyAsync(staging.data(), host.data(), host.nbytes(), cudaMemcpyHostToDevice, stream_));
    launch_convert(staging.data(), host.dtype(), t.data(), dtype, t.numel(), stream_);
  } else {
    const Tensor converted = host.to_dtype(dtype);  // integer types: convert on the host
    CUDA_CHECK(cudaMemcpyAsync(t.data(), converted.data(), converted.nbytes(), cudaMemcpyHostToDevice, stream_));
  }
  // The host tensor may be freed as soon as we return: wait for the copy.
  CUDA_CHECK(cudaStreamSynchronize(stream_));
  return t;
}

Tensor CudaBackend::download(const Tensor& t) {
  SPARVAR_CHECK(t.defined(), "download: tensor is missing (undefined tensor)");
  SPARVAR_CHECK(t.device() == Device::CUDA, "download: {} is not on the cuda backend", t.describe());
  if (t.dtype() == DType::F32) return download_raw(t);
  if (t.numel() == 0) return Tensor::empty(t.shape(), DType::F32);
  if (!is_device_float(t.dtype())) return download_raw(t).to_dtype(DType::F32);  // integers: converted on the host
  make_current();
  const Tensor f32 = empty(t.shape(), DType::F32);  // freed in stream order, after the copy
  launch_convert(t.data(), t.dtype(), f32.data(), DType::F32, t.numel(), stream_);
  return download_raw(f32);
}

Tensor CudaBackend::download_raw(const Tensor& t) {
  SPARVAR_CHECK(t.defined(), "download_raw: tensor is missing (undefined tensor)");
  SPARVAR_CHECK(t.device() == Device::CUDA, "download_raw: {} is not on the cuda backend", t.describe());
  make_current();
  Tensor host = Tensor::empty(t.shape(), t.dtype());
  if (t.numel() == 0) return host;
  CUDA_CHECK(cudaMemcpyAsync(host.data(), t.data(), t.nbytes(), cudaMemcpyDeviceToHost, stream_));
  CUDA_CHECK(cudaStreamSynchronize(stream_));
  return host;
}

void CudaBackend::write(const Tensor& host, Tensor& dst) {
  SPARVAR_CHECK(host.defined() && dst.defined(), "write: source or destination is missing (undefined tensor)");
  SPARVAR_CHECK(host.device() == Device::CPU, "write: {} is not a host tensor", host.describe());
  SPARVAR_CHECK(dst.device() == Device::CUDA, "write: {} is not on the cuda backend", dst.describe());
  SPARVAR_CHECK(host.numel() == dst.numel(), "write: source {} and destination {} differ in element count",
                shape_string(host.shape()), shape_string(dst.shape()));
  if (host.numel() == 0) return;
  make_current();
  // Converted on the host (round to nearest even, as the device conversion), so nothing is allocated here.
  const Tensor converted = host.dtype() == dst.dtype() ? host : host.to_dtype(dst.dtype());
  CUDA_CHECK(cudaMemcpyAsync(dst.data(), converted.data(), converted.nbytes(), cudaMemcpyHostToDevice, stream_));
  CUDA_CHECK(cudaStreamSynchronize(stream_));  // the host buffers may go as soon as we return
}

void CudaBackend::copy(const Tensor& src, Tensor& dst) {
  SPARVAR_CHECK(src.defined() && dst.defined(), "copy: source or destination is missing (undefined tensor)");
  SPARVAR_CHECK(src.device() == Device::CUDA && dst.device() == Device::CUDA,
                "copy: {} -> {}: both must be on the cuda backend", src.describe(), dst.describe());
  SPARVAR_CHECK(is_device_float(src.dtype()) && is_device_float(dst.dtype()),
                "copy: {} -> {}: only float dtypes (f32, f16, bf16) are copied", src.describe(), dst.describe());
  SPARVAR_CHECK(src.numel() == dst.numel(), "copy: source {} and destination {} differ in element count",
                shape_string(src.shape()), shape_string(dst.shape()));
  if (src.data() == dst.data() && src.dtype() == dst.dtype()) return;
  const auto* s0 = static_cast<const char*>(src.data());
  const auto* d0 = static_cast<const char*>(dst.data());
  SPARVAR_CHECK(src.numel() == 0 || s0 >= d0 + dst.nbytes() || d0 >= s0 + src.nbytes(),
                "copy: source {} and destination {} overlap", src.describe(), dst.describe());
  if (src.numel() == 0) return;
  make_current();
  if (src.dtype() == dst.dtype()) {
    CUDA_CHECK(cudaMemcpyAsync(dst.data(), src.data(), src.nbytes(), cudaMemcpyDeviceToDevice, stream_));
  } else {
    launch_convert(src.data(), src.dtype(), dst.data(), dst.dtype(), src.numel(), stream_);
  }
}

}  // namespace cuda
}  // namespace sparvar
