// edit.cc: the TOML line scanner (statements, values, inline tables) and the block edits of config::edit::document.
// Untrusted input: the TOML text and the values given on the command line; the scanner is bounded (size, nesting)
// and every edit is re-parsed with toml++ and compared with the intended document before it is kept.
#include "config/edit.h"

#include <toml++/toml.h>

#include <algorithm>

namespace sluice::config::edit {

namespace {

constexpr size_t max_text = 4u << 20;
constexpr int max_depth = 64;   // arrays and inline tables inside each other
constexpr size_t none = ~size_t{0};

using path = std::vector<std::string>;

bool is_bare(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
}

std::string ascii_lower(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
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

std::optional<scan> scan_text(std::string_view text, std::string& error) {
  if (text.size() > max_text) return error = "the file is larger than 4 MiB", std::nullopt;
  scan s;
  lexer lx(text);
  if (lx.starts("\xEF\xBB\xBF")) lx.pos = 3;  // a BOM stays part of the first line
  int line = 1;
  while (!lx.eof()) {
    statement st;
    st.begin = s.stmts.empty() ? 0 : lx.pos;
    st.line = line;
    lx.skip_ws();
    bool ok = true;
    if (lx.at_eol()) {
      lx.eol();
    } else if (lx.is('#')) {
      st.type = statement::comment;
      lx.skip_comment();
      ok = lx.eol();
    } else if (lx.is('[')) {
      st.type = statement::header;
      st.array = lx.starts("[[");
      lx.pos += st.array ? 2 : 1;
      ok = lx.key(st.key) && lx.expect(st.array ? "]]" : "]");
      lx.skip_ws();
      lx.skip_comment();
      ok = ok && lx.eol();
    } else {
      st.type = statement::key_value;
      ok = lx.key(st.key) && lx.expect("=");
      lx.skip_ws();
      st.value_begin = lx.pos;
      ok = ok && lx.value();
      st.value_end = lx.pos;
      lx.skip_ws();
      lx.skip_comment();
      ok = ok && lx.eol();
    }
    if (!ok) return error = "line " + std::to_string(line) + ": cannot follow the TOML here; edit this file by hand", std::nullopt;
    st.end = lx.pos;
    line += static_cast<int>(std::count(text.begin() + static_cast<long>(st.begin), text.begin() + static_cast<long>(st.end), '\n'));
    s.stmts.push_back(std::move(st));
  }
  // toml++ only after the scanner: toml++ 3.3 asserts (aborts, or without assertions has
  // undefined behaviour) on headers such as "[#" or "[[[", which the scanner refuses.
  try {
    s.doc = toml::parse(text);
  } catch (const toml::parse_error& e) {
    return error = "line " + std::to_string(e.source().begin.line) + ": not valid TOML: " + std::string(e.description()),
           std::nullopt;
  }
  return s;
}

bool starts_with(const path& p, const path& prefix) {
  return prefix.size() <= p.size() && std::equal(prefix.begin(), prefix.end(), p.begin());
}

path tail(const path& p, size_t from) { return path(p.begin() + static_cast<long>(from), p.end()); }

std::string dotted(const path& p) {
  std::string out;
  for (const auto& part : p) out += (out.empty() ? "" : ".") + part;
  return out;
}

// "tls.starttls" into its parts; only bare keys, as every key sluice reads is one.
std::optional<path> parse_path(std::string_view key, std::string& error) {
  path out;
  size_t start = 0;
  for (;;) {
    size_t dot = std::min(key.find('.', start), key.size());
    std::string_view part = key.substr(start, dot - start);
    if (part.empty() || !std::all_of(part.begin(), part.end(), is_bare)) {
      error = "'" + std::string(key) + "' is not a key (bare words joined by dots)";
      return std::nullopt;
    }
    out.emplace_back(part);
    if (dot == key.size() || out.size() > 8) break;
    start = dot + 1;
  }
  if (out.size() > 8) {
    error = "'" + std::string(key) + "' is nested too deeply";
    return std::nullopt;
  }
  return out;
}

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

std::optional<std::vector<block>> blocks_of(const scan& s, std::string_view kind, std::string& error) {
  std::vector<block> out;
  const auto& st = s.stmts;
  for (size_t i = 0; i < st.size(); ++i) {
    if (st[i].type != statement::header || st[i].key.empty() || st[i].key[0] != kind) continue;
    if (st[i].key.size() > 1 && out.empty()) continue;  // impossible in valid TOML; never attach it
    if (st[i].key.size() > 1) continue;                 // a sub-table of the current block
    block b;
    b.header = i;
    b.sections.push_back({i, {}, i});
    bool addressable = true;
    size_t j = i + 1;
    for (; j < st.size(); ++j) {
      const statement& x = st[j];
      if (x.type == statement::header) {
        if (x.key.size() < 2 || x.key[0] != kind) break;
        addressable = !x.array;  // keys of [[kind.sub]] arrays are not edited
        if (addressable) b.sections.push_back({j, tail(x.key, 1), j});
      } else if (x.type == statement::key_value && addressable) {
        path full = b.sections.back().prefix;
        full.insert(full.end(), x.key.begin(), x.key.end());
        b.kvs.push_back({j, std::move(full)});
        b.sections.back().last = j;
      }
    }
    b.end = j;
    out.push_back(std::move(b));
    i = j - 1;
  }
  const toml::node* n = s.doc.get(kind);
  const toml::array* arr = n ? n->as_array() : nullptr;
  bool tables = arr && std::all_of(arr->begin(), arr->end(), [](const toml::node& e) { return e.is_table(); });
  if ((n || !out.empty()) && (!tables || arr->size() != out.size())) {
    error = std::string(kind) + " is not written as [[" + std::string(kind) + "]] blocks only; edit this file by hand";
    return std::nullopt;
  }
  return out;
}

std::string newline_of(std::string_view text) {
  size_t nl = text.find('\n');
  return nl != std::string_view::npos && nl > 0 && text[nl - 1] == '\r' ? "\r\n" : "\n";
}

// The entry table of block `index` in a parsed tree.
toml::table* entry_table(toml::table& doc, std::string_view kind, size_t index) {
  toml::array* arr = doc[kind].as_array();
  return arr && index < arr->size() ? (*arr)[index].as_table() : nullptr;
}

// The table at the first n parts of p under root, or nullptr.
toml::table* table_at(toml::table* root, const path& p, size_t n) {
  for (size_t i = 0; root && i < n && i < p.size(); ++i) root = (*root)[p[i]].as_table();
  return root;
}

// The node `v` means, as toml++ reads it.
std::optional<toml::table> value_tree(const value& v) {
  try {
    return toml::parse("v = " + v.toml());
  } catch (const toml::parse_error&) {
    return std::nullopt;
  }
}

// Renders keys (paths relative to one table) as `k = v` lines, grouping those that share
// a first part into nested inline tables.
bool render_keys(const std::vector<std::pair<path, const value*>>& keys, bool inline_items, std::string& out,
                 const std::string& nl, std::string& error) {
  std::vector<std::string> order;
  for (const auto& [p, v] : keys)
    if (std::find(order.begin(), order.end(), p[0]) == order.end()) order.push_back(p[0]);
  bool first = true;
  for (const auto& head : order) {
    std::vector<std::pair<path, const value*>> inner;
    const value* leaf = nullptr;
    size_t count = 0;
    for (const auto& [p, v] : keys) {
      if (p[0] != head) continue;
      ++count;
      if (p.size() == 1) leaf = v;
      else inner.emplace_back(tail(p, 1), v);
    }
    if (leaf && count > 1) {
      error = "key '" + head + "' is given more than once";
      return false;
    }
    std::string text;
    if (leaf) {
      text = leaf->toml();
    } else {
      std::string items;
      if (!render_keys(inner, true, items, nl, error)) return false;
      text = "{ " + items + " }";
    }
    if (inline_items) out += (first ? "" : ", ") + head + " = " + text;
    else out += head + " = " + text + nl;
    first = false;
  }
  return true;
}

// Edits `text` inside the inline table whose '{' is at `at`: sets (v != nullptr) or
// removes the item at `rest`. Returns the new text, or nullopt with error.
std::optional<std::string> inline_edit(const std::string& text, size_t at, const path& rest, const value* v,
                                       std::string& error, int depth = 0) {
  lexer lx(text, at);
  std::vector<lexer::item> items;
  size_t close = 0;
  if (depth > max_depth || !lx.inline_table(0, &items, &close)) {
    error = "cannot follow the inline table here; edit this file by hand";
    return std::nullopt;
  }
  std::string out = text;
  for (size_t i = 0; i < items.size(); ++i) {
    const auto& it = items[i];
    if (it.key == rest) {
      if (v) return out.replace(it.value_begin, it.value_end - it.value_begin, v->toml());
      if (items.size() == 1) return out.erase(at + 1, close - at - 1);
      if (i == 0) return out.erase(it.key_begin, items[1].key_begin - it.key_begin);
      return out.erase(items[i - 1].value_end, it.value_end - items[i - 1].value_end);
    }
    if (starts_with(rest, it.key)) {
      if (text[it.value_begin] != '{') {
        error = "'" + dotted(it.key) + "' is not a table";
        return std::nullopt;
      }
      return inline_edit(text, it.value_begin, tail(rest, it.key.size()), v, error, depth + 1);
    }
    if (starts_with(it.key, rest)) {
      error = "'" + dotted(rest) + "' is a table, not a value";
      return std::nullopt;
    }
  }
  if (!v) return out;
  std::string item = dotted(rest) + " = " + v->toml();
  if (items.empty()) return out.replace(at, close + 1 - at, "{ " + item + " }");
  return out.insert(items.back().value_end, ", " + item);
}

}  // namespace

value value::string(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    unsigned char u = static_cast<unsigned char>(c);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      case '\r': out += "\\r"; break;
      default:
        if (u < 0x20 || u == 0x7F) {
          static constexpr char hex[] = "0123456789ABCDEF";
          out += "\\u00";
          out += hex[u >> 4];
          out += hex[u & 15];
        } else {
          out += c;
        }
    }
  }
  return value(out + "\"");
}

value value::integer(int64_t i) { return value(std::to_string(i)); }
value value::boolean(bool b) { return value(b ? "true" : "false"); }

value value::strings(const std::vector<std::string>& items) {
  std::string out = "[";
  for (const auto& s : items) out += (out.size() == 1 ? "" : ", ") + string(s).toml();
  return value(out + "]");
}

std::optional<document> document::parse(std::string_view text, std::string& error) {
  if (!scan_text(text, error)) return std::nullopt;
  return document(std::string(text));
}

std::optional<std::vector<entry>> document::entries(std::string_view kind, std::string& error) const {
  auto s = scan_text(text_, error);
  if (!s) return std::nullopt;
  auto blocks = blocks_of(*s, kind, error);
  if (!blocks) return std::nullopt;
  std::vector<entry> out;
  for (size_t i = 0; i < blocks->size(); ++i) {
    entry e;
    e.line = s->stmts[(*blocks)[i].header].line;
    if (const toml::table* t = entry_table(s->doc, kind, i)) e.name = (*t)["name"].value_or(std::string());
    out.push_back(std::move(e));
  }
  return out;
}

std::optional<size_t> document::find(std::string_view kind, std::string_view name) const {
  std::string error;
  auto list = entries(kind, error);
  if (!list) return std::nullopt;
  for (size_t i = 0; i < list->size(); ++i)
    if (ascii_lower((*list)[i].name) == ascii_lower(name)) return i;
  return std::nullopt;
}

namespace {

// Takes `candidate` into `text` only if it parses and its tree equals `expected`: the edit
// did what it was meant to and nothing else.
bool keep(std::string& text, std::string&& candidate, const toml::table& expected, std::string& error) {
  std::string why;
  auto s = scan_text(candidate, why);
  if (!s) {
    error = "the edited file would not be valid (" + why + "); nothing was changed";
    return false;
  }
  if (s->doc != expected) {
    error = "this file's layout cannot be edited safely here (the result would differ elsewhere); edit it by hand";
    return false;
  }
  text = std::move(candidate);
  return true;
}

// What every edit starts from: the scanned text, the [[kind]] blocks, the key asked for,
// and the tree the edit must produce (the current one, changed by the edit).
struct target {
  scan s;
  std::vector<block> blocks;
  path key;
  toml::table expected;
};

std::optional<target> prepare(std::string_view text, std::string_view kind, size_t index, const std::string_view* key,
                              std::string& error) {
  if (kind.empty() || !std::all_of(kind.begin(), kind.end(), is_bare)) {
    error = "'" + std::string(kind) + "' is not a table name";
    return std::nullopt;
  }
  auto s = scan_text(text, error);
  auto blocks = s ? blocks_of(*s, kind, error) : std::nullopt;
  if (!blocks) return std::nullopt;
  target t{std::move(*s), std::move(*blocks), {}, {}};
  if (key) {
    auto p = parse_path(*key, error);
    if (!p) return std::nullopt;
    t.key = std::move(*p);
  }
  if (index != none && index >= t.blocks.size()) {
    error = "there is no " + std::string(kind) + "[" + std::to_string(index) + "]";
    return std::nullopt;
  }
  t.expected = t.s.doc;
  return t;
}

// Where a line inserted at `at` goes; a last line without its line end gets one first.
size_t line_start(std::string& out, size_t at, const std::string& nl) {
  if (at < out.size() || out.empty() || out.back() == '\n') return at;
  out += nl;
  return out.size();
}

}  // namespace

bool document::append(std::string_view kind, const key_values& keys, std::string& error) {
  auto t = prepare(text_, kind, none, nullptr, error);
  if (!t) return false;
  std::vector<std::pair<path, const value*>> paths;
  for (const auto& [k, v] : keys) {
    auto p = parse_path(k, error);
    if (!p) return false;
    paths.emplace_back(std::move(*p), &v);
  }
  const std::string nl = newline_of(text_);
  std::string body = "[[" + std::string(kind) + "]]" + nl;
  if (!paths.empty() && !render_keys(paths, false, body, nl, error)) return false;

  toml::table& expected = t->expected;
  toml::table alone;
  try {
    alone = toml::parse(body);
  } catch (const toml::parse_error& e) {
    error = "the new " + std::string(kind) + " is not valid TOML (" + std::string(e.description()) + ")";
    return false;
  }
  const toml::array* mine = alone[kind].as_array();
  if (!mine || mine->size() != 1) {
    error = "the new " + std::string(kind) + " does not read as one entry";
    return false;
  }
  if (!expected[kind].as_array()) expected.insert_or_assign(kind, toml::array{});
  expected[kind].as_array()->push_back(*mine->get(0));

  std::string out = text_;
  size_t at = out.size();
  if (!t->blocks.empty()) {
    // After the last block's last key (its trailing comments stay where they are).
    const block& last = t->blocks.back();
    size_t after = last.header;
    for (size_t i = last.header; i < last.end; ++i)
      if (t->s.stmts[i].type != statement::blank && t->s.stmts[i].type != statement::comment) after = i;
    at = t->s.stmts[after].end;
  }
  at = line_start(out, at, nl);
  std::string insert = (at == 0 ? "" : nl) + body;
  if (at < out.size() && !lexer(out, at).at_eol()) insert += nl;  // keep a blank line before what follows
  out.insert(at, insert);
  return keep(text_, std::move(out), expected, error);
}

bool document::set(std::string_view kind, size_t index, std::string_view key, const value& v, std::string& error) {
  auto target = prepare(text_, kind, index, &key, error);
  if (!target) return false;
  const path* p = &target->key;
  auto tree = value_tree(v);
  if (!tree) {
    error = "the value for " + std::string(key) + " is not valid TOML";
    return false;
  }
  toml::table* t = entry_table(target->expected, kind, index);
  for (size_t i = 0; t && i + 1 < p->size(); ++i) {
    if (!t->contains((*p)[i])) t->insert((*p)[i], toml::table{});
    t = (*t)[(*p)[i]].as_table();
    if (!t) {
      error = "'" + dotted(path(p->begin(), p->begin() + static_cast<long>(i) + 1)) + "' is not a table";
      return false;
    }
  }
  t->insert_or_assign(p->back(), *tree->get("v"));

  const block& b = target->blocks[index];
  const auto& st = target->s.stmts;
  std::string out = text_;
  const std::string nl = newline_of(text_);
  bool done = false;
  for (const auto& kv : b.kvs) {
    const statement& x = st[kv.stmt];
    if (kv.full == *p) {
      out.replace(x.value_begin, x.value_end - x.value_begin, v.toml());
      done = true;
    } else if (starts_with(*p, kv.full)) {
      if (text_[x.value_begin] != '{') {
        error = "'" + dotted(kv.full) + "' is not a table (line " + std::to_string(x.line) + ")";
        return false;
      }
      auto edited = inline_edit(text_, x.value_begin, tail(*p, kv.full.size()), &v, error);
      if (!edited) return false;
      out = std::move(*edited);
      done = true;
    } else {
      continue;
    }
    break;
  }
  if (!done) {
    // A new line, in the deepest [kind.sub] section that holds the key, next to dotted
    // keys of the same table if there are any, else after the section's last key.
    const block::section* sec = &b.sections.front();
    for (const auto& candidate : b.sections)
      if (starts_with(*p, candidate.prefix) && candidate.prefix.size() > sec->prefix.size()) sec = &candidate;
    path rel = tail(*p, sec->prefix.size());
    size_t after = sec->last;
    bool dotted_near = false;
    for (const auto& kv : b.kvs) {
      if (kv.full.size() > sec->prefix.size() + 1 && starts_with(kv.full, sec->prefix) &&
          kv.full[sec->prefix.size()] == rel[0] && kv.stmt >= sec->header && kv.stmt <= sec->last) {
        after = kv.stmt;
        dotted_near = true;
      }
    }
    std::string line;
    if (dotted_near || rel.size() == 1) {
      line = dotted(rel) + " = " + v.toml() + nl;
    } else {
      std::vector<std::pair<path, const value*>> one{{rel, &v}};
      if (!render_keys(one, false, line, nl, error)) return false;
    }
    const statement& x = st[after];
    std::string indent;
    if (x.type == statement::key_value)
      indent = text_.substr(x.begin, text_.find_first_not_of(" \t", x.begin) - x.begin);
    out.insert(line_start(out, x.end, nl), indent + line);
  }
  return keep(text_, std::move(out), target->expected, error);
}

bool document::remove_key(std::string_view kind, size_t index, std::string_view key, std::string& error) {
  auto t = prepare(text_, kind, index, &key, error);
  if (!t) return false;
  const path* p = &t->key;
  toml::table& expected = t->expected;
  {
    // The key leaves its table; a table that only held it (written as dotted keys) goes too.
    std::vector<toml::table*> chain{entry_table(expected, kind, index)};
    for (size_t i = 0; chain.back() && i + 1 < p->size(); ++i) chain.push_back((*chain.back())[(*p)[i]].as_table());
    if (!chain.back() || !chain.back()->contains(p->back())) return true;  // not set: nothing to do
    chain.back()->erase(p->back());
  }
  const block& b = t->blocks[index];
  const auto& st = t->s.stmts;
  std::string out = text_;
  bool inline_key = false;
  std::vector<size_t> whole;  // statements to remove, in file order
  for (const auto& kv : b.kvs) {
    if (kv.full == *p || (starts_with(kv.full, *p) && kv.full.size() > p->size())) {
      whole.push_back(kv.stmt);
    } else if (starts_with(*p, kv.full) && text_[st[kv.stmt].value_begin] == '{') {
      auto edited = inline_edit(text_, st[kv.stmt].value_begin, tail(*p, kv.full.size()), nullptr, error);
      if (!edited) return false;
      out = std::move(*edited);
      inline_key = true;
      break;
    }
  }
  if (!inline_key) {
    if (whole.empty()) {
      error = "'" + std::string(key) + "' is not written in this block's own lines; edit this file by hand";
      return false;
    }
    for (auto i = whole.rbegin(); i != whole.rend(); ++i) out.erase(st[*i].begin, st[*i].end - st[*i].begin);
  }
  // Tables emptied by removing dotted keys are gone from the new tree, not left empty.
  if (auto s2 = scan_text(out, error)) {
    for (size_t n = p->size() - 1; n > 0; --n) {
      toml::table* parent = table_at(entry_table(expected, kind, index), *p, n - 1);
      toml::table* inner = table_at(parent, tail(*p, n - 1), 1);
      toml::table* got = table_at(entry_table(s2->doc, kind, index), *p, n - 1);
      if (inner && inner->empty() && (!got || !got->contains((*p)[n - 1]))) parent->erase((*p)[n - 1]);
    }
  }
  return keep(text_, std::move(out), expected, error);
}

bool document::remove(std::string_view kind, size_t index, std::string& error) {
  auto t = prepare(text_, kind, index, nullptr, error);
  if (!t) return false;
  const auto& st = t->s.stmts;
  const block& b = t->blocks[index];
  auto is_comment = [&](size_t i) { return st[i].type == statement::comment; };
  size_t first = b.header;
  while (first > 0 && is_comment(first - 1)) --first;
  size_t last = b.header;
  for (size_t i = b.header; i < b.end; ++i)
    if (st[i].type != statement::blank && !is_comment(i)) last = i;
  // Comments right after the last key are the block's unless they run into the next header.
  size_t after = last + 1;
  while (after < st.size() && is_comment(after)) ++after;
  if (after == st.size() || st[after].type == statement::blank) last = after - 1;
  size_t begin = st[first].begin, end = st[last].end;
  // One blank line is left between what was before and what comes after.
  bool blank_before = first == 0 || st[first - 1].type == statement::blank;
  if (blank_before && last + 1 < st.size() && st[last + 1].type == statement::blank) end = st[last + 1].end;

  toml::array* arr = t->expected[kind].as_array();
  arr->erase(arr->begin() + static_cast<long>(index));
  if (arr->empty()) t->expected.erase(kind);
  std::string out = text_;
  out.erase(begin, end - begin);
  return keep(text_, std::move(out), t->expected, error);
}

}  // namespace sluice::config::edit
