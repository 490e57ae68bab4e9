// The one error type of sparvar: every failure a user can cause ends in a sparvar::Error whose message
// names what was wrong (file, key, shape, flag) so the CLI can print one clear line and exit non-zero.
#pragma once

#include <fmt/format.h>
#include <stdexcept>
#include <string>

namespace sparvar {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

template <typename... Args>
[[noreturn]] inline void fail(fmt::format_string<Args...> format, Args&&... args) {
  throw Error(fmt::format(format, std::forward<Args>(args)...));
}

}  // namespace sparvar

// SPARVAR_CHECK(cond, "format {}", args...) throws sparvar::Error with the formatted message if cond is false.
#define SPARVAR_CHECK(cond, ...)          \
  do {                                    \
    if (!(cond)) ::sparvar::fail(__VA_ARGS__); \
  } while (0)
