// load_guard.h: finds the TOML text that Debian's toml++ 3.3 cannot be handed safely (issue 13), before it is.
// Untrusted input: the TOML text (any bytes).
#pragma once
#include <optional>
#include <string>
#include <string_view>

namespace sluice::config {

// toml++ 3.3 breaks an internal assertion, or reaches a __builtin_unreachable(), on some text;
// where assertions are compiled out (the packaged library) both are undefined behaviour, not an
// error. Found by tests/fuzz (config, config_edit) with the assertions made to abort:
//  - a table header whose first character after "[" or "[[" (and blanks) is not a key, "]" or
//    the end: "[#x]", "[[[", "[=", "[" at the end of a line;
//  - "}" where an array expects a value: "[}", "[1, }", "[\n}";
//  - a code point in U+00A1..U+0499, U+2C5E..U+3057 (but U+3000) or U+FB26..U+FEFE where toml++
//    asks whether it is whitespace: outside strings and comments (never valid TOML; this
//    includes a value that starts like a number, which toml++ reads ahead to its end, quotes and
//    all), right after a backslash in a """ string, or first on a line continued by a
//    line-ending backslash in one (valid TOML: "é" there is undefined behaviour, not text).
// Every other text is what toml++ reads safely, with its own errors for invalid TOML.
struct toml_hazard {
  int line = 0;    // 1-based
  int column = 0;  // 1-based, in code points
  std::string message;
};
std::optional<toml_hazard> find_toml_hazard(std::string_view text);

}  // namespace sluice::config
