// Defaults of AttentionExecutor's optional methods (device CS4A builds, in-place operands): executors that do not
// have them (builds_cs4a() / in_place() false) reject the calls; the runner never makes them.
#include "models/infinity/attention_executor.h"

#include "core/error.h"

namespace sparvar::infinity {

void AttentionExecutor::set_cs4a_plan(const Cs4aPlan&) { fail("this attention executor does not build CS4A patterns"); }
void AttentionExecutor::build_cs4a(std::span<const int>) { fail("this attention executor does not build CS4A patterns"); }
BlockPattern AttentionExecutor::cs4a_selection() { fail("this attention executor does not build CS4A patterns"); }
void AttentionExecutor::attend_in_place(const Tensor&, const Tensor&, const Tensor&, int scale, int, MassOutput,
                                        Tensor&) {
  fail("this attention executor cannot read its operands in place (scale {})", scale);
}
void AttentionExecutor::cache_rows(const Tensor&, const Tensor&, Tensor&) {
  fail("this attention executor keeps no cache in tile order");
}

void check_cache_rows(const Tensor& cache, const Tensor& slots, const Tensor& dst, int64_t heads, int64_t head_dim,
                      DType dtype) {
  const int64_t B = dst.dim(0), rows = dst.dim(2);
  SPARVAR_CHECK(cache.ndim() == 4 && dst.ndim() == 4 && cache.dim(0) == B && cache.dim(1) == heads &&
                    dst.dim(1) == heads && cache.dim(3) == head_dim && dst.dim(3) == head_dim &&
                    slots.numel() == rows && cache.dtype() == dtype && dst.dtype() == dtype &&
                    slots.dtype() == DType::I32,
                "cache rows: cache {} / slots {} / dst {} do not match ({} heads of {}, {})", cache.describe(),
                slots.describe(), dst.describe(), heads, head_dim, dtype_name(dtype));
}
BlockPattern AttentionExecutor::download_pattern(int slot) {
  fail("this attention executor keeps no device patterns to download (slot {})", slot);
}

}  // namespace sparvar::infinity
