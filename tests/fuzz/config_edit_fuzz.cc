// config_edit_fuzz.cc: libFuzzer driver for the TOML editor behind `sluicectl connector ...` (config/edit.h).
// Untrusted input: the TOML file's text (any bytes) and the edit's names and values (any bytes).
//
// Input: the first line is the edit, fields separated by tabs; the rest is the TOML text.
//   set <kind> <index> <key> <value>        remove_key <kind> <index> <key>
//   append <kind> <key>=<value>...          remove <kind> <index>
// A value is s:<string> (\n \t \\ \xHH decoded), i:<integer>, b:true|false or l:<string>,<string>...
// Every edit must either refuse with a reason and leave the text alone, or give text that toml++
// reads as the old tree with exactly that change; doing it again changes nothing more.
#include <toml++/toml.h>

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "config/edit.h"
#include "fuzz_util.h"

using namespace sluice::config;

namespace {

std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  for (;;) {
    size_t at = s.find(sep);
    out.push_back(s.substr(0, at));
    if (at == std::string_view::npos) return out;
    s.remove_prefix(at + 1);
  }
}

std::string unescape(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '\\' || i + 1 == s.size()) {
      out += s[i];
      continue;
    }
    char c = s[++i];
    if (c == 'n') out += '\n';
    else if (c == 't') out += '\t';
    else if (c == 'x' && i + 2 < s.size()) {
      out += static_cast<char>(std::stoi(std::string(s.substr(i + 1, 2)), nullptr, 16) & 0xff);
      i += 2;
    } else out += c;
  }
  return out;
}

bool is_hex(std::string_view s) {
  return s.size() == 2 && std::all_of(s.begin(), s.end(), [](char c) { return std::isxdigit(static_cast<unsigned char>(c)); });
}

std::optional<edit::value> value_of(std::string_view spec) {
  if (spec.size() < 2 || spec[1] != ':') return std::nullopt;
  std::string_view body = spec.substr(2);
  // \x takes two hex digits; anything else after it is taken literally.
  for (size_t at = body.find("\\x"); at != std::string_view::npos; at = body.find("\\x", at + 1))
    if (!is_hex(body.substr(at + 2, 2))) return std::nullopt;
  switch (spec[0]) {
    case 's': return edit::value::string(unescape(body));
    case 'b': return edit::value::boolean(body == "true");
    case 'i': {
      int64_t v = 0;
      for (char c : body.substr(0, 18)) v = v * 10 + (c >= '0' && c <= '9' ? c - '0' : 0);
      return edit::value::integer(body.starts_with("-") ? -v : v);
    }
    case 'l': {
      std::vector<std::string> items;
      if (!body.empty())
        for (auto item : split(body, ',')) items.push_back(unescape(item));
      return edit::value::strings(items);
    }
  }
  return std::nullopt;
}

std::optional<size_t> index_of(std::string_view s) {
  if (s.empty() || s.size() > 4 || !std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return std::nullopt;
  return std::stoul(std::string(s));
}

toml::table read(const std::string& text) {
  try {
    return toml::parse(text);
  } catch (const toml::parse_error&) {
    FUZZ_CHECK(!"an edit kept text that toml++ does not read");
  }
  return {};
}

// The node at `key` (dotted bare parts) in entry `index` of `kind`, or null.
const toml::node* at(const toml::table& doc, std::string_view kind, size_t index, std::string_view key) {
  const toml::array* arr = doc[kind].as_array();
  if (!arr || index >= arr->size()) return nullptr;
  const toml::node* n = arr->get(index);
  for (auto part : split(key, '.')) {
    const toml::table* t = n ? n->as_table() : nullptr;
    n = t ? t->get(part) : nullptr;
  }
  return n;
}

// Whether node n is what value v means (toml++ compares whole tables, not single nodes).
bool same_value(const toml::node& n, const edit::value& v) {
  toml::table got;
  got.insert_or_assign("v", n);
  return got == toml::parse("v = " + v.toml());
}

size_t count(const toml::table& doc, std::string_view kind) {
  const toml::array* arr = doc[kind].as_array();
  return arr ? arr->size() : 0;
}

// The tree without entry `index` of `kind` (or without `kind` once it is empty, as remove() leaves it).
toml::table without(toml::table doc, std::string_view kind, size_t index) {
  toml::array* arr = doc[kind].as_array();
  if (arr && index < arr->size()) arr->erase(arr->begin() + static_cast<long>(index));
  if (arr && arr->empty()) doc.erase(kind);
  return doc;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view all(reinterpret_cast<const char*>(data), size);
  size_t nl = all.find('\n');
  if (nl == std::string_view::npos) return 0;
  auto f = split(all.substr(0, nl), '\t');
  const std::string text(all.substr(nl + 1));

  std::string error;
  auto doc = edit::document::parse(text, error);
  if (!doc) {
    FUZZ_CHECK(!error.empty());
    return 0;
  }
  FUZZ_CHECK(doc->text() == text);
  const toml::table before = read(text);
  if (f.size() < 2) return 0;
  const std::string_view op = f[0], kind = f[1];

  // What entries() lists is what toml++ reads: as many, in order, with their names.
  if (auto list = doc->entries(kind, error)) {
    FUZZ_CHECK(list->size() == count(before, kind));
    int last_line = 0;
    for (size_t i = 0; i < list->size(); ++i) {
      FUZZ_CHECK((*list)[i].line > last_line);
      last_line = (*list)[i].line;
      const toml::node* name = at(before, kind, i, "name");
      FUZZ_CHECK((*list)[i].name == (name ? name->value_or(std::string()) : std::string()));
      // find() scans the whole text again: the first entries say as much as all of them.
      if (i < 2) {
        auto found = doc->find(kind, (*list)[i].name);
        FUZZ_CHECK(found && *found <= i);
      }
    }
  } else {
    FUZZ_CHECK(!error.empty());
  }

  error.clear();
  bool ok = false;
  std::optional<toml::table> expected;  // set only where the driver can say what the tree must be
  std::function<bool(std::string&)> again;
  if (op == "set" && f.size() == 5) {
    auto index = index_of(f[2]);
    auto v = value_of(f[4]);
    if (!index || !v) return 0;
    const std::string key(f[3]);
    ok = doc->set(kind, *index, key, *v, error);
    if (ok) {
      toml::table got = read(doc->text());
      const toml::node* n = at(got, kind, *index, key);
      FUZZ_CHECK(n && same_value(*n, *v));
      FUZZ_CHECK(count(got, kind) == count(before, kind));
      // Every other entry is untouched.
      FUZZ_CHECK(without(got, kind, *index) == without(before, kind, *index));
    }
    again = [&, index = *index, v = *v, key](std::string& e) { return doc->set(kind, index, key, v, e); };
  } else if (op == "remove_key" && f.size() == 4) {
    auto index = index_of(f[2]);
    if (!index) return 0;
    const std::string key(f[3]);
    ok = doc->remove_key(kind, *index, key, error);
    if (ok) {
      toml::table got = read(doc->text());
      FUZZ_CHECK(at(got, kind, *index, key) == nullptr);
      FUZZ_CHECK(count(got, kind) == count(before, kind));
      FUZZ_CHECK(without(got, kind, *index) == without(before, kind, *index));
    }
    again = [&, index = *index, key](std::string& e) { return doc->remove_key(kind, index, key, e); };
  } else if (op == "remove" && f.size() == 3) {
    auto index = index_of(f[2]);
    if (!index) return 0;
    ok = doc->remove(kind, *index, error);
    if (ok) expected = without(before, kind, *index);
  } else if (op == "append") {
    edit::key_values keys;
    for (size_t i = 2; i < f.size(); ++i) {
      size_t eq = f[i].find('=');
      if (eq == std::string_view::npos) return 0;
      auto v = value_of(f[i].substr(eq + 1));
      if (!v) return 0;
      keys.emplace_back(std::string(f[i].substr(0, eq)), *v);
    }
    ok = doc->append(kind, keys, error);
    if (ok) {
      toml::table got = read(doc->text());
      FUZZ_CHECK(count(got, kind) == count(before, kind) + 1);
      FUZZ_CHECK(without(got, kind, count(before, kind)) == before);
      for (const auto& [k, v] : keys) {
        const toml::node* n = at(got, kind, count(before, kind), k);
        FUZZ_CHECK(n && same_value(*n, v));
      }
    }
  } else {
    return 0;
  }

  if (!ok) {
    // A refusal explains itself and changes nothing.
    FUZZ_CHECK(!error.empty());
    FUZZ_CHECK(doc->text() == text);
    return 0;
  }
  if (expected) FUZZ_CHECK(read(doc->text()) == *expected);
  // The edited text is a document the editor takes again, and the same edit again is no change.
  std::string error2;
  FUZZ_CHECK(edit::document::parse(doc->text(), error2).has_value());
  if (again) {
    const std::string once = doc->text();
    FUZZ_CHECK(again(error2));
    FUZZ_CHECK(doc->text() == once);
  }
  return 0;
}
