// libFuzzer: the restricted unpickler and the torch state-dict interpretation of data.pkl.
#include <cstddef>
#include <cstdint>

#include "core/error.h"
#include "io/torch_pickle.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const auto contents = sparvar::io::parse_torch_pickle({data, size}, "fuzz");
    (void)contents;
  } catch (const sparvar::Error&) {
  }
  return 0;
}
