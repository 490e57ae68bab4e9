// The CPU backend object and its memory ops; the compute ops live in the files named after them.
#include "backend/cpu/cpu_backend.h"

#include <chrono>
#include <cstring>
#include <fmt/format.h>

#include "backend/cpu/checks.h"
#include "core/slice_copy.h"

namespace sparvar {

std::unique_ptr<Backend> make_cpu_backend(int threads, bool poison_allocations) {
  return std::make_unique<cpu::CpuBackend>(threads, poison_allocations);
}

namespace cpu {

CpuBackend::CpuBackend(int threads, bool poison_allocations) : pool_(threads), poison_allocations_(poison_allocations) {}

std::string CpuBackend::name() const { return fmt::format("cpu ({} threads, fp32)", pool_.threads()); }

Tensor CpuBackend::empty(const Shape& shape, DType dtype) {
  SPARVAR_CHECK(dtype == DType::F32 || dtype == DType::U8,
                "empty: the cpu backend stores f32 tensors (and u8 bits) only, asked for {}{}", dtype_name(dtype),
                shape_string(shape));
  Tensor t = Tensor::empty(shape, dtype);
  if (poison_allocations_) std::memset(t.data(), 0xFF, t.nbytes());  // every element a quiet NaN
  return t;
}

Tensor CpuBackend::upload(const Tensor& host, DType dtype) {
  SPARVAR_CHECK(host.defined(), "upload: host tensor is missing (undefined tensor)");
  SPARVAR_CHECK(host.device() == Device::CPU, "upload: {} is not a host tensor", host.describe());
  SPARVAR_CHECK(dtype == DType::F32 || dtype == DType::U8,
                "upload: the cpu backend stores f32 tensors (and u8 bits) only; cannot upload {} as {} (use f32)",
                host.describe(), dtype_name(dtype));
  return host.to_dtype(dtype);
}

Tensor CpuBackend::download(const Tensor& t) {
  SPARVAR_CHECK(t.defined(), "download: tensor is missing (undefined tensor)");
  SPARVAR_CHECK(t.device() == Device::CPU, "download: {} is not on the cpu backend", t.describe());
  return t.to_dtype(DType::F32);
}

Tensor CpuBackend::download_raw(const Tensor& t) {
  SPARVAR_CHECK(t.defined(), "download_raw: tensor is missing (undefined tensor)");
  SPARVAR_CHECK(t.device() == Device::CPU, "download_raw: {} is not on the cpu backend", t.describe());
  return t.clone();
}

void CpuBackend::copy(const Tensor& src, Tensor& dst) {
  SPARVAR_CHECK(src.defined() && dst.defined(), "copy: source or destination is missing (undefined tensor)");
  SPARVAR_CHECK(src.device() == Device::CPU && dst.device() == Device::CPU,
                "copy: {} -> {}: both must be on the cpu backend", src.describe(), dst.describe());
  SPARVAR_CHECK(dtype_is_float(src.dtype()) && dtype_is_float(dst.dtype()),
                "copy: {} -> {}: only float dtypes are copied", src.describe(), dst.describe());
  SPARVAR_CHECK(src.numel() == dst.numel(), "copy: source {} and destination {} differ in element count",
                shape_string(src.shape()), shape_string(dst.shape()));
  if (src.data() == dst.data() && src.dtype() == dst.dtype()) return;
  check_disjoint(src, dst, "copy", "source");
  if (src.dtype() == dst.dtype()) {
    std::memcpy(dst.data(), src.data(), src.nbytes());
  } else {
    convert_elements(src.data(), src.dtype(), dst.data(), dst.dtype(), static_cast<size_t>(src.numel()));
  }
}

void CpuBackend::write(const Tensor& host, Tensor& dst) {
  SPARVAR_CHECK(host.defined() && dst.defined(), "write: source or destination is missing (undefined tensor)");
  SPARVAR_CHECK(host.device() == Device::CPU && dst.device() == Device::CPU,
                "write: {} -> {}: both must be on the cpu backend", host.describe(), dst.describe());
  SPARVAR_CHECK(host.numel() == dst.numel(), "write: source {} and destination {} differ in element count",
                shape_string(host.shape()), shape_string(dst.shape()));
  if (host.numel() == 0 || host.data() == dst.data()) return;
  check_disjoint(host, dst, "write", "source");
  if (host.dtype() == dst.dtype()) {
    std::memcpy(dst.data(), host.data(), host.nbytes());
  } else {
    convert_elements(host.data(), host.dtype(), dst.data(), dst.dtype(), static_cast<size_t>(host.numel()));
  }
}

void CpuBackend::copy_slice(const Tensor& src, Tensor& dst, int dim, int64_t offset) {
  constexpr std::string_view op = "copy_slice";
  SPARVAR_CHECK(src.defined() && dst.defined(), "copy_slice: source or destination is missing (undefined tensor)");
  SPARVAR_CHECK(src.device() == Device::CPU && dst.device() == Device::CPU,
                "copy_slice: {} -> {}: both must be on the cpu backend", src.describe(), dst.describe());
  const SliceCopy g = slice_copy_geometry(src, dst, dim, offset, op);
  check_disjoint(src, dst, op, "source");
  const auto* s = static_cast<const char*>(src.data());
  auto* d = static_cast<char*>(dst.data());
  for (int64_t r = 0; r < g.rows; ++r)
    std::memcpy(d + r * g.dst_pitch + g.dst_start, s + r * g.src_pitch, static_cast<size_t>(g.src_pitch));
}

namespace {
class WallClockEvent final : public TimingEvent {
 public:
  WallClockEvent() : at_(std::chrono::steady_clock::now()) {}
  double ms_since(const TimingEvent& earlier) const override {
    const auto* e = dynamic_cast<const WallClockEvent*>(&earlier);
    SPARVAR_CHECK(e != nullptr, "timing: the earlier event is not a cpu backend event");
    return std::chrono::duration<double, std::milli>(at_ - e->at_).count();
  }

 private:
  std::chrono::steady_clock::time_point at_;
};
}  // namespace

std::unique_ptr<TimingEvent> CpuBackend::record_event() { return std::make_unique<WallClockEvent>(); }

}  // namespace cpu
}  // namespace sparvar
