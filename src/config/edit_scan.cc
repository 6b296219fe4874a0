// edit_scan.cc: the TOML line scanner of config/edit: statements with their extents, and the [[kind]] blocks with their keys.
// Untrusted input: the TOML text; the scanner runs before toml++ and refuses shapes it cannot follow.
#include "config/edit_scan.h"

#include "config/load_guard.h"

namespace sluice::config::edit::detail {

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
  // toml++ only after the scanner and the guard: toml++ 3.3 asserts (aborts, or without
  // assertions has undefined behaviour) on headers such as "[#" or "[[[", which the scanner
  // refuses too, and on some non-ASCII text (config/load_guard.h).
  if (auto h = find_toml_hazard(text))
    return error = "line " + std::to_string(h->line) + ": " + h->message + "; edit this file by hand", std::nullopt;
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

}  // namespace sluice::config::edit::detail
