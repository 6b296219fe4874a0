// edit_scan.h: internal to config/edit: the TOML line scanner (statements, values, inline tables) and the [[kind]] blocks.
// Untrusted input: the TOML text; every step is bounded by the text's end, its size (4 MiB) and a nesting limit.
#pragma once
#include <toml++/toml.h>

#include <algorithm>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sluice::config::edit::detail {

constexpr size_t max_text = 4u << 20;
constexpr int max_depth = 64;   // arrays and inline tables inside each other

using path = std::vector<std::string>;

inline bool is_bare(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
}

// Walks TOML text without building values: where keys, values and lines begin and end.
// Every step checks the end of the text; a shape it does not know makes it return false.
class lexer {
 public:
  explicit lexer(std::string_view t, size_t at = 0) : t_(t), pos(at) {}
  std::string_view t_;
  size_t pos;

  bool eof() const { return pos >= t_.size(); }
  bool is(char c) const { return pos < t_.size() && t_[pos] == c; }
  bool starts(std::string_view s) const { return t_.substr(std::min(pos, t_.size())).substr(0, s.size()) == s; }
  bool at_eol() const { return eof() || is('\n') || starts("\r\n"); }
  void skip_ws() {
    while (is(' ') || is('\t')) ++pos;
  }
  void skip_comment() {
    if (is('#'))
      while (!at_eol()) ++pos;
  }
  // Consumes a line end; true at the end of the text too.
  bool eol() {
    if (eof()) return true;
    if (is('\n')) return ++pos, true;
    if (starts("\r\n")) return pos += 2, true;
    return false;
  }
  bool expect(std::string_view s) {
    if (!starts(s)) return false;
    pos += s.size();
    return true;
  }
  // Blanks, comments and line ends, as allowed between array elements.
  void skip_blank_lines() {
    for (;;) {
      skip_ws();
      skip_comment();
      if (eof() || !(is('\n') || starts("\r\n"))) return;
      eol();
    }
  }

  // A one-line quoted string from its quote; `out` gets the text between the quotes as
  // written. Escapes are not decoded: a key spelled with escapes then matches no name
  // the editor looks for, and blocks_of() refuses the file rather than misreading it.
  bool quoted(std::string* out) {
    const char q = t_[pos];
    size_t begin = ++pos;
    while (!eof() && t_[pos] != q && t_[pos] != '\n' && t_[pos] != '\r') pos += q == '"' && t_[pos] == '\\' ? 2 : 1;
    if (!is(q)) return false;
    if (out) *out = std::string(t_.substr(begin, pos - begin));
    ++pos;
    return true;
  }
  // """...""" or '''...''': a closing run may be up to five quotes (content may end in two).
  bool multi_line(char q, bool escapes) {
    const std::string close(3, q);
    pos += 3;
    while (!eof()) {
      if (escapes && is('\\')) {
        pos = std::min(pos + 2, t_.size());
        continue;
      }
      if (starts(close)) {
        pos += 3;
        for (int extra = 0; extra < 2 && is(q); ++extra) ++pos;
        return true;
      }
      ++pos;
    }
    return false;
  }

  // A dotted key: bare or quoted parts, blanks around the dots.
  bool key(path& out) {
    for (;;) {
      skip_ws();
      std::string part;
      if (starts("\"\"\"") || starts("'''")) return false;
      if (is('"') || is('\'')) {
        if (!quoted(&part)) return false;
      } else {
        size_t begin = pos;
        while (!eof() && is_bare(t_[pos])) ++pos;
        if (pos == begin) return false;
        part = std::string(t_.substr(begin, pos - begin));
      }
      out.push_back(std::move(part));
      if (out.size() > static_cast<size_t>(max_depth)) return false;
      skip_ws();
      if (!is('.')) return true;
      ++pos;
    }
  }

  bool value(int depth = 0) {
    if (depth > max_depth || eof()) return false;
    if (starts("\"\"\"")) return multi_line('"', true);
    if (starts("'''")) return multi_line('\'', false);
    if (is('"') || is('\'')) return quoted(nullptr);
    if (is('[')) {
      for (++pos;; ++pos) {
        skip_blank_lines();
        if (is(']')) return ++pos, true;
        if (!value(depth + 1)) return false;
        skip_blank_lines();
        if (!is(',')) return expect("]");
      }
    }
    if (is('{')) return inline_table(depth, nullptr, nullptr);
    auto stop = [&] { return eof() || std::string_view(" \t\r\n,]}#").find(t_[pos]) != std::string_view::npos; };
    size_t begin = pos;
    while (!stop()) ++pos;
    if (pos == begin) return false;
    // A date-time may separate date and time with a space: 1979-05-27 07:32:00Z.
    std::string_view word = t_.substr(begin, pos - begin);
    if (word.size() == 10 && word[4] == '-' && word[7] == '-' && is(' ') && pos + 1 < t_.size() &&
        t_[pos + 1] >= '0' && t_[pos + 1] <= '9')
      for (++pos; !stop();) ++pos;
    return true;
  }

  struct item {
    size_t key_begin, value_begin, value_end;
    path key;
  };
  // { k = v, ... } from its '{'; the items and the position of its '}' if asked for.
  bool inline_table(int depth, std::vector<item>* items, size_t* close) {
    ++pos;
    skip_ws();
    for (bool first = true;; first = false) {
      if (first && is('}')) break;
      item it;
      skip_ws();
      it.key_begin = pos;
      if (!key(it.key) || !expect("=")) return false;
      skip_ws();
      it.value_begin = pos;
      if (!value(depth + 1)) return false;
      it.value_end = pos;
      if (items) items->push_back(std::move(it));
      skip_ws();
      if (is('}')) break;
      if (!expect(",")) return false;
    }
    if (close) *close = pos;
    ++pos;
    return true;
  }
};

// One logical line of the file (a key's value may span several physical lines).
struct statement {
  enum kind_t { blank, comment, header, key_value } type = blank;
  size_t begin = 0, end = 0;  // [begin, end): whole lines, end after the line end
  path key;                   // the header's name, or the key
  bool array = false;         // [[header]]
  size_t value_begin = 0, value_end = 0;
  int line = 0;
};

// A parsed view of the text: the tree toml++ reads (the meaning) and the statements (the
// layout). Built from scratch for every edit: configuration files are small.
struct scan {
  toml::table doc;
  std::vector<statement> stmts;
};

// One [[kind]] block: its statements, and the keys in it with their full paths within
// the entry ([kind.tls] starttls = ... is tls.starttls).
struct block {
  size_t header = 0, end = 0;  // statement indices [header, end)
  struct kv {
    size_t stmt;
    path full;
  };
  struct section {
    size_t header;  // statement index ([[kind]] for the entry's own keys)
    path prefix;
    size_t last;    // the statement new keys go after
  };
  std::vector<kv> kvs;
  std::vector<section> sections;
};

// The statements and tree of text, or nullopt with a reason naming the line.
std::optional<scan> scan_text(std::string_view text, std::string& error);
// The [[kind]] blocks, or nullopt when kind is also written in a way they do not cover.
std::optional<std::vector<block>> blocks_of(const scan& s, std::string_view kind, std::string& error);
// "tls.starttls" into its parts; only bare keys, as every key sluice reads is one.
std::optional<path> parse_path(std::string_view key, std::string& error);
bool starts_with(const path& p, const path& prefix);
path tail(const path& p, size_t from);
std::string dotted(const path& p);

}  // namespace sluice::config::edit::detail
