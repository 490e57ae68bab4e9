// NVTX ranges (header-only nvtx3 from the CUDA toolkit): free when no profiler is attached.
#include "backend/trace.h"

#include <nvtx3/nvToolsExt.h>

namespace sparvar {

void trace_push(const char* name) { nvtxRangePushA(name); }
void trace_pop() { nvtxRangePop(); }

}  // namespace sparvar
