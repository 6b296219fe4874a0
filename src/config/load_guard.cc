// load_guard.cc: a lexer that follows TOML text as toml++ 3.3 does, far enough to see where it would break.
// Untrusted input: the TOML text; one pass, bounded by its length, nothing allocated but the message.
//
// It needs only what tells structure from text: strings (four kinds), comments, the brackets of
// arrays and inline tables (a "[" first on a line outside them is a table header), the headers'
// own brackets, and where a value starts (a number-like one is read ahead whole, quotes and all).
// It may stop early, saying "safe", only where toml++ certainly reports an error first (toml++
// stops at its first error, so nothing after it can reach the hazards); where it is unsure it
// goes on, which can only refuse text that is invalid TOML anyway.
#include "config/load_guard.h"

#include <algorithm>
#include <cstdint>
#include <cstdio>

namespace sluice::config {

namespace {

// Where toml++'s is_non_ascii_horizontal_whitespace() runs into TOML_UNREACHABLE: the blocks of
// its lookup table that it never expected to be asked about (computed from the 3.3 table).
bool unsafe_code_point(char32_t c) {
  return (c >= 0xA1 && c <= 0x499) || (c >= 0x2C5E && c <= 0x3057 && c != 0x3000) || (c >= 0xFB26 && c <= 0xFEFE);
}

bool is_bare(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
}

class cursor {
 public:
  explicit cursor(std::string_view t) : t_(t) {}
  bool eof() const { return pos_ >= t_.size(); }
  bool is(char c) const { return pos_ < t_.size() && t_[pos_] == c; }
  bool starts(std::string_view s) const { return t_.substr(pos_).substr(0, s.size()) == s; }
  char at(size_t ahead) const { return pos_ + ahead < t_.size() ? t_[pos_ + ahead] : '\0'; }
  bool has(size_t ahead) const { return pos_ + ahead < t_.size(); }

  // The code point here and its length; a byte that starts no UTF-8 sequence reads as U+FFFD
  // (toml++ refuses it; what matters here is only that it is none of the unsafe ones).
  char32_t code_point(size_t* len) const {
    const auto b = [&](size_t i) { return static_cast<unsigned char>(at(i)); };
    const auto cont = [&](size_t i) { return has(i) && (b(i) & 0xC0) == 0x80; };
    unsigned char lead = b(0);
    *len = 1;
    if (lead < 0x80) return lead;
    if (lead >= 0xC2 && lead <= 0xDF && cont(1)) return *len = 2, char32_t((lead & 0x1F) << 6 | (b(1) & 0x3F));
    if (lead >= 0xE0 && lead <= 0xEF && cont(1) && cont(2))
      return *len = 3, char32_t((lead & 0x0F) << 12 | (b(1) & 0x3F) << 6 | (b(2) & 0x3F));
    if (lead >= 0xF0 && lead <= 0xF4 && cont(1) && cont(2) && cont(3))
      return *len = 4, char32_t((lead & 0x07) << 18 | (b(1) & 0x3F) << 12 | (b(2) & 0x3F) << 6 | (b(3) & 0x3F));
    return 0xFFFD;
  }
  // One code point on.
  void next() {
    size_t len = 1;
    if (!eof()) code_point(&len);
    if (is('\n')) {
      ++line;
      column = 1;
    } else {
      ++column;
    }
    pos_ = std::min(pos_ + len, t_.size());
  }
  void skip(size_t n) {
    for (size_t i = 0; i < n && !eof(); ++i) next();
  }
  void skip_blanks() {
    while (is(' ') || is('\t')) next();
  }
  void skip_blanks_and_lines() {
    while (is(' ') || is('\t') || is('\r') || is('\n')) next();
  }

  int line = 1, column = 1;

 private:
  std::string_view t_;
  size_t pos_ = 0;
};

std::string describe(const cursor& c) {
  if (c.eof()) return "the end of the file";
  size_t len = 0;
  char32_t cp = c.code_point(&len);
  char buf[32];
  if (cp == '\n' || cp == '\r') return "the end of the line";
  if (cp < 0x20 || cp == 0x7F) {
    std::snprintf(buf, sizeof buf, "a control character (0x%02X)", static_cast<unsigned>(cp));
    return buf;
  }
  std::snprintf(buf, sizeof buf, " (U+%04X)", static_cast<unsigned>(cp));
  std::string shown = "'";
  for (size_t i = 0; i < len; ++i) shown += c.at(i);
  return shown + "'" + (cp >= 0x80 ? buf : "");
}

toml_hazard hazard(const cursor& c, std::string message) { return {c.line, c.column, std::move(message)}; }

enum class step { go_on, safe, unsafe };

// A string from its opening quote. Text in strings is safe but in one place: a """ string's
// escapes, where toml++ first asks whether the character after the backslash is whitespace.
step string(cursor& c, toml_hazard& found) {
  const char q = c.at(0);
  if (c.starts(q == '"' ? "\"\"\"" : "'''")) {
    const std::string_view close = q == '"' ? "\"\"\"" : "'''";
    c.skip(3);
    for (;;) {
      if (c.eof()) return step::safe;  // toml++: unterminated string
      if (c.starts(close)) {
        c.skip(3);
        for (int extra = 0; extra < 2 && c.is(q); ++extra) c.next();  // content may end in two quotes
        return step::go_on;
      }
      if (q == '"' && c.is('\\')) {
        c.next();
        size_t len = 0;
        if (!c.eof() && (c.is(' ') || c.is('\t') || c.is('\r') || c.is('\n'))) {
          c.skip_blanks_and_lines();
          if (!c.eof() && unsafe_code_point(c.code_point(&len))) {
            found = hazard(c, describe(c) + " begins a line continued by a line-ending backslash in a \"\"\" string, "
                              "which toml++ 3.3 cannot read safely; write it as a \\u escape or join the lines");
            return step::unsafe;
          }
          continue;
        }
        if (!c.eof() && unsafe_code_point(c.code_point(&len))) {
          found = hazard(c, describe(c) + " after a backslash is not an escape");
          return step::unsafe;
        }
      }
      c.next();
    }
  }
  c.next();
  for (;;) {
    if (c.eof() || c.is('\n')) return step::safe;  // toml++: a string without its end
    if (c.is(q)) {
      c.next();
      return step::go_on;
    }
    if (q == '"' && c.is('\\')) c.next();
    if (c.eof() || c.is('\n')) return step::safe;
    c.next();
  }
}

// A "[" first on a line outside any array: a table header, whose name must start right there.
step header(cursor& c, int& brackets, toml_hazard& found) {
  size_t n = 1;
  bool blank = false;
  for (; c.at(n) == ' ' || c.at(n) == '\t'; ++n) blank = true;
  bool array = false;
  if (c.at(n) == '[') {
    if (blank) return step::safe;  // toml++: "[ [" is refused
    array = true;
    for (++n; c.at(n) == ' ' || c.at(n) == '\t'; ++n) {
    }
  }
  if (!c.has(n) || c.at(n) == ']') return step::safe;  // toml++: the end, or an empty name
  const char first = c.at(n);
  c.skip(n);
  if (!is_bare(first) && first != '"' && first != '\'') {
    found = hazard(c, std::string("a table header needs a name after \"") + (array ? "[[" : "[") + "\", not " +
                          describe(c) + " (write [server] or [[receive_connector]])");
    return step::unsafe;
  }
  brackets = array ? 2 : 1;
  return step::go_on;
}

// A value that starts with a digit or a sign: toml++ first reads ahead to the next terminator to
// guess its type, asking of every character (a quote or an "=" too) whether it is whitespace; a
// date may go on after a space with its time. Valid TOML has only ASCII there, so the scan may
// stop at fewer terminators than toml++ does: it then only refuses more invalid text.
step number_like(cursor& c, toml_hazard& found) {
  const auto terminator = [&] { return c.eof() || c.is(' ') || c.is('\t') || c.is('\n') || c.is(']') || c.is('}') ||
                                       c.is(',') || c.is('#'); };
  for (int part = 0; part < 2; ++part) {
    int length = 0;
    for (; !terminator(); ++length) {
      size_t len = 0;
      if (unsafe_code_point(c.code_point(&len))) {
        found = hazard(c, describe(c) + " in a value: TOML has non-ASCII text only in strings and comments "
                                        "(toml++ 3.3 cannot read it safely here)");
        return step::unsafe;
      }
      c.next();
    }
    if (length != 10 || !c.is(' ') || !(c.at(1) >= '0' && c.at(1) <= '9')) break;
    c.next();  // 1979-05-27 07:32:00
  }
  return step::go_on;
}

}  // namespace

std::optional<toml_hazard> find_toml_hazard(std::string_view text) {
  cursor c(text);
  if (c.starts("\xEF\xBB\xBF")) c.next();  // toml++ skips a BOM
  toml_hazard found;
  std::string open;         // the arrays ('[') and inline tables ('{') around this point
  int brackets = 0;         // inside a table header: how many "]" end it
  bool line_start = true;
  bool value_next = false;  // after "=", or "[" or "," in an array: a value starts at the next character
  while (!c.eof()) {
    if (line_start) {
      line_start = false;
      c.skip_blanks();
      if (open.empty() && c.is('[')) {
        step s = header(c, brackets, found);
        if (s == step::unsafe) return found;
        if (s == step::safe) return std::nullopt;
      }
      continue;
    }
    if (value_next && !c.is('\n') && !c.is('#')) {
      if (c.is(' ') || c.is('\t')) {
        c.next();
        continue;
      }
      value_next = false;
      if (c.is('}') && !open.empty() && open.back() == '[')
        return hazard(c, "'}' where an array's next value or its \"]\" belongs "
                         "(toml++ 3.3 cannot read it safely here)");
      if ((c.at(0) >= '0' && c.at(0) <= '9') || c.is('+') || c.is('-')) {
        if (number_like(c, found) == step::unsafe) return found;
        continue;
      }
    }
    if (c.is('\n')) {
      if (brackets != 0) return std::nullopt;  // toml++: a header without its "]"
      c.next();
      line_start = true;
    } else if (c.is('#')) {
      while (!c.eof() && !c.is('\n')) c.next();
    } else if (c.is('"') || c.is('\'')) {
      step s = string(c, found);
      if (s == step::unsafe) return found;
      if (s == step::safe) return std::nullopt;
    } else if (c.is('[') || c.is('{')) {
      if (brackets != 0) return std::nullopt;  // toml++: not a key
      open += c.at(0);
      value_next = c.is('[');
      c.next();
    } else if (c.is('=') || (c.is(',') && !open.empty() && open.back() == '[')) {
      value_next = true;
      c.next();
    } else if (brackets != 0 && c.is(']')) {
      c.next();
      if (brackets == 2 && !c.is(']')) return std::nullopt;  // toml++: "[[name]" is refused
      if (brackets == 2) c.next();
      brackets = 0;
    } else if (c.is(']') || c.is('}')) {
      if (open.empty()) return std::nullopt;  // toml++: closes nothing
      open.pop_back();
      c.next();
    } else {
      size_t len = 0;
      if (unsafe_code_point(c.code_point(&len)))
        return hazard(c, describe(c) + " outside a string or comment: TOML has non-ASCII text only in strings "
                                       "and comments (toml++ 3.3 cannot read it safely here)");
      c.next();
    }
  }
  return std::nullopt;
}

}  // namespace sluice::config
