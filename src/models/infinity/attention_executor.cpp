// Defaults of AttentionExecutor's device CS4A methods: executors that do not build CS4A patterns themselves
// (builds_cs4a() == false) reject the calls; the runner never makes them.
#include "models/infinity/attention_executor.h"

#include "core/error.h"

namespace sparvar::infinity {

void AttentionExecutor::set_cs4a_plan(const Cs4aPlan&) { fail("this attention executor does not build CS4A patterns"); }
void AttentionExecutor::build_cs4a(std::span<const int>) { fail("this attention executor does not build CS4A patterns"); }
BlockPattern AttentionExecutor::cs4a_selection() { fail("this attention executor does not build CS4A patterns"); }
BlockPattern AttentionExecutor::download_pattern(int slot) {
  fail("this attention executor keeps no device patterns to download (slot {})", slot);
}

}  // namespace sparvar::infinity
