// The skinny GEMM's environment switches (gemm_skinny.h), parsed here because error messages need fmt, which the
// .cu side cannot include.
#include <cstdlib>
#include <string_view>

#include "backend/cuda/gemm_skinny.h"
#include "core/error.h"

namespace sparvar::cuda {

int skinny_rows_from_env() {
  const char* on = std::getenv("SPARVAR_SKINNY_GEMM");
  if (!on) return 0;  // off by default: see gemm_skinny.h for why
  const std::string_view v(on);
  SPARVAR_CHECK(v == "0" || v == "1", "SPARVAR_SKINNY_GEMM={}: expected 0 (off) or 1 (on)", v);
  if (v == "0") return 0;
  if (const char* rows = std::getenv("SPARVAR_SKINNY_GEMM_ROWS")) {
    char* end = nullptr;
    const long n = std::strtol(rows, &end, 10);
    SPARVAR_CHECK(end != rows && *end == '\0' && n >= 1 && n <= kSkinnyMaxRows,
                  "SPARVAR_SKINNY_GEMM_ROWS={}: expected the largest row count to take, 1 to {}", rows,
                  kSkinnyMaxRows);
    return static_cast<int>(n);
  }
  return kSkinnyDefaultRows;
}

}  // namespace sparvar::cuda
