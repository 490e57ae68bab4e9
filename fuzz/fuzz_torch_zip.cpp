// libFuzzer: a whole PyTorch zip checkpoint (libzip + data.pkl + storages), loading every tensor.
#include <cstddef>
#include <cstdint>

#include "core/error.h"
#include "io/torch_checkpoint.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const auto ckpt = sparvar::io::TorchCheckpoint::from_buffer({data, size}, nullptr, "fuzz");
    volatile float sink = 0;
    for (const auto& info : ckpt.tensors()) {
      const sparvar::Tensor t = ckpt.tensor(info.name);
      if (t.numel() > 0 && sparvar::dtype_is_float(t.dtype())) sink = sink + t.to_floats().back();
    }
  } catch (const sparvar::Error&) {
  }
  return 0;
}
