// loader.cc: TOML → config entry points, the error context, the table reader and the
// value checks shared by the section readers (load_*.cc).
// Untrusted input: the configuration file and the recipient lists it names (admin-written,
// but typos must be reported with file, line, column and key, never silently ignored).
#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>

#include "config/load_guard.h"
#include "config/reader.h"

namespace sluice::config {

namespace fs = std::filesystem;

namespace detail {
namespace {

constexpr size_t max_errors_reported = 50;

size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

bool is_server_key(std::string_view key) {
  static constexpr std::string_view keys[] = {"hostname",   "workers",  "queue_dir",          "max_message_size",
                                              "map_size",   "log_dir",  "pickup_dir",         "pickup_interval_ms",
                                              "max_received_headers"};
  return std::find(std::begin(keys), std::end(keys), key) != std::end(keys);
}

}  // namespace

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

std::string squote(std::string_view s) { return "'" + std::string(s) + "'"; }

bool is_hostname(std::string_view s) {
  if (s.empty() || s.size() > 253) return false;
  size_t label = 0;
  char prev = '.';
  for (char c : s) {
    if (c == '.') {
      if (label == 0 || prev == '-') return false;
      label = 0;
    } else {
      bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
      if (!ok || (label == 0 && c == '-') || ++label > 63) return false;
    }
    prev = c;
  }
  return label != 0 && prev != '-';
}

bool is_domain_pattern(std::string_view s, bool allow_wildcard) {
  if (allow_wildcard && s.size() > 2 && s[0] == '*' && s[1] == '.') s.remove_prefix(2);
  return is_hostname(s);
}

std::string idn_hint(std::string_view s) {
  for (char c : s) {
    if (static_cast<unsigned char>(c) >= 0x80) return " (write internationalized names in their xn-- form)";
  }
  return "";
}

std::optional<uint16_t> parse_port(std::string_view s) {
  if (s.empty() || s.size() > 5) return std::nullopt;
  unsigned p = 0;
  for (char ch : s) {
    if (ch < '0' || ch > '9') return std::nullopt;
    p = p * 10 + static_cast<unsigned>(ch - '0');
  }
  if (p == 0 || p > 65535) return std::nullopt;
  return static_cast<uint16_t>(p);
}

bool split_bracketed(std::string_view text, std::string_view& host, std::string_view& port) {
  auto close = text.find(']');
  if (text.empty() || text.front() != '[' || close == std::string_view::npos) return false;
  host = text.substr(1, close - 1);
  std::string_view rest = text.substr(close + 1);
  port = {};
  if (rest.empty()) return true;
  if (rest.front() != ':' || rest.size() == 1) return false;
  port = rest.substr(1);
  return true;
}

std::string type_name(const toml::node& n) {
  switch (n.type()) {
    case toml::node_type::string: return "a string";
    case toml::node_type::integer: return "an integer";
    case toml::node_type::floating_point: return "a float";
    case toml::node_type::boolean: return "a boolean";
    case toml::node_type::table: return "a table";
    case toml::node_type::array: return "an array";
    case toml::node_type::date: return "a date";
    case toml::node_type::time: return "a time";
    case toml::node_type::date_time: return "a date-time";
    default: return "nothing";
  }
}

void context::error(const toml::source_region& where, std::string key, std::string message) {
  error_at(file, static_cast<int>(where.begin.line), static_cast<int>(where.begin.column),
           std::move(key), std::move(message));
}

void context::error_at(std::string f, int line, int column, std::string key, std::string message) {
  if (errors.size() >= max_errors_reported) return;
  errors.push_back({std::move(f), line, column, std::move(key), std::move(message)});
}

std::string context::resolve(std::string_view path) const {
  fs::path p(path);
  if (p.is_absolute() || base_dir.empty()) return p.lexically_normal().string();
  return (fs::path(base_dir) / p).lexically_normal().string();
}

void table_reader::type_error(std::string_view key, const toml::node& n, std::string_view expected) {
  ctx_.error(n.source(), key_path(key), "expected " + std::string(expected) + ", got " + type_name(n));
}

void table_reader::value_error(std::string_view key, const toml::node& n, std::string message) {
  ctx_.error(n.source(), key_path(key), std::move(message));
}

void table_reader::missing(std::string_view key, std::string_view what) {
  missing_.emplace_back(std::string(key), "is required (" + std::string(what) + ")");
}

bool table_reader::read_bool(std::string_view key, bool& out) {
  const toml::node* n = get(key);
  if (!n) return false;
  if (auto b = n->as_boolean()) {
    out = b->get();
    return true;
  }
  type_error(key, *n, "a boolean (true or false)");
  return false;
}

bool table_reader::read_string(std::string_view key, std::string& out) {
  const toml::node* n = get(key);
  if (!n) return false;
  if (auto s = n->as_string()) {
    out = s->get();
    return true;
  }
  type_error(key, *n, "a string");
  return false;
}

bool table_reader::read_size(std::string_view key, uint64_t& out) {
  const toml::node* n = get(key);
  if (!n) return false;
  if (auto i = n->as_integer()) {
    if (i->get() <= 0) {
      value_error(key, *n, "must be a positive number of bytes");
      return false;
    }
    out = static_cast<uint64_t>(i->get());
    return true;
  }
  if (auto s = n->as_string()) {
    if (auto v = parse_size(s->get())) {
      out = *v;
      return true;
    }
    value_error(key, *n, squote(s->get()) + " is not a size (bytes, or a number with K, M or G such as \"36MB\")");
    return false;
  }
  type_error(key, *n, "a size (an integer or a string such as \"36MB\")");
  return false;
}

namespace {

// "90s" reads worse than "1m30s" would, but units are only ever whole: the largest that
// divides the value, so a limit in a message reads as it would be written.
std::string format_seconds(uint64_t s) {
  if (s != 0 && s % 86400 == 0) return std::to_string(s / 86400) + "d";
  if (s != 0 && s % 3600 == 0) return std::to_string(s / 3600) + "h";
  if (s != 0 && s % 60 == 0) return std::to_string(s / 60) + "m";
  return std::to_string(s) + "s";
}

}  // namespace

bool table_reader::read_seconds(std::string_view key, uint64_t& out, uint64_t min, uint64_t max) {
  const toml::node* n = get(key);
  if (!n) return false;
  uint64_t v = 0;
  if (auto i = n->as_integer()) {
    if (i->get() < 0) {
      value_error(key, *n, "must not be negative");
      return false;
    }
    v = static_cast<uint64_t>(i->get());
  } else if (auto s = n->as_string()) {
    auto parsed = parse_duration(s->get());
    if (!parsed) {
      value_error(key, *n, squote(s->get()) + " is not a duration (seconds, or a number with s, m, h or d such as \"5m\")");
      return false;
    }
    v = *parsed;
  } else {
    type_error(key, *n, "a duration (seconds as an integer, or a string such as \"5m\")");
    return false;
  }
  if (v < min || v > max) {
    value_error(key, *n, "must be between " + format_seconds(min) + " and " + format_seconds(max) + ", not " +
                             format_seconds(v));
    return false;
  }
  out = v;
  return true;
}

const toml::table* table_reader::read_table(std::string_view key) {
  const toml::node* n = get(key);
  if (!n) return nullptr;
  if (auto t = n->as_table()) return t;
  type_error(key, *n, "a table");
  return nullptr;
}

const toml::array* table_reader::read_array(std::string_view key) {
  const toml::node* n = get(key);
  if (!n) return nullptr;
  if (auto a = n->as_array()) return a;
  type_error(key, *n, "an array");
  return nullptr;
}

bool table_reader::read_strings(std::string_view key, std::vector<std::pair<std::string, const toml::node*>>& out) {
  const toml::array* a = read_array(key);
  if (!a) return false;
  bool ok = true;
  for (const toml::node& el : *a) {
    if (auto s = el.as_string()) {
      out.emplace_back(s->get(), &el);
    } else {
      value_error(key, el, "expected an array of strings, but this element is " + type_name(el));
      ok = false;
    }
  }
  return ok;
}

bool table_reader::read_path(std::string_view key, std::string& out, bool allow_auto) {
  std::string raw;
  if (!read_string(key, raw)) return false;
  const toml::node* n = table_.get(key);
  if (allow_auto && raw == "auto") {
    out = raw;
    return true;
  }
  if (raw.empty()) {
    value_error(key, *n, allow_auto ? "must be a file name or \"auto\"" : "must be a file name");
    return false;
  }
  std::string resolved = ctx_.resolve(raw);
  std::error_code ec;
  if (!fs::exists(resolved, ec)) {
    value_error(key, *n, "file " + squote(resolved) + " does not exist");
    return false;
  }
  out = resolved;
  return true;
}

void table_reader::finish() {
  for (const auto& [k, v] : table_) {
    std::string name(k.str());
    if (known_.count(name)) continue;
    std::string message = "unknown key";
    size_t best = std::numeric_limits<size_t>::max();
    std::string suggestion;
    for (const auto& candidate : known_) {
      size_t d = edit_distance(lower(name), candidate);
      if (d < best) {
        best = d;
        suggestion = candidate;
      }
    }
    if (!suggestion.empty() && best <= std::max<size_t>(2, suggestion.size() / 3)) {
      message += " (did you mean '" + suggestion + "'?)";
      std::erase_if(missing_, [&](const auto& m) { return m.first == suggestion; });
    } else if (path_ != "server" && is_server_key(name)) {
      // TOML puts every key after a [[...]] header into that table, so a [server] key
      // written at the end of the file lands in the last connector.
      message += " (a [server] setting? it must be under [server], before the first [[...]] section)";
    }
    ctx_.error(k.source(), key_path(name), message);
  }
  for (const auto& [key, message] : missing_) ctx_.error(where(), key_path(key), message);
  missing_.clear();
}

const toml::array* read_table_array(table_reader& r, std::string_view key) {
  const toml::node* n = r.get(key);
  if (!n) return nullptr;
  auto a = n->as_array();
  if (!a) {
    r.type_error(key, *n, "an array of tables (write [[" + r.key_path(key) + "]])");
    return nullptr;
  }
  for (const toml::node& el : *a) {
    if (!el.is_table()) {
      r.type_error(key, el, "an array of tables (write [[" + r.key_path(key) + "]])");
      return nullptr;
    }
  }
  return a;
}

}  // namespace detail

namespace {

using namespace detail;

load_result parse_document(std::string_view text, context& ctx) {
  load_result result;
  toml::table doc;
  // Text toml++ 3.3 cannot be handed (issue 13) is refused here, with its line, as an error of its own.
  if (auto h = find_toml_hazard(text)) {
    ctx.error_at(ctx.file, h->line, h->column, "", std::move(h->message));
    result.errors = std::move(ctx.errors);
    return result;
  }
  try {
    doc = toml::parse(text, ctx.file);
  } catch (const toml::parse_error& e) {
    ctx.error(e.source(), "", std::string(e.description()));
    result.errors = std::move(ctx.errors);
    return result;
  }
  auto c = std::make_shared<config>();
  c->source = ctx.file;
  table_reader top(ctx, doc, "");
  read_server(top, *c);
  read_delivery(top, *c);
  read_dns(top, *c);
  read_dsn(top, *c);
  read_accepted_domains(top, *c);
  read_receive_connectors(top, *c);
  read_send_connectors(top, *c);
  read_transport_rules(top, *c);
  top.finish();
  if (!ctx.errors.empty()) {
    // Sections are read in a fixed order, so put the messages back in file order.
    std::stable_sort(ctx.errors.begin(), ctx.errors.end(), [&](const config_error& a, const config_error& b) {
      bool a_main = a.file == ctx.file, b_main = b.file == ctx.file;
      if (a_main != b_main) return a_main;
      return std::pair(a.line, a.column) < std::pair(b.line, b.column);
    });
    result.errors = std::move(ctx.errors);
    return result;
  }
  result.value = std::move(c);
  return result;
}

}  // namespace

load_result load_string(std::string_view text, std::string_view name, std::string_view base_dir) {
  detail::context ctx;
  ctx.file = std::string(name);
  ctx.base_dir = base_dir.empty() ? fs::path(name).parent_path().string() : std::string(base_dir);
  return parse_document(text, ctx);
}

load_result load_file(const std::string& path) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    load_result result;
    result.errors.push_back({path, 0, 0, "", "cannot read: is a directory"});
    return result;
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    load_result result;
    int err = errno;
    result.errors.push_back({path, 0, 0, "", std::string("cannot read: ") + std::strerror(err)});
    return result;
  }
  std::ostringstream buf;
  buf << in.rdbuf();
  return load_string(buf.str(), path);
}

}  // namespace sluice::config
