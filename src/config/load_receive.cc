// load_receive.cc: [[receive_connector]]: presets, bindings, remote ranges, limits,
// permissions, timeouts, TLS (with SNI) and AUTH settings.
// Untrusted input: the configuration file (admin-written, but typos must be reported with
// file, line, column and key, never silently ignored).
#include <algorithm>
#include <set>

#include "config/reader.h"

namespace sluice::config::detail {
namespace {

std::string upper(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  }
  return out;
}

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
  r.read_size("max_header_size", rc.max_header_size);
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
    tr.read_uint("content_s", rc.timeouts.content_s, 1, 7 * 86'400);
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

}  // namespace

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

}  // namespace sluice::config::detail
