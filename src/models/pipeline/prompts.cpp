#include "models/pipeline/prompts.h"

#include <fstream>

#include "core/error.h"

namespace sparvar::pipeline {

namespace {
bool blank(const std::string& s) { return s.find_first_not_of(" \t\r\n") == std::string::npos; }
}  // namespace

std::vector<std::string> read_prompts_file(const std::string& path) {
  std::ifstream in(path);
  SPARVAR_CHECK(in.good(), "--prompts-file {}: cannot be read", path);
  std::vector<std::string> out;
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (blank(line) || line.front() == '#') continue;
    out.push_back(line);
  }
  SPARVAR_CHECK(!out.empty(), "--prompts-file {} holds no prompt", path);
  return out;
}

std::vector<std::string> gather_prompts(const std::vector<std::string>& flags, const std::string& file,
                                        bool unconditional) {
  std::vector<std::string> prompts = flags;
  if (!file.empty())
    for (auto& p : read_prompts_file(file)) prompts.push_back(std::move(p));
  if (unconditional) {
    for (const auto& p : prompts)
      SPARVAR_CHECK(blank(p), "--unconditional takes no prompt (got '{}')", p);
    return {""};
  }
  SPARVAR_CHECK(!prompts.empty(), "no prompt: give --prompt TEXT (or --prompts-file FILE), or --unconditional");
  for (const auto& p : prompts)
    SPARVAR_CHECK(!blank(p), "empty prompt: give some text, or --unconditional for the model's unconditional image");
  return prompts;
}

}  // namespace sparvar::pipeline
