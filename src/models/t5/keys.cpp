#include "models/t5/keys.h"

#include <fmt/format.h>

#include "core/error.h"
#include "io/checkpoint.h"

namespace sparvar::t5 {

std::string block_key(int block, const char* leaf) { return fmt::format("encoder.block.{}.{}", block, leaf); }

std::string embedding_key(const io::Checkpoint& ckpt) {
  for (const char* key : {"shared.weight", "encoder.embed_tokens.weight"}) {
    if (ckpt.contains(key)) return key;
  }
  fail("T5 checkpoint {}: no token embedding (neither 'shared.weight' nor 'encoder.embed_tokens.weight')",
       ckpt.path());
}

}  // namespace sparvar::t5
