// reader.h: internal to the loader: per-load error context, the TOML table reader, the
// value checks several sections share, and one reader per top-level section.
// Untrusted input: the configuration file and the recipient lists it names (admin-written,
// but typos must be reported with file, line, column and key, never silently ignored).
#pragma once
#include <toml++/toml.h>

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "config/config.h"

namespace sluice::config::detail {

std::string lower(std::string_view s);
std::string squote(std::string_view s);
// LDH host name, 1-63 per label, 253 in all; a trailing dot is not accepted here.
bool is_hostname(std::string_view s);
// "example.com" or, when wildcards are allowed, "*.example.com".
bool is_domain_pattern(std::string_view s, bool allow_wildcard);
// Names are compared as ASCII; internationalized names must be written as A-labels.
std::string idn_hint(std::string_view s);
std::string type_name(const toml::node& n);
// A port number 1-65535 in decimal, nothing else.
std::optional<uint16_t> parse_port(std::string_view s);
// "[address]" or "[address]:port" into address and port ("" when absent); false for
// anything else, "[address]:" included.
bool split_bracketed(std::string_view text, std::string_view& host, std::string_view& port);

// Shared state of one load: where we are and what went wrong so far.
struct context {
  std::string file;      // as given, for messages
  std::string base_dir;  // for relative input files
  std::vector<config_error> errors;

  void error(const toml::source_region& where, std::string key, std::string message);
  void error_at(std::string f, int line, int column, std::string key, std::string message);
  std::string resolve(std::string_view path) const;
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

  void type_error(std::string_view key, const toml::node& n, std::string_view expected);
  void value_error(std::string_view key, const toml::node& n, std::string message);
  // Held until finish(): if an unknown key looks like the missing one, the typo is the
  // one error worth reporting.
  void missing(std::string_view key, std::string_view what);

  bool read_bool(std::string_view key, bool& out);
  bool read_string(std::string_view key, std::string& out);

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
  bool read_size(std::string_view key, uint64_t& out);
  // Seconds as an integer, or a string with a unit ("30s", "5m", "1h", "5d"), in [min, max].
  bool read_seconds(std::string_view key, uint64_t& out, uint64_t min, uint64_t max);
  template <typename T>
  bool read_duration(std::string_view key, T& out, uint64_t min, uint64_t max) {
    uint64_t v = 0;
    if (!read_seconds(key, v, min, max)) return false;
    out = static_cast<T>(v);
    return true;
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

  const toml::table* read_table(std::string_view key);
  const toml::array* read_array(std::string_view key);
  // An array of strings; each element comes with its node, for positions.
  bool read_strings(std::string_view key, std::vector<std::pair<std::string, const toml::node*>>& out);
  // A path to an input file, resolved against the config file's directory and checked
  // to exist. "auto" passes through when allowed.
  bool read_path(std::string_view key, std::string& out, bool allow_auto);

  void finish();

 private:
  context& ctx_;
  const toml::table& table_;
  std::string path_;
  std::set<std::string> known_;
  std::vector<std::pair<std::string, std::string>> missing_;
};

// An array of tables ([[name]]); a plain [name] table is the most likely mistake.
const toml::array* read_table_array(table_reader& r, std::string_view key);

// One per top-level section, called in this order by the loader; each appends to c and
// reports problems through top's context. Later sections may look at earlier ones (sizes
// default to [server]'s, rules name connectors).
void read_server(table_reader& top, config& c);                // load_server.cc
void read_delivery(table_reader& top, config& c);              // load_delivery.cc
void read_dns(table_reader& top, config& c);                   // load_delivery.cc
void read_dsn(table_reader& top, config& c);                   // load_delivery.cc
void read_accepted_domains(table_reader& top, config& c);      // load_routing.cc
void read_receive_connectors(table_reader& top, config& c);    // load_receive.cc
void read_send_connectors(table_reader& top, config& c);       // load_routing.cc
void read_transport_rules(table_reader& top, config& c);       // load_rules.cc

// The delivery limit keys (max_connections, connection_rate, suspend...) of r's table, as
// [delivery], [[delivery.domain]] and [[send_connector]] share them (load_delivery.cc).
void read_limits(table_reader& r, delivery_limits_override& out);

}  // namespace sluice::config::detail
