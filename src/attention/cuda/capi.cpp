// extern "C" entry for ctypes (the Python benchmark): errors become a return code plus a message.
#include "block_sparse_attention.h"

#include "core/error.h"

#include <exception>
#include <string>

namespace {
thread_local std::string last_error;
}

extern "C" int sparvar_block_sparse_attention(const BlockSparseAttentionArgs* args, cudaStream_t stream) {
  try {
    if (args == nullptr) throw sparvar::Error("block_sparse_attention: args is null");
    sparvar::block_sparse_attention(*args, stream);
    last_error.clear();
    return 0;
  } catch (const std::exception& e) {
    last_error = e.what();
    return 1;
  }
}

extern "C" const char* sparvar_last_error(void) { return last_error.c_str(); }
