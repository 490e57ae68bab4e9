// Interprets the data.pkl of a PyTorch zip checkpoint with the restricted unpickler. Allowed globals are
// only those a state dict needs:
//   collections.OrderedDict, torch._utils._rebuild_tensor_v2 / _rebuild_tensor / _rebuild_parameter,
//   torch.{Float,Half,BFloat16,Int,Long,Byte,Bool}Storage (Double/Char/Short are named, then refused),
// storages arrive as persistent ids ('storage', torch.XStorage, key, location, numel). Any other global
// (os.system, builtins.eval, numpy...) is an Error "disallowed global module.name".
//
// The root must be a dict. Nested dicts are flattened with '.': {"model": {"w": t}} gives "model.w", so a
// VAE saved as {"vae": state_dict} reads as "vae.*"; callers strip the prefix they expect. Non-tensor leaves
// (an "epoch" int, a config string) are listed in `other_entries`, not returned as tensors.
#pragma once

#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/tensor.h"
#include "io/pickle_value.h"

namespace sparvar::io {

struct TorchTensorEntry {
  std::string name;
  StorageRef storage;
  int64_t offset = 0;  // elements
  Shape sizes;
  std::vector<int64_t> strides;
  bool contiguous = true;  // row-major dense; otherwise the reader makes a contiguous copy
};

struct TorchPickleContents {
  std::vector<TorchTensorEntry> tensors;   // in pickle order; every view checked against its storage's numel
  std::vector<std::string> other_entries;  // "epoch: int"
};

TorchPickleContents parse_torch_pickle(std::span<const uint8_t> data_pkl, std::string_view label);

}  // namespace sparvar::io
