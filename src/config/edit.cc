// edit.cc: the edits of config::edit::document (append, set, remove a key or a block), each verified before it is kept.
// Untrusted input: the TOML text and the values given on the command line; the scanner is bounded (size, nesting)
// and every edit is re-parsed with toml++ and compared with the intended document before it is kept.
#include "config/edit.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <system_error>

#include "config/edit_scan.h"

namespace sluice::config::edit {

namespace {

using namespace detail;

constexpr size_t none = ~size_t{0};

std::string ascii_lower(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
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
value value::number(double d) {
  // Shortest text that reads back as the same double; a TOML float needs a '.' or an exponent.
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, d);
  std::string text(buf, ec == std::errc() ? end : buf);
  if (text.empty() || !std::isfinite(d)) text = "0";
  if (text.find_first_of(".e") == std::string::npos) text += ".0";
  return value(text);
}
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
