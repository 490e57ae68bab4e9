// A restricted pickle virtual machine: the opcodes of protocols 2-5 that torch.save emits for state dicts,
// nothing that executes code. What GLOBAL names, REDUCE calls, BUILD sets and BINPERSID loads mean is
// decided by a PickleHooks object (the torch rules live in torch_pickle.cpp); everything is bounded
// (stack, marks, memo, value count, string lengths against the remaining input).
#pragma once

#include <span>
#include <string_view>

#include "io/pickle_value.h"

namespace sparvar::io {

class PickleHooks {
 public:
  virtual ~PickleHooks() = default;
  // GLOBAL / STACK_GLOBAL: return a value for module.name, or throw Error("disallowed global ...").
  virtual PickleValue* global(PickleArena& arena, std::string_view module, std::string_view name) = 0;
  // REDUCE: callable(*args) where args is a Tuple.
  virtual PickleValue* reduce(PickleArena& arena, PickleValue* callable, PickleValue* args) = 0;
  // BUILD: obj.__setstate__(state); returns nothing, may throw.
  virtual void build(PickleValue* object, PickleValue* state) = 0;
  // BINPERSID.
  virtual PickleValue* persistent_load(PickleArena& arena, PickleValue* pid) = 0;
};

struct UnpickleLimits {
  size_t max_stack = 1u << 20;
  size_t max_marks = 1u << 16;
  size_t max_memo = 1u << 22;
  size_t max_values = 1u << 24;
};

// Runs the program in bytes up to STOP and returns the result (owned by arena). `label` names the source
// in errors. Throws Error on anything malformed, unsupported or disallowed.
PickleValue* unpickle(std::span<const uint8_t> bytes, PickleArena& arena, PickleHooks& hooks, std::string_view label,
                      const UnpickleLimits& limits = {});

}  // namespace sparvar::io
