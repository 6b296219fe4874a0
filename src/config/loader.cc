// loader.cc: TOML → config: typed reads, presets, cross-checks, recipient lists.
// Untrusted input: the configuration file and the recipient lists it names (admin-written,
// but typos must be reported with file, line, column and key, never silently ignored).
#include <toml++/toml.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <limits>
#include <set>
#include <sstream>
#include <thread>
#include <utility>

#include "config/config.h"

namespace sluice::config {
namespace {

namespace fs = std::filesystem;

constexpr size_t max_errors_reported = 50;
constexpr unsigned max_workers = 256;  // queue ids carry the worker in 8 bits

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

std::string upper(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  }
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

std::string squote(std::string_view s) { return "'" + std::string(s) + "'"; }

// LDH host name, 1-63 per label, 253 in all; a trailing dot is not accepted here.
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

// "example.com" or, when wildcards are allowed, "*.example.com".
bool is_domain_pattern(std::string_view s, bool allow_wildcard) {
  if (allow_wildcard && s.size() > 2 && s[0] == '*' && s[1] == '.') s.remove_prefix(2);
  return is_hostname(s);
}

// Names are compared as ASCII; internationalized names must be written as A-labels.
std::string idn_hint(std::string_view s) {
  for (char c : s) {
    if (static_cast<unsigned char>(c) >= 0x80) return " (write internationalized names in their xn-- form)";
  }
  return "";
}

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

bool is_server_key(std::string_view key) {
  static constexpr std::string_view keys[] = {"hostname",   "workers",  "queue_dir",          "max_message_size",
                                              "map_size",   "log_dir",  "pickup_dir",         "pickup_interval_ms",
                                              "max_received_headers"};
  return std::find(std::begin(keys), std::end(keys), key) != std::end(keys);
}

// Shared state of one load: where we are and what went wrong so far.
struct context {
  std::string file;      // as given, for messages
  std::string base_dir;  // for relative input files
  std::vector<config_error> errors;

  void error(const toml::source_region& where, std::string key, std::string message) {
    error_at(file, static_cast<int>(where.begin.line), static_cast<int>(where.begin.column),
             std::move(key), std::move(message));
  }
  void error_at(std::string f, int line, int column, std::string key, std::string message) {
    if (errors.size() >= max_errors_reported) return;
    errors.push_back({std::move(f), line, column, std::move(key), std::move(message)});
  }

  std::string resolve(std::string_view path) const {
    fs::path p(path);
    if (p.is_absolute() || base_dir.empty()) return p.lexically_normal().string();
    return (fs::path(base_dir) / p).lexically_normal().string();
  }
};

// Reads one TOML table. Every key the code asks for becomes "known"; finish() reports
// the keys present in the file that nobody asked for, with a suggestion for typos.
class table_reader {
 public:
  table_reader(context& ctx, const toml::table& t, std::string path)
      : ctx_(ctx), table_(t), path_(std::move(path)) {}

  const toml::source_region& where() const { return table_.source(); }
  std::string key_path(std::string_view key) const {
    return path_.empty() ? std::string(key) : path_ + "." + std::string(key);
  }
  context& ctx() { return ctx_; }

  const toml::node* get(std::string_view key) {
    known_.insert(std::string(key));
    return table_.get(key);
  }

  void type_error(std::string_view key, const toml::node& n, std::string_view expected) {
    ctx_.error(n.source(), key_path(key), "expected " + std::string(expected) + ", got " + type_name(n));
  }
  void value_error(std::string_view key, const toml::node& n, std::string message) {
    ctx_.error(n.source(), key_path(key), std::move(message));
  }
  // Held until finish(): if an unknown key looks like the missing one, the typo is the
  // one error worth reporting.
  void missing(std::string_view key, std::string_view what) {
    missing_.emplace_back(std::string(key), "is required (" + std::string(what) + ")");
  }

  bool read_bool(std::string_view key, bool& out) {
    const toml::node* n = get(key);
    if (!n) return false;
    if (auto b = n->as_boolean()) {
      out = b->get();
      return true;
    }
    type_error(key, *n, "a boolean (true or false)");
    return false;
  }

  bool read_string(std::string_view key, std::string& out) {
    const toml::node* n = get(key);
    if (!n) return false;
    if (auto s = n->as_string()) {
      out = s->get();
      return true;
    }
    type_error(key, *n, "a string");
    return false;
  }

  template <typename T>
  bool read_uint(std::string_view key, T& out, uint64_t min, uint64_t max) {
    const toml::node* n = get(key);
    if (!n) return false;
    auto i = n->as_integer();
    if (!i) {
      type_error(key, *n, "an integer");
      return false;
    }
    int64_t v = i->get();
    if (v < 0 || static_cast<uint64_t>(v) < min || static_cast<uint64_t>(v) > max) {
      value_error(key, *n, "must be between " + std::to_string(min) + " and " + std::to_string(max) +
                               ", not " + std::to_string(v));
      return false;
    }
    out = static_cast<T>(v);
    return true;
  }

  // Bytes as an integer, or a string with a K/M/G suffix ("36MB").
  bool read_size(std::string_view key, uint64_t& out) {
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

  template <typename E>
  bool read_enum(std::string_view key, E& out, std::initializer_list<std::pair<std::string_view, E>> names) {
    const toml::node* n = get(key);
    if (!n) return false;
    std::string allowed;
    for (const auto& [name, value] : names) {
      if (!allowed.empty()) allowed += ", ";
      allowed += "\"" + std::string(name) + "\"";
    }
    auto s = n->as_string();
    if (!s) {
      type_error(key, *n, "one of " + allowed);
      return false;
    }
    for (const auto& [name, value] : names) {
      if (s->get() == name) {
        out = value;
        return true;
      }
    }
    value_error(key, *n, squote(s->get()) + " is not one of " + allowed);
    return false;
  }

  const toml::table* read_table(std::string_view key) {
    const toml::node* n = get(key);
    if (!n) return nullptr;
    if (auto t = n->as_table()) return t;
    type_error(key, *n, "a table");
    return nullptr;
  }

  const toml::array* read_array(std::string_view key) {
    const toml::node* n = get(key);
    if (!n) return nullptr;
    if (auto a = n->as_array()) return a;
    type_error(key, *n, "an array");
    return nullptr;
  }

  // An array of strings; each element comes with its node, for positions.
  bool read_strings(std::string_view key, std::vector<std::pair<std::string, const toml::node*>>& out) {
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

  // A path to an input file, resolved against the config file's directory and checked
  // to exist. "auto" passes through when allowed.
  bool read_path(std::string_view key, std::string& out, bool allow_auto) {
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

  void finish() {
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

 private:
  context& ctx_;
  const toml::table& table_;
  std::string path_;
  std::set<std::string> known_;
  std::vector<std::pair<std::string, std::string>> missing_;
};

// An array of tables ([[name]]); a plain [name] table is the most likely mistake.
const toml::array* read_table_array(table_reader& r, std::string_view key) {
  const toml::node* n = r.get(key);
  if (!n) return nullptr;
  auto a = n->as_array();
  if (!a) {
    r.type_error(key, *n, "an array of tables (write [[" + std::string(key) + "]])");
    return nullptr;
  }
  for (const toml::node& el : *a) {
    if (!el.is_table()) {
      r.type_error(key, el, "an array of tables (write [[" + std::string(key) + "]])");
      return nullptr;
    }
  }
  return a;
}

std::string system_hostname() {
  char buf[256] = {};
  if (gethostname(buf, sizeof buf - 1) != 0 || buf[0] == '\0') return "localhost";
  return lower(buf);
}

// ---------------------------------------------------------------------------------------

void read_server(table_reader& top, config& c) {
  server_settings& s = c.server;
  s.hostname = system_hostname();
  s.workers = std::clamp(std::thread::hardware_concurrency(), 1u, max_workers);
  if (const toml::table* t = top.read_table("server")) {
    table_reader r(top.ctx(), *t, "server");
    if (r.read_string("hostname", s.hostname)) {
      const toml::node* n = t->get("hostname");
      if (!is_hostname(s.hostname)) {
        r.value_error("hostname", *n, squote(s.hostname) + " is not a valid host name" + idn_hint(s.hostname));
      }
      s.hostname = lower(s.hostname);
    }
    if (const toml::node* n = r.get("workers")) {
      if (auto str = n->as_string(); str && str->get() == "auto") {
        // already resolved above
      } else if (auto i = n->as_integer()) {
        if (i->get() < 1 || i->get() > static_cast<int64_t>(max_workers)) {
          r.value_error("workers", *n, "must be \"auto\" or between 1 and " + std::to_string(max_workers));
        } else {
          s.workers = static_cast<unsigned>(i->get());
        }
      } else {
        r.type_error("workers", *n, "\"auto\" or an integer");
      }
    }
    auto read_dir = [&](std::string_view key, std::string& out, bool may_be_empty) {
      if (r.read_string(key, out) && out.empty() && !may_be_empty) {
        r.value_error(key, *t->get(key), "must not be empty");
      }
    };
    read_dir("queue_dir", s.queue_dir, false);
    read_dir("log_dir", s.log_dir, false);
    read_dir("pickup_dir", s.pickup_dir, true);
    r.read_size("max_message_size", s.max_message_size);
    if (r.read_size("map_size", s.map_size) && s.map_size < (1ull << 20)) {
      r.value_error("map_size", *t->get("map_size"), "must be at least 1MB");
    }
    r.read_uint("pickup_interval_ms", s.pickup_interval_ms, 10, 86'400'000);
    r.read_uint("max_received_headers", s.max_received_headers, 1, 1000);
    r.finish();
  }
  std::string q = s.queue_dir;
  while (q.size() > 1 && q.back() == '/') q.pop_back();
  fs::path parent = fs::path(q).parent_path();
  s.auto_tls_dir = (parent.empty() ? fs::path("tls") : parent / "tls").string();
}

// ---------------------------------------------------------------------------------------

void load_recipients(context& ctx, const std::string& key, accepted_domain& d) {
  std::ifstream in(d.recipients_file);
  d.has_recipient_list = true;
  std::string line;
  int number = 0;
  while (std::getline(in, line)) {
    ++number;
    std::string_view v = line;
    if (auto hash = v.find('#'); hash != std::string_view::npos) v = v.substr(0, hash);
    v = trim(v);
    if (v.empty()) continue;
    auto at = v.rfind('@');
    bool blank = v.find_first_of(" \t<>") != std::string_view::npos;
    if (at == std::string_view::npos || at == 0 || at + 1 == v.size() || blank ||
        !is_hostname(v.substr(at + 1))) {
      ctx.error_at(d.recipients_file, number, 0, key,
                   squote(v) + " is not an e-mail address (one local@domain per line)");
      continue;
    }
    std::string address = lower(v);
    // A line for another domain could never match: most likely a copy-paste slip.
    std::string_view domain = std::string_view(address).substr(at + 1);
    bool in_domain = d.is_wildcard() ? (domain.size() > d.name.size() - 1 &&
                                        domain.substr(domain.size() - (d.name.size() - 1)) == d.name.substr(1))
                                     : domain == d.name;
    if (!d.name.empty() && !in_domain) {
      ctx.error_at(d.recipients_file, number, 0, key,
                   squote(v) + " is not in the accepted domain " + squote(d.name));
      continue;
    }
    d.recipients.insert(std::move(address));
  }
}

void read_accepted_domains(table_reader& top, config& c) {
  const toml::array* arr = read_table_array(top, "accepted_domain");
  if (!arr) return;
  size_t index = 0;
  for (const toml::node& el : *arr) {
    const toml::table& t = *el.as_table();
    std::string path = "accepted_domain[" + std::to_string(index++) + "]";
    table_reader r(top.ctx(), t, path);
    accepted_domain d;
    bool named = false;
    if (r.read_string("name", d.name)) {
      if (!is_domain_pattern(d.name, true)) {
        r.value_error("name", *t.get("name"),
                      squote(d.name) + " is not a domain name (or a wildcard such as *.example.com)" +
                          idn_hint(d.name));
        d.name.clear();  // so its recipient list is not checked against a bad name
      } else {
        d.name = lower(d.name);
        named = true;
      }
    } else if (!t.get("name")) {
      r.missing("name", "the domain, e.g. name = \"example.com\"");
    }
    r.read_enum("type", d.type, {{"authoritative", domain_type::authoritative},
                                 {"internal_relay", domain_type::internal_relay},
                                 {"external_relay", domain_type::external_relay}});
    std::string raw;
    if (r.read_string("recipients", raw)) {
      d.recipients_file = top.ctx().resolve(raw);
      std::error_code ec;
      if (raw.empty()) {
        r.value_error("recipients", *t.get("recipients"), "must be a file name");
      } else if (!fs::is_regular_file(d.recipients_file, ec)) {
        std::ifstream probe(d.recipients_file);
        std::string why = probe ? "is not a regular file" : std::strerror(errno);
        r.value_error("recipients", *t.get("recipients"),
                      "cannot read recipients file " + squote(d.recipients_file) + ": " + why);
      } else {
        load_recipients(top.ctx(), r.key_path("recipients"), d);
      }
    }
    r.finish();
    if (!named) continue;
    if (auto it = c.domain_index.find(d.name); it != c.domain_index.end()) {
      r.value_error("name", *t.get("name"),
                    "duplicate accepted domain " + squote(d.name) + " (first defined as accepted_domain[" +
                        std::to_string(it->second) + "])");
      continue;
    }
    c.domain_index.emplace(d.name, c.accepted_domains.size());
    c.accepted_domains.push_back(std::move(d));
  }
}

// ---------------------------------------------------------------------------------------

void apply_preset(receive_connector& rc) {
  permission_set& p = rc.permissions;
  p = permission_set{};
  rc.tls.starttls = starttls_mode::off;
  rc.tls.require_client_certificate = false;
  switch (rc.type) {
    case connector_type::internet:
      p.anonymous = true;
      rc.tls.starttls = starttls_mode::offered;
      break;
    case connector_type::enterprise:
      p.anonymous = true;
      p.relay = true;
      rc.tls.starttls = starttls_mode::offered;
      break;
    case connector_type::partner:
      p.anonymous = true;
      rc.tls.starttls = starttls_mode::required;
      rc.tls.require_client_certificate = true;
      break;
    case connector_type::client:
      p.auth_required = true;
      p.relay_authenticated = true;
      rc.tls.starttls = starttls_mode::required;
      break;
    case connector_type::custom:
      break;
  }
}

void read_tls(table_reader& parent, receive_connector& rc) {
  const toml::table* t = parent.read_table("tls");
  if (!t) return;
  table_reader r(parent.ctx(), *t, parent.key_path("tls"));
  tls_settings& tls = rc.tls;
  size_t errors_before = r.ctx().errors.size();
  r.read_path("certificate", tls.certificate, true);
  r.read_path("key", tls.key, true);
  // Both default to "auto"; naming only one file leaves the other "auto", which cannot
  // pair with it.
  if (r.ctx().errors.size() == errors_before && tls.is_auto() != (tls.key == "auto")) {
    std::string_view missing_one = tls.is_auto() ? "certificate" : "key";
    const toml::node* n = t->get(missing_one) ? t->get(missing_one) : t->get(tls.is_auto() ? "key" : "certificate");
    r.ctx().error(n->source(), r.key_path(missing_one),
                  "certificate and key must both be \"auto\" or both be files");
  }
  r.read_enum("starttls", tls.starttls, {{"off", starttls_mode::off},
                                          {"offered", starttls_mode::offered},
                                          {"required", starttls_mode::required}});
  if (const toml::node* n = r.get("min_version")) {
    if (auto s = n->as_string(); s && (s->get() == "1.2" || s->get() == "1.3")) {
      tls.min_version = s->get();
    } else if (n->is_floating_point()) {
      r.value_error("min_version", *n, "write the version as a string: \"1.2\" or \"1.3\"");
    } else if (n->is_string()) {
      r.value_error("min_version", *n, squote(n->as_string()->get()) + " is not one of \"1.2\", \"1.3\"");
    } else {
      r.type_error("min_version", *n, "\"1.2\" or \"1.3\"");
    }
  }
  r.read_string("ciphers", tls.ciphers);
  r.read_bool("require_client_certificate", tls.require_client_certificate);
  r.read_path("client_ca", tls.client_ca, false);
  if (const toml::array* sni = r.read_array("sni")) {
    size_t index = 0;
    std::set<std::string> seen;
    for (const toml::node& el : *sni) {
      std::string path = r.key_path("sni") + "[" + std::to_string(index++) + "]";
      const toml::table* et = el.as_table();
      if (!et) {
        r.ctx().error(el.source(), path, "expected a table {name=..., certificate=..., key=...}, got " + type_name(el));
        continue;
      }
      table_reader er(r.ctx(), *et, path);
      sni_certificate s;
      if (!er.read_string("name", s.name) && !et->get("name")) er.missing("name", "the host name it serves");
      if (!s.name.empty()) {
        if (!is_domain_pattern(s.name, true)) {
          er.value_error("name", *et->get("name"), squote(s.name) + " is not a host name" + idn_hint(s.name));
        } else if (!seen.insert(lower(s.name)).second) {
          er.value_error("name", *et->get("name"), "duplicate SNI name " + squote(s.name));
        }
        s.name = lower(s.name);
      }
      if (!er.read_path("certificate", s.certificate, true) && !et->get("certificate")) {
        er.missing("certificate", "a PEM file or \"auto\"");
      }
      if (!er.read_path("key", s.key, true) && !et->get("key")) er.missing("key", "a PEM file or \"auto\"");
      er.finish();
      tls.sni.push_back(std::move(s));
    }
  }
  r.finish();
  if (tls.require_client_certificate && tls.starttls == starttls_mode::off) {
    r.ctx().error(t->source(), r.key_path("require_client_certificate"),
                  "needs TLS: set starttls to \"offered\" or \"required\"");
  }
}

void read_auth(table_reader& parent, receive_connector& rc) {
  const toml::table* t = parent.read_table("auth");
  if (!t) return;
  table_reader r(parent.ctx(), *t, parent.key_path("auth"));
  auth_settings& a = rc.auth;
  std::vector<std::pair<std::string, const toml::node*>> mechs;
  if (r.read_strings("mechanisms", mechs)) {
    a.mechanisms.clear();
    for (auto& [m, n] : mechs) {
      std::string u = upper(m);
      if (u != "PLAIN" && u != "LOGIN") {
        r.value_error("mechanisms", *n, squote(m) + " is not a supported mechanism (\"PLAIN\", \"LOGIN\")");
      } else if (std::find(a.mechanisms.begin(), a.mechanisms.end(), u) == a.mechanisms.end()) {
        a.mechanisms.push_back(u);
      }
    }
  }
  r.read_path("credentials", a.credentials, false);
  r.read_bool("allow_plaintext_on_loopback", a.allow_plaintext_on_loopback);
  r.read_uint("max_failures_per_ip", a.max_failures_per_ip, 1, 1'000'000);
  r.finish();
}

void read_receive_connector(table_reader& r, const toml::table& t, const config& c, receive_connector& rc) {
  rc.line = static_cast<int>(t.source().begin.line);
  rc.max_message_size = c.server.max_message_size;
  if (!r.read_string("name", rc.name) && !t.get("name")) r.missing("name", "a unique name such as \"Default\"");
  if (t.get("name") && rc.name.empty() && t.get("name")->is_string()) {
    r.value_error("name", *t.get("name"), "must not be empty");
  }
  if (!r.read_enum("type", rc.type, {{"internet", connector_type::internet},
                                     {"enterprise", connector_type::enterprise},
                                     {"partner", connector_type::partner},
                                     {"client", connector_type::client},
                                     {"custom", connector_type::custom}}) &&
      !t.get("type")) {
    r.missing("type", "one of internet, enterprise, partner, client, custom");
  }
  apply_preset(rc);

  std::vector<std::pair<std::string, const toml::node*>> items;
  if (r.read_strings("bindings", items)) {
    for (auto& [text, n] : items) {
      auto b = binding::parse(text);
      if (!b) {
        std::string message = squote(text) + " is not a valid IP:port";
        if (text.find(':') != text.rfind(':') && text.front() != '[') {
          message += " (write IPv6 addresses in brackets, e.g. \"[::1]:25\")";
        }
        r.value_error("bindings", *n, message);
      } else if (std::find(rc.bindings.begin(), rc.bindings.end(), *b) != rc.bindings.end()) {
        r.value_error("bindings", *n, "duplicate binding " + b->to_string());
      } else {
        rc.bindings.push_back(*b);
      }
    }
    if (items.empty()) r.value_error("bindings", *t.get("bindings"), "must list at least one IP:port");
  } else if (!t.get("bindings")) {
    r.missing("bindings", "the IP:port endpoints to listen on, e.g. [\"0.0.0.0:25\"]");
  }

  items.clear();
  if (r.read_strings("remote_ranges", items)) {
    for (auto& [text, n] : items) {
      std::string why;
      auto range = ip_range::parse(text, &why);
      if (!range) {
        r.value_error("remote_ranges", *n, squote(text) + " is not a valid IP range: " + why);
      } else if (std::find(rc.remote_ranges.begin(), rc.remote_ranges.end(), *range) != rc.remote_ranges.end()) {
        r.value_error("remote_ranges", *n, "duplicate remote range " + range->to_string());
      } else {
        rc.remote_ranges.push_back(*range);
      }
    }
    if (items.empty()) r.value_error("remote_ranges", *t.get("remote_ranges"), "must list at least one range");
  } else if (!t.get("remote_ranges")) {
    rc.remote_ranges = {*ip_range::parse("0.0.0.0-255.255.255.255"), *ip_range::parse("::/0")};
  }

  r.read_size("max_message_size", rc.max_message_size);
  r.read_uint("max_recipients", rc.max_recipients, 1, 100'000);
  r.read_uint("max_connections", rc.max_connections, 1, 1'000'000);
  r.read_uint("max_connections_per_ip", rc.max_connections_per_ip, 1, 1'000'000);
  r.read_uint("max_errors", rc.max_errors, 1, 1000);
  r.read_bool("helo_required", rc.helo_required);
  if (r.read_string("banner", rc.banner)) {
    for (char ch : rc.banner) {
      if (static_cast<unsigned char>(ch) < 0x20 || static_cast<unsigned char>(ch) > 0x7e) {
        r.value_error("banner", *t.get("banner"), "must be printable ASCII on one line");
        break;
      }
    }
  }
  r.read_bool("protocol_log", rc.protocol_log);

  if (const toml::table* pt = r.read_table("permissions")) {
    table_reader pr(r.ctx(), *pt, r.key_path("permissions"));
    pr.read_bool("anonymous", rc.permissions.anonymous);
    pr.read_bool("relay", rc.permissions.relay);
    pr.read_bool("auth_required", rc.permissions.auth_required);
    pr.read_bool("relay_authenticated", rc.permissions.relay_authenticated);
    pr.finish();
    if (rc.permissions.anonymous && rc.permissions.auth_required) {
      r.ctx().error(pt->source(), r.key_path("permissions"),
                    "anonymous and auth_required cannot both be true");
    }
  }
  if (const toml::table* tt = r.read_table("timeouts")) {
    table_reader tr(r.ctx(), *tt, r.key_path("timeouts"));
    tr.read_uint("command_s", rc.timeouts.command_s, 1, 86'400);
    tr.read_uint("data_s", rc.timeouts.data_s, 1, 86'400);
    tr.read_uint("connection_s", rc.timeouts.connection_s, 1, 7 * 86'400);
    tr.finish();
  }
  read_tls(r, rc);
  read_auth(r, rc);
  r.finish();

  // Not when the permissions contradict each other: that error already says what to fix.
  bool contradictory = rc.permissions.anonymous && rc.permissions.auth_required;
  bool needs_credentials =
      !contradictory && (rc.permissions.auth_required || rc.permissions.relay_authenticated);
  if (needs_credentials && rc.auth.credentials.empty()) {
    const toml::node* at = t.get("auth");
    r.ctx().error(at ? at->source() : t.source(), r.key_path("auth.credentials"),
                  std::string("is required: permissions.") +
                      (rc.permissions.auth_required ? "auth_required" : "relay_authenticated") +
                      " is true (type = \"" + std::string(to_string(rc.type)) + "\")");
  }
  if (needs_credentials && rc.auth.mechanisms.empty()) {
    r.ctx().error(t.source(), r.key_path("auth.mechanisms"), "must list at least one mechanism");
  }
}

void read_receive_connectors(table_reader& top, config& c) {
  const toml::array* arr = read_table_array(top, "receive_connector");
  if (!arr) return;
  size_t index = 0;
  std::vector<std::string> paths;
  for (const toml::node& el : *arr) {
    const toml::table& t = *el.as_table();
    std::string path = "receive_connector[" + std::to_string(index++) + "]";
    table_reader r(top.ctx(), t, path);
    receive_connector rc;
    read_receive_connector(r, t, c, rc);

    // Unique names and, as in Exchange, unique (binding, remote range) pairs.
    for (size_t i = 0; i < c.receive_connectors.size(); ++i) {
      const receive_connector& other = c.receive_connectors[i];
      if (!rc.name.empty() && lower(other.name) == lower(rc.name)) {
        r.value_error("name", *t.get("name"),
                      "duplicate receive connector name " + squote(rc.name) + " (also " + paths[i] + " at line " +
                          std::to_string(other.line) + ")");
      }
      for (const binding& b : rc.bindings) {
        if (std::find(other.bindings.begin(), other.bindings.end(), b) == other.bindings.end()) continue;
        for (const ip_range& range : rc.remote_ranges) {
          if (std::find(other.remote_ranges.begin(), other.remote_ranges.end(), range) == other.remote_ranges.end()) {
            continue;
          }
          const toml::node* n = t.get("remote_ranges");
          r.ctx().error(n ? n->source() : t.source(), r.key_path("remote_ranges"),
                        "receive connector " + squote(rc.name) + " and receive connector " + squote(other.name) +
                            " (" + paths[i] + " at line " + std::to_string(other.line) + ") both use binding " +
                            b.to_string() + " with remote range " + range.to_string() +
                            "; each binding and remote range pair must belong to one connector");
        }
      }
    }
    paths.push_back(path);
    c.receive_connectors.push_back(std::move(rc));
  }
}

// ---------------------------------------------------------------------------------------

// "host", "host:port", "[192.0.2.1]:port", "[2001:db8::1]:port"; port defaults to the
// connector's.
std::optional<smart_host> parse_smart_host(std::string_view text, uint16_t default_port) {
  smart_host h;
  h.port = default_port;
  std::string_view host = text, port;
  if (!text.empty() && text.front() == '[') {
    auto close = text.find(']');
    if (close == std::string_view::npos) return std::nullopt;
    host = text.substr(1, close - 1);
    std::string_view rest = text.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return std::nullopt;
      port = rest.substr(1);
    }
    if (!ip_address::parse(host)) return std::nullopt;  // "[1.2.3.4]" and "[2001:db8::1]" only
  } else {
    auto colon = text.find(':');
    if (colon != std::string_view::npos) {
      if (text.find(':', colon + 1) != std::string_view::npos) return std::nullopt;  // bare IPv6
      host = text.substr(0, colon);
      port = text.substr(colon + 1);
    }
    if (!is_hostname(host) && !ip_address::parse(host)) return std::nullopt;
  }
  if (port.data() != nullptr) {
    if (port.empty() || port.size() > 5) return std::nullopt;
    unsigned p = 0;
    for (char ch : port) {
      if (ch < '0' || ch > '9') return std::nullopt;
      p = p * 10 + static_cast<unsigned>(ch - '0');
    }
    if (p == 0 || p > 65535) return std::nullopt;
    h.port = static_cast<uint16_t>(p);
  }
  h.host = lower(host);
  return h;
}

void read_address_spaces(table_reader& r, const toml::table& t, send_connector& sc) {
  const toml::array* arr = r.read_array("address_spaces");
  if (!arr) {
    if (!t.get("address_spaces")) {
      r.missing("address_spaces", "the domains it sends to, e.g. [\"*\"] or [{ domain = \"contoso.com\", cost = 5 }]");
    }
    return;
  }
  if (arr->empty()) r.value_error("address_spaces", *arr, "must list at least one domain");
  size_t index = 0;
  for (const toml::node& el : *arr) {
    std::string key = "address_spaces[" + std::to_string(index++) + "]";
    address_space as;
    const toml::node* domain_node = &el;
    bool ok = true;
    if (auto s = el.as_string()) {
      std::string_view v = s->get();
      if (auto semi = v.find(';'); semi != std::string_view::npos) {
        std::string_view cost = trim(v.substr(semi + 1));
        v = trim(v.substr(0, semi));
        unsigned n = 0;
        ok = !cost.empty() && cost.size() <= 3;
        for (char ch : cost) {
          if (ch < '0' || ch > '9') ok = false;
          else n = n * 10 + static_cast<unsigned>(ch - '0');
        }
        if (!ok || n < 1 || n > 100) {
          r.ctx().error(el.source(), r.key_path(key),
                        squote(s->get()) + ": the cost after ';' must be between 1 and 100");
          continue;
        }
        as.cost = n;
      }
      as.domain = std::string(v);
    } else if (auto et = el.as_table()) {
      table_reader er(r.ctx(), *et, r.key_path(key));
      if (!er.read_string("domain", as.domain)) {
        if (!et->get("domain")) er.missing("domain", "\"contoso.com\", \"*.contoso.com\" or \"*\"");
        ok = false;
      } else {
        domain_node = et->get("domain");
      }
      er.read_uint("cost", as.cost, 1, 100);
      er.finish();
      if (!ok) continue;
    } else {
      r.ctx().error(el.source(), r.key_path(key),
                    "expected a domain string (\"contoso.com;5\") or a table { domain = ..., cost = ... }, got " +
                        type_name(el));
      continue;
    }
    if (as.domain != "*" && !is_domain_pattern(as.domain, true)) {
      r.ctx().error(domain_node->source(), r.key_path(key),
                    squote(as.domain) + " is not a domain, a wildcard such as *.contoso.com, or *" +
                        idn_hint(as.domain));
      continue;
    }
    as.domain = lower(as.domain);
    bool dup = false;
    for (const auto& other : sc.address_spaces) dup = dup || other.domain == as.domain;
    if (dup) {
      r.ctx().error(domain_node->source(), r.key_path(key), "duplicate address space " + squote(as.domain));
      continue;
    }
    sc.address_spaces.push_back(std::move(as));
  }
}

void read_send_connectors(table_reader& top, config& c) {
  const toml::array* arr = read_table_array(top, "send_connector");
  if (!arr) return;
  size_t index = 0;
  std::vector<std::string> paths;
  for (const toml::node& el : *arr) {
    const toml::table& t = *el.as_table();
    std::string path = "send_connector[" + std::to_string(index++) + "]";
    table_reader r(top.ctx(), t, path);
    send_connector sc;
    sc.line = static_cast<int>(t.source().begin.line);
    sc.max_message_size = c.server.max_message_size;
    if (!r.read_string("name", sc.name) && !t.get("name")) r.missing("name", "a unique name such as \"Internet\"");
    if (t.get("name") && sc.name.empty() && t.get("name")->is_string()) {
      r.value_error("name", *t.get("name"), "must not be empty");
    }
    r.read_bool("enabled", sc.enabled);
    r.read_uint("port", sc.port, 1, 65535);
    read_address_spaces(r, t, sc);
    r.read_enum("routing", sc.routing, {{"dns", routing_mode::dns}, {"smarthost", routing_mode::smarthost}});
    std::vector<std::pair<std::string, const toml::node*>> items;
    if (r.read_strings("smart_hosts", items)) {
      for (auto& [text, n] : items) {
        if (auto h = parse_smart_host(text, sc.port)) {
          sc.smart_hosts.push_back(*h);
        } else {
          r.value_error("smart_hosts", *n, squote(text) + " is not a valid host or host:port");
        }
      }
    }
    if (sc.routing == routing_mode::smarthost && sc.smart_hosts.empty() && items.empty()) {
      const toml::node* n = t.get("routing");
      r.ctx().error(n ? n->source() : t.source(), r.key_path("smart_hosts"),
                    "is required when routing = \"smarthost\" (e.g. smart_hosts = [\"relay.example.com:25\"])");
    }
    if (sc.routing == routing_mode::dns && !items.empty()) {
      r.value_error("smart_hosts", *t.get("smart_hosts"),
                    "is only used with routing = \"smarthost\" (routing is \"dns\")");
    }
    r.read_size("max_message_size", sc.max_message_size);
    r.read_enum("tls", sc.tls, {{"none", send_tls::none},
                                {"opportunistic", send_tls::opportunistic},
                                {"mandatory", send_tls::mandatory},
                                {"partner", send_tls::partner}});
    items.clear();
    if (r.read_strings("source_servers", items)) {
      for (auto& [text, n] : items) {
        if (text.empty()) r.value_error("source_servers", *n, "must not be empty");
        else sc.source_servers.push_back(text);
      }
    }
    r.finish();
    for (size_t i = 0; i < c.send_connectors.size(); ++i) {
      if (!sc.name.empty() && lower(c.send_connectors[i].name) == lower(sc.name)) {
        r.value_error("name", *t.get("name"),
                      "duplicate send connector name " + squote(sc.name) + " (also " + paths[i] + " at line " +
                          std::to_string(c.send_connectors[i].line) + ")");
      }
    }
    paths.push_back(path);
    c.send_connectors.push_back(std::move(sc));
  }
}

// ---------------------------------------------------------------------------------------
// [[transport_rule]]

// RFC 5322 field name: printable ASCII except ':'.
bool is_field_name(std::string_view s) {
  if (s.empty() || s.size() > 76) return false;
  for (char ch : s) {
    if (ch <= 32 || ch >= 127 || ch == ':') return false;
  }
  return true;
}

// A value written into a header or a reply: CR or LF would let it start a new header line
// (header injection), NUL would truncate it in C APIs.
bool has_line_break(std::string_view s) { return s.find_first_of(std::string_view("\r\n\0", 3)) != std::string_view::npos; }

bool is_local_part(std::string_view s) {
  return !s.empty() && s.size() <= 64 && s.find_first_of(" \t<>*\r\n") == std::string_view::npos;
}

// "user@example.org", "*@example.org", "*@*.example.org".
bool is_address_pattern(std::string_view s) {
  auto at = s.rfind('@');
  if (at == std::string_view::npos) return false;
  std::string_view local = s.substr(0, at);
  return (local == "*" || is_local_part(local)) && is_domain_pattern(s.substr(at + 1), true);
}

bool is_address(std::string_view s) {
  auto at = s.rfind('@');
  return at != std::string_view::npos && is_local_part(s.substr(0, at)) && is_hostname(s.substr(at + 1));
}

// Enhanced status code (RFC 3463) of a failure: 4.x.x or 5.x.x.
bool is_failure_status(std::string_view s) {
  if (s.size() < 5 || (s[0] != '4' && s[0] != '5') || s[1] != '.') return false;
  size_t digits = 0, dots = 0;
  for (size_t i = 2; i < s.size(); ++i) {
    if (s[i] == '.') {
      if (digits == 0 || ++dots > 1) return false;
      digits = 0;
    } else if (s[i] >= '0' && s[i] <= '9') {
      if (++digits > 3) return false;
    } else {
      return false;
    }
  }
  return dots == 1 && digits > 0;
}

void read_rule_list(table_reader& r, std::string_view key, std::vector<std::string>& out,
                    bool (*valid)(std::string_view), std::string_view what) {
  std::vector<std::pair<std::string, const toml::node*>> items;
  if (!r.read_strings(key, items)) return;
  if (items.empty()) r.value_error(key, *r.get(key), "must not be empty (leave the key out to match everything)");
  for (auto& [text, n] : items) {
    if (!valid(text)) {
      r.value_error(key, *n, squote(text) + " is not " + std::string(what) + idn_hint(text));
      continue;
    }
    out.push_back(lower(text));
  }
}

// { name = "X-Tag", value = "..." }
std::optional<rules::header_field> read_header_field(table_reader& r, std::string_view key) {
  const toml::table* t = r.read_table(key);
  if (!t) return std::nullopt;
  table_reader hr(r.ctx(), *t, r.key_path(key));
  rules::header_field f;
  bool ok = true;
  if (hr.read_string("name", f.name)) {
    if (!is_field_name(f.name)) {
      hr.value_error("name", *t->get("name"), squote(f.name) + " is not a header field name");
      ok = false;
    }
  } else {
    if (!t->get("name")) hr.missing("name", "the header field, e.g. \"X-Tag\"");
    ok = false;
  }
  if (hr.read_string("value", f.value)) {
    if (has_line_break(f.value)) {
      hr.value_error("value", *t->get("value"), "must not contain CR, LF or NUL (it would inject header lines)");
      ok = false;
    }
  } else {
    if (!t->get("value")) hr.missing("value", "the field's value");
    ok = false;
  }
  hr.finish();
  if (!ok) return std::nullopt;
  return f;
}

// A connector name from a rule, rewritten to the connector's own spelling.
template <typename Connectors>
bool resolve_connector(table_reader& r, std::string_view key, const toml::node& n, std::string& name,
                       const Connectors& list, std::string_view kind) {
  for (const auto& con : list) {
    if (lower(con.name) == lower(name)) {
      name = con.name;
      return true;
    }
  }
  std::string known;
  for (const auto& con : list) known += (known.empty() ? "" : ", ") + squote(con.name);
  r.value_error(key, n,
                "no " + std::string(kind) + " named " + squote(name) +
                    (known.empty() ? " (none is defined)" : " (defined: " + known + ")"));
  return false;
}

void read_transport_rule(table_reader& r, const toml::table& t, const config& c, const std::string& path,
                         rules::rule_spec& rule) {
  rule.line = static_cast<int>(t.source().begin.line);
  if (!r.read_string("name", rule.name) && !t.get("name")) r.missing("name", "a unique name, for the tracking log");
  if (t.get("name") && t.get("name")->is_string() && (rule.name.empty() || has_line_break(rule.name))) {
    r.value_error("name", *t.get("name"), "must be a non-empty single line");
  }
  r.read_bool("enabled", rule.enabled);

  read_rule_list(r, "sender", rule.sender, is_address_pattern,
                 "an address pattern (user@example.org, *@example.org or *@*.example.org)");
  read_rule_list(r, "sender_domain", rule.sender_domain,
                 [](std::string_view s) { return is_domain_pattern(s, true); }, "a domain or *.domain");
  read_rule_list(r, "recipient", rule.recipient, is_address_pattern,
                 "an address pattern (user@example.org, *@example.org or *@*.example.org)");
  read_rule_list(r, "recipient_domain", rule.recipient_domain,
                 [](std::string_view s) { return is_domain_pattern(s, true); }, "a domain or *.domain");

  if (const toml::table* ht = r.read_table("header")) {
    table_reader hr(r.ctx(), *ht, r.key_path("header"));
    rules::header_condition h;
    bool ok = true;
    if (hr.read_string("name", h.name)) {
      if (!is_field_name(h.name)) {
        hr.value_error("name", *ht->get("name"), squote(h.name) + " is not a header field name");
        ok = false;
      }
    } else {
      if (!ht->get("name")) hr.missing("name", "the header field to look at, e.g. \"Subject\"");
      ok = false;
    }
    bool has_pattern = hr.read_string("pattern", h.pattern);
    std::string contains;
    bool has_contains = hr.read_string("contains", contains);
    if (has_pattern && has_contains) {
      hr.value_error("contains", *ht->get("contains"), "give either pattern or contains, not both");
      ok = false;
    } else if (has_contains) {
      h.how = rules::header_condition::kind::contains;
      h.pattern = std::move(contains);
    } else if (!has_pattern) {
      if (!ht->get("pattern") && !ht->get("contains")) {
        hr.missing("pattern", "a glob such as \"*invoice*\", or contains = \"invoice\"");
      }
      ok = false;
    }
    if ((has_pattern || has_contains) && (has_line_break(h.pattern) || h.pattern.size() > 1000)) {
      std::string_view k = has_contains ? "contains" : "pattern";
      hr.value_error(k, *ht->get(k), "must be one line of at most 1000 bytes");
      ok = false;
    }
    hr.finish();
    if (ok) rule.header = std::move(h);
  }
  uint64_t size = 0;
  if (r.read_size("size_above", size)) rule.size_above = size;

  std::vector<std::pair<std::string, const toml::node*>> items;
  if (r.read_strings("received_on", items)) {
    if (items.empty()) r.value_error("received_on", *t.get("received_on"), "must name at least one receive connector");
    for (auto& [name, n] : items) {
      if (resolve_connector(r, "received_on", *n, name, c.receive_connectors, "receive connector")) {
        rule.received_on.push_back(name);
      }
    }
  }

  rule.add_header = read_header_field(r, "add_header");
  rule.replace_header = read_header_field(r, "replace_header");
  for (auto [key, out] : {std::pair<std::string_view, std::string*>{"redirect_to", &rule.redirect_to},
                          std::pair<std::string_view, std::string*>{"bcc", &rule.bcc}}) {
    if (r.read_string(key, *out) && !is_address(*out)) {
      r.value_error(key, *t.get(key), squote(*out) + " is not an e-mail address (local@domain)" + idn_hint(*out));
      out->clear();
    }
  }
  if (r.read_string("route_via", rule.route_via)) {
    if (!resolve_connector(r, "route_via", *t.get("route_via"), rule.route_via, c.send_connectors, "send connector")) {
      rule.route_via.clear();
    }
  }
  if (const toml::table* jt = r.read_table("reject")) {
    table_reader jr(r.ctx(), *jt, r.key_path("reject"));
    rules::rejection_spec rej;
    rej.text = "Message rejected by transport rule";
    bool ok = true;
    if (jr.read_string("status", rej.status)) {
      if (!is_failure_status(rej.status)) {
        jr.value_error("status", *jt->get("status"),
                       squote(rej.status) + " is not a failure status code (5.x.x or 4.x.x, e.g. \"5.7.1\")");
        ok = false;
      }
    } else {
      if (!jt->get("status")) jr.missing("status", "an enhanced status code such as \"5.7.1\"");
      ok = false;
    }
    if (jr.read_string("text", rej.text) && (rej.text.empty() || has_line_break(rej.text))) {
      jr.value_error("text", *jt->get("text"), "must be one non-empty line (no CR, LF or NUL)");
      ok = false;
    }
    jr.finish();
    if (ok) rule.reject = std::move(rej);
  }
  r.read_bool("stop", rule.stop);
  r.finish();

  // An action key that is present but wrong already has its own message; this one is for
  // a rule that says nothing about what to do.
  static constexpr std::string_view action_keys[] = {"add_header", "replace_header", "redirect_to",
                                                     "bcc",        "route_via",      "reject"};
  bool any_action_key = std::any_of(std::begin(action_keys), std::end(action_keys),
                                    [&](std::string_view k) { return t.get(k) != nullptr; });
  if (!any_action_key) {
    r.ctx().error(t.source(), path,
                  "rule " + squote(rule.name) +
                      " has no action (add_header, replace_header, redirect_to, bcc, route_via or reject)");
  } else if (rule.reject && (rule.add_header || rule.replace_header || !rule.redirect_to.empty() ||
                             !rule.bcc.empty() || !rule.route_via.empty())) {
    r.ctx().error(t.get("reject")->source(), r.key_path("reject"),
                  "cannot be combined with other actions: a rejected message goes nowhere");
  }
}

void read_transport_rules(table_reader& top, config& c) {
  const toml::array* arr = read_table_array(top, "transport_rule");
  if (!arr) return;
  size_t index = 0;
  std::vector<std::string> paths;
  for (const toml::node& el : *arr) {
    const toml::table& t = *el.as_table();
    std::string path = "transport_rule[" + std::to_string(index++) + "]";
    table_reader r(top.ctx(), t, path);
    rules::rule_spec rule;
    read_transport_rule(r, t, c, path, rule);
    for (size_t i = 0; i < c.transport_rules.size(); ++i) {
      if (!rule.name.empty() && lower(c.transport_rules[i].name) == lower(rule.name)) {
        r.value_error("name", *t.get("name"),
                      "duplicate transport rule name " + squote(rule.name) + " (also " + paths[i] + " at line " +
                          std::to_string(c.transport_rules[i].line) + ")");
      }
    }
    paths.push_back(path);
    c.transport_rules.push_back(std::move(rule));
  }
}

load_result parse_document(std::string_view text, context& ctx) {
  load_result result;
  toml::table doc;
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
  context ctx;
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
