// The recorded work (Backend::record: a CUDA graph) of each scale of a generation plan, and the rule for when
// a scale is recorded, replayed or run eagerly:
//  - a scale runs eagerly the first time (with this plan, these text buffers and these frozen settings): its
//    first run may autotune GEMMs or build cuDNN plans, which synchronise and must not happen in a capture;
//  - the next time it is recorded, then replayed; from then on it is replayed;
//  - a recording whose scratch moved (RecordedWork::valid) is recorded again;
//  - a scale the caller marks not capturable always runs eagerly, and so does one whose recording failed
//    (a warning says why; the eager run then surfaces any error of the work itself).
// Slots are per (scale, whether the scale prepares the next scale's input): the last scale of a run does not.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include "backend/backend.h"

namespace sparvar::infinity {

// What a recording freezes besides buffer addresses: the sampling scalars, whether the uniforms come from the
// plan's buffer (or Philox), the text lengths (cross-attention masks). The seed is read from device memory.
struct RecordKey {
  float tau = 1.0f, cfg = 1.0f, top_p = 0.0f;
  int top_k = 0;
  bool supplied_uniforms = false;
  std::vector<int32_t> text_lengths;
  bool operator==(const RecordKey&) const = default;
};

class ScaleGraphs {
 public:
  enum class Outcome { Eager, Recorded, Replayed };

  explicit ScaleGraphs(int scales) : slots_(static_cast<size_t>(2 * scales)) {}

  // Drops every recording and forgets the eager runs (the buffers they used are gone).
  void clear();
  // Starts a call with `key`: when it differs from the last call's, clear() first.
  void begin_call(const RecordKey& key);
  // Queues scale `scale`'s work: `body`, eagerly or through its recording, by the rule above. capturable =
  // false runs it eagerly. On the CPU backend a "recording" runs the body again at every replay.
  Outcome run(Backend& backend, int scale, bool prepares_next, bool capturable, const std::function<void()>& body);

 private:
  struct Slot {
    std::unique_ptr<RecordedWork> work;
    bool ran_eagerly = false;
    bool refused = false;  // recording failed (logged): eager until clear()
  };
  std::vector<Slot> slots_;
  std::optional<RecordKey> key_;
};

}  // namespace sparvar::infinity
