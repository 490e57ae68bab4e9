// JSON parsing for untrusted headers: nlohmann-json with duplicate keys and deep nesting rejected (its
// default silently keeps the last duplicate), every failure turned into one sparvar::Error.
#pragma once

#include <nlohmann/json.hpp>
#include <string_view>

namespace sparvar::io {

// `what` names the source in errors ("safetensors header of model.safetensors").
nlohmann::json parse_strict_json(std::string_view text, std::string_view what, int max_depth = 16);

}  // namespace sparvar::io
