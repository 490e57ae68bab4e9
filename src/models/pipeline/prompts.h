// The prompts of a CLI run: --prompt (repeatable) and --prompts-file (one per line; blank lines and lines
// starting with '#' skipped), checked before any model is loaded: an empty prompt is an Error unless the run
// is unconditional, which takes no prompt at all.
#pragma once

#include <string>
#include <vector>

namespace sparvar::pipeline {

std::vector<std::string> read_prompts_file(const std::string& path);

// Joins both sources; unconditional: returns {""} (one unconditional row) and rejects any prompt.
std::vector<std::string> gather_prompts(const std::vector<std::string>& flags, const std::string& file,
                                        bool unconditional);

}  // namespace sparvar::pipeline
