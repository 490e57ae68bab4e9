#include "models/infinity/scale_graphs.h"

#include <spdlog/spdlog.h>

#include "core/error.h"

namespace sparvar::infinity {

void ScaleGraphs::clear() {
  for (Slot& s : slots_) s = Slot{};
}

void ScaleGraphs::begin_call(const RecordKey& key) {
  if (key_ && *key_ == key) return;
  clear();
  key_ = key;
}

ScaleGraphs::Outcome ScaleGraphs::run(Backend& be, int scale, bool prepares_next, bool capturable,
                                      const std::function<void()>& body) {
  const size_t i = static_cast<size_t>(scale) * 2 + (prepares_next ? 1 : 0);
  SPARVAR_CHECK(scale >= 0 && i < slots_.size(), "internal: scale {} outside the plan's {} scales", scale,
                slots_.size() / 2);
  Slot& slot = slots_[i];
  if (slot.work && !slot.work->valid()) slot.work.reset();
  const auto eager = [&] {
    body();
    slot.ran_eagerly = true;
    return Outcome::Eager;
  };
  if (!capturable || slot.refused || (!slot.work && !slot.ran_eagerly)) return eager();
  Outcome outcome = Outcome::Replayed;
  if (!slot.work) {
    try {
      slot.work = be.record(body);
    } catch (const Error& e) {
      // Eager work stays correct: say why once and keep this scale eager (an error of the work itself
      // comes back from the eager run).
      slot.refused = true;
      spdlog::warn("scale {}: its work could not be recorded, it runs eagerly: {}", scale, e.what());
      return eager();
    }
    outcome = Outcome::Recorded;
    if (!slot.work->valid()) {  // scratch moved while it was being captured: this time, eagerly
      slot.work.reset();
      return eager();
    }
  }
  slot.work->replay();
  return outcome;
}

}  // namespace sparvar::infinity
