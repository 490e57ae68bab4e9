// `sparvar info`: what a checkpoint holds, without loading its data.
#include <algorithm>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "core/error.h"
#include "io/checkpoint.h"

namespace sparvar::cli {
namespace {

struct InfoOptions {
  std::string path;
  bool json = false;
  std::string filter;
  int64_t limit = -1;
};

std::string human_bytes(uint64_t bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1024 && u < 4) v /= 1024, ++u;
  return u == 0 ? fmt::format("{} B", bytes) : fmt::format("{:.2f} {}", v, units[u]);
}

int run_info(const InfoOptions& o) {
  const io::Checkpoint ckpt = io::open_checkpoint(o.path);
  std::vector<const io::TensorInfo*> shown;
  size_t matching = 0;
  for (const auto& t : ckpt.tensors()) {
    if (!o.filter.empty() && t.name.find(o.filter) == std::string::npos) continue;
    ++matching;
    if (o.limit < 0 || static_cast<int64_t>(shown.size()) < o.limit) shown.push_back(&t);
  }

  if (o.json) {
    nlohmann::ordered_json j;
    j["path"] = ckpt.path();
    j["format"] = ckpt.format();
    j["tensor_count"] = ckpt.tensors().size();
    j["parameter_count"] = ckpt.parameter_count();
    j["total_bytes"] = ckpt.total_bytes();
    auto& by_dtype = j["bytes_by_dtype"] = nlohmann::ordered_json::object();
    for (const auto& [dtype, bytes] : ckpt.bytes_by_dtype()) by_dtype[std::string(dtype_name(dtype))] = bytes;
    j["matching"] = matching;
    auto& list = j["tensors"] = nlohmann::ordered_json::array();
    for (const auto* t : shown)
      list.push_back({{"name", t->name}, {"dtype", dtype_name(t->dtype)}, {"shape", t->shape}, {"bytes", t->bytes}});
    std::printf("%s\n", j.dump(2).c_str());
    return 0;
  }

  size_t name_width = 4;
  for (const auto* t : shown) name_width = std::max(name_width, t->name.size());
  std::printf("%s", fmt::format("{}: {}\n\n", ckpt.path(), ckpt.format()).c_str());
  std::printf("%s", fmt::format("{:<{}}  {:<5}  {:<24}  {:>12}\n", "name", name_width, "dtype", "shape", "bytes").c_str());
  for (const auto* t : shown)
    std::printf("%s", fmt::format("{:<{}}  {:<5}  {:<24}  {:>12}\n", t->name, name_width, dtype_name(t->dtype),
                                  shape_string(t->shape), t->bytes).c_str());
  if (shown.size() < matching) std::printf("... %zu more (raise --limit)\n", matching - shown.size());
  std::printf("\n");
  if (!o.filter.empty()) std::printf("%s", fmt::format("{} of {} tensors match '{}'\n", matching, ckpt.tensors().size(), o.filter).c_str());
  std::printf("%s", fmt::format("tensors: {}   parameters: {}   size: {}\n", ckpt.tensors().size(),
                                ckpt.parameter_count(), human_bytes(ckpt.total_bytes())).c_str());
  for (const auto& [dtype, bytes] : ckpt.bytes_by_dtype())
    std::printf("%s", fmt::format("  {:<5} {}\n", dtype_name(dtype), human_bytes(bytes)).c_str());
  return 0;
}

}  // namespace

Runner register_info(CLI::App& app) {
  auto* cmd = app.add_subcommand("info", "List the tensors of a checkpoint (safetensors, sharded index, .pth/.bin)");
  cmd->footer(
      "Reads only the header or pickle, never the weights, so it is fast on any size.\n"
      "Formats: safetensors, PyTorch zip (.pth/.bin from torch.save >= 1.6), a sharded *.index.json,\n"
      "or a folder holding one. Nested state dicts show up '.'-joined (model.blocks.0...).\n\n"
      "Examples:\n"
      "  sparvar info infinity_2b_reg.pth --filter blocks.0.\n"
      "  sparvar info infinity_8b_weights/ --limit 20\n"
      "  sparvar info vae.safetensors --json | jq .bytes_by_dtype");
  auto o = std::make_shared<InfoOptions>();
  cmd->add_option("checkpoint", o->path, "Checkpoint file or folder")->required();
  cmd->add_flag("--json", o->json, "Print JSON (path, format, totals, tensors) instead of a table");
  cmd->add_option("--filter", o->filter, "Show only tensors whose name contains SUBSTR")->type_name("SUBSTR");
  cmd->add_option("--limit", o->limit, "Show at most N tensors (totals still cover all)")->type_name("N")
      ->check(CLI::NonNegativeNumber);
  return [o]() -> int { return run_info(*o); };
}

}  // namespace sparvar::cli
