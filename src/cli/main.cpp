// sparvar: one binary, several subcommands. Errors a user can cause end as one line on stderr, exit 1.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <spdlog/spdlog.h>
#include <vector>

#include "cli/commands.h"
#include "core/error.h"

int main(int argc, char** argv) {
  CLI::App app{
      "sparvar: fast inference for next-scale-prediction image generators (Infinity, VAR) with SparVAR sparse "
      "attention.\nRun 'sparvar <command> --help' for the options of a command."};
  app.require_subcommand(1);
  app.set_version_flag("--version", "sparvar 0.1.0");
  bool verbose = false;
  app.add_flag("-v,--verbose", verbose, "Print debug logging");

  std::vector<std::pair<CLI::App*, sparvar::cli::Runner>> commands;
  auto add = [&](sparvar::cli::Runner (*reg)(CLI::App&)) {
    const size_t before = app.get_subcommands({}).size();
    sparvar::cli::Runner run = reg(app);
    commands.emplace_back(app.get_subcommands({})[before], std::move(run));
  };
  add(&sparvar::cli::register_info);
  add(&sparvar::cli::register_generate);
  add(&sparvar::cli::register_analyse);
  add(&sparvar::cli::register_compare);
  add(&sparvar::cli::register_bench);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  spdlog::set_level(verbose ? spdlog::level::debug : spdlog::level::info);
  spdlog::set_pattern("%v");
  try {
    for (auto& [sub, run] : commands)
      if (sub->parsed()) return run();
  } catch (const sparvar::Error& e) {
    std::fprintf(stderr, "sparvar: error: %s\n", e.what());
    return 1;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "sparvar: error: out of host memory\n");
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "sparvar: internal error: %s\n", e.what());
    return 2;
  }
  return 1;
}
