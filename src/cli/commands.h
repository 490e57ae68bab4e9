// Each subcommand lives in its own file and registers itself on the root app; main() dispatches.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>

namespace sparvar::cli {

// A registered subcommand returns the function that runs it once its options are parsed; the function
// returns the process exit code.
using Runner = std::function<int()>;

Runner register_info(CLI::App& app);
Runner register_generate(CLI::App& app);
Runner register_analyse(CLI::App& app);
Runner register_compare(CLI::App& app);
Runner register_bench(CLI::App& app);

}  // namespace sparvar::cli
