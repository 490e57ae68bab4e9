// libFuzzer: the safetensors header parser, then a read of the first and last byte of every tensor it
// accepted (ASan flags any view outside the input).
#include <cstddef>
#include <cstdint>

#include "core/error.h"
#include "io/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const auto file = sparvar::io::SafetensorsFile::from_buffer({data, size}, nullptr, "fuzz");
    volatile uint8_t sink = 0;
    for (const auto& info : file.tensors()) {
      const sparvar::Tensor t = file.tensor(info.name);
      if (t.nbytes() == 0) continue;
      const auto* p = static_cast<const uint8_t*>(t.data());
      sink = sink ^ p[0] ^ p[t.nbytes() - 1];
    }
  } catch (const sparvar::Error&) {
  }
  return 0;
}
