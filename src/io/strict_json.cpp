#include "io/strict_json.h"

#include <set>
#include <string>
#include <vector>

#include "core/error.h"

namespace sparvar::io {

nlohmann::json parse_strict_json(std::string_view text, std::string_view what, int max_depth) {
  using nlohmann::json;
  std::vector<std::set<std::string>> keys_per_object;  // one set per open object, innermost last
  int depth = 0;
  std::string problem;
  auto callback = [&](int /*depth*/, json::parse_event_t event, json& parsed) -> bool {
    switch (event) {
      case json::parse_event_t::object_start:
        keys_per_object.emplace_back();
        [[fallthrough]];
      case json::parse_event_t::array_start:
        if (++depth > max_depth && problem.empty()) problem = fmt::format("nested deeper than {} levels", max_depth);
        break;
      case json::parse_event_t::object_end:
        if (!keys_per_object.empty()) keys_per_object.pop_back();
        [[fallthrough]];
      case json::parse_event_t::array_end:
        --depth;
        break;
      case json::parse_event_t::key:
        if (!keys_per_object.empty() && parsed.is_string() &&
            !keys_per_object.back().insert(parsed.get<std::string>()).second && problem.empty())
          problem = fmt::format("duplicate key \"{}\"", parsed.get<std::string>());
        break;
      case json::parse_event_t::value:
        break;
    }
    return true;
  };
  // nlohmann stops at a NUL byte as if the input ended there, which would hide trailing garbage.
  SPARVAR_CHECK(text.find('\0') == std::string_view::npos, "{} contains a NUL byte", what);
  json result;
  try {
    result = json::parse(text.begin(), text.end(), callback, /*allow_exceptions=*/true, /*ignore_comments=*/false);
  } catch (const json::exception& e) {
    // nlohmann's messages start with "[json.exception.parse_error.101] "; keep only the explanation.
    std::string message = e.what();
    if (auto pos = message.find("] "); pos != std::string::npos) message = message.substr(pos + 2);
    fail("{} is not valid JSON: {}", what, message);
  } catch (const std::bad_alloc&) {
    fail("{}: out of memory while parsing JSON", what);
  }
  SPARVAR_CHECK(problem.empty(), "{} is not acceptable JSON: {}", what, problem);
  return result;
}

}  // namespace sparvar::io
