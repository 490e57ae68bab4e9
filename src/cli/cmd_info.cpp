// Placeholder until the io readers land: `sparvar info` is owned by src/io's work.
#include "cli/commands.h"
#include "core/error.h"

namespace sparvar::cli {

Runner register_info(CLI::App& app) {
  auto* cmd = app.add_subcommand("info", "List the tensors of a checkpoint (safetensors, sharded index, .pth/.bin)");
  auto path = std::make_shared<std::string>();
  cmd->add_option("checkpoint", *path, "Checkpoint file")->required();
  return [path]() -> int { fail("info: not implemented yet ({})", *path); };
}

}  // namespace sparvar::cli
