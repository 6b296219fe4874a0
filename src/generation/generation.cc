// generation.cc: builds one configuration generation: routes, rules, receive policies, logs, admin view.
// Untrusted input: none (validated configuration; the files it names are the administrator's).
#include "generation/generation.h"

#include <cctype>
#include <cstdio>
#include <filesystem>

#include "auth/credentials.h"
#include "log/tracking_log.h"
#include "generation/route_config.h"
#include "tls/certgen.h"
#include "tls/context.h"

namespace sluice::generation {
namespace {

smtp::server_settings smtp_settings_for(const config::config& cfg, const config::receive_connector& rc) {
  smtp::server_settings s;
  s.hostname = cfg.server.hostname;
  s.banner = rc.banner;
  uint64_t size = rc.max_message_size != 0 ? rc.max_message_size : cfg.server.max_message_size;
  // The lowest limit on the path wins: the organisation's cannot be raised per connector.
  if (cfg.server.max_message_size != 0 && cfg.server.max_message_size < size) size = cfg.server.max_message_size;
  s.max_message_size = size;
  s.max_recipients = rc.max_recipients;
  s.max_errors = static_cast<int>(rc.max_errors);
  s.helo_required = rc.helo_required;
  s.starttls_offered = rc.tls.starttls != config::starttls_mode::off;
  s.starttls_required = rc.tls.starttls == config::starttls_mode::required;
  s.auth_offered = false;  // decided per session (TLS active or loopback)
  s.auth_required = rc.permissions.auth_required;
  return s;
}

// A certificate pair from the config, generating the self-signed one for "auto".
bool resolve_pair(const config::config& cfg, const std::string& cert, const std::string& key, const std::string& name,
                  tls::cert_pair& out, std::string& error) {
  if (cert != "auto") {
    out = {cert, key};
    return true;
  }
  tls::cert_files files;
  std::string dir = cfg.server.auto_tls_dir;
  if (name != cfg.server.hostname) dir += "/" + name;
  if (!tls::make_self_signed(dir, name, files, error)) return false;
  if (files.created) std::fprintf(stderr, "sluiced: generated a self-signed certificate for %s in %s\n", name.c_str(), dir.c_str());
  out = {files.cert_file, files.key_file};
  return true;
}

std::shared_ptr<const tls::context> make_tls_context(const config::config& cfg, const config::receive_connector& rc,
                                                     std::string& error) {
  tls::server_options o;
  if (!resolve_pair(cfg, rc.tls.certificate, rc.tls.key, cfg.server.hostname, o.pair, error)) return nullptr;
  for (const auto& sni : rc.tls.sni) {
    tls::sni_entry e;
    e.name = sni.name;
    std::string host = sni.name.rfind("*.", 0) == 0 ? "wildcard" + sni.name.substr(1) : sni.name;
    if (!resolve_pair(cfg, sni.certificate, sni.key, host, e.pair, error)) return nullptr;
    o.sni.push_back(std::move(e));
  }
  if (!tls::parse_protocol(rc.tls.min_version, o.minimum)) {
    error = "bad TLS min_version " + rc.tls.min_version;
    return nullptr;
  }
  o.ciphers = rc.tls.ciphers;
  if (rc.tls.require_client_certificate) o.client_auth = tls::client_certs::require;
  o.client_ca_file = rc.tls.client_ca;
  return tls::context::make_server(o, error);
}

log::rotation log_rotation(const config::config& cfg) {
  return {.max_size = cfg.server.log_max_size, .keep = cfg.server.log_keep, .max_age_days = cfg.server.log_max_age_days,
          .daily = cfg.server.log_rotate_daily};
}

std::string sanitize_file_name(std::string_view name) {
  std::string out;
  for (char c : name) out.push_back(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' ? c : '_');
  return out;
}

// One receive connector's policy, or null with `error` (already naming the connector).
std::shared_ptr<const smtpd::connector_policy> make_policy(const config::config& cfg,
                                                           const config::receive_connector& rc,
                                                           const std::string& protocol_dir, std::string& error) {
  auto p = std::make_shared<smtpd::connector_policy>();
  p->name = rc.name;
  p->smtp = smtp_settings_for(cfg, rc);
  p->anonymous_submit = rc.permissions.anonymous || rc.permissions.auth_required;
  p->relay = rc.permissions.relay;
  p->relay_authenticated = rc.permissions.relay_authenticated;
  p->command_timeout_ms = rc.timeouts.command_s * 1000;
  p->data_timeout_ms = rc.timeouts.data_s * 1000;
  p->content_timeout_ms = rc.timeouts.content_s * 1000;
  p->connection_timeout_ms = rc.timeouts.connection_s * 1000;
  p->max_received_headers = cfg.server.max_received_headers;
  p->max_header_size = rc.max_header_size;
  if (rc.tls.starttls != config::starttls_mode::off) {
    p->tls = make_tls_context(cfg, rc, error);
    if (!p->tls) {
      error = "receive connector " + rc.name + ": TLS: " + error;
      return nullptr;
    }
  }
  if (!rc.auth.credentials.empty()) {
    auto creds = auth::credentials::load(rc.auth.credentials, error);
    if (!creds) {
      error = "receive connector " + rc.name + ": AUTH: " + error;
      return nullptr;
    }
    p->credentials = std::make_shared<const auth::credentials>(std::move(*creds));
    p->auth_plaintext_on_loopback = rc.auth.allow_plaintext_on_loopback;
    p->auth_max_failures = rc.auth.max_failures_per_ip;
  }
  if (rc.protocol_log) {
    // One file per connector name, shared by the connector's sessions on every loop.
    p->protocol_log = log::append_file::open(protocol_dir + "/" + sanitize_file_name(rc.name) + ".csv",
                                             log::protocol_log_header(), error, log_rotation(cfg));
    if (!p->protocol_log) return nullptr;
  }
  return p;
}

std::shared_ptr<const smtpd::connector_policies> make_receive_policies(std::shared_ptr<const config::config> cfg,
                                                                       std::shared_ptr<const route::table> routes,
                                                                       smtpd::connection_registry& connections,
                                                                       std::string& error) {
  auto out = std::make_shared<smtpd::connector_policies>();
  out->cfg = cfg;
  out->routes = std::move(routes);
  std::vector<std::string> names;
  for (const auto& rc : cfg->receive_connectors) names.push_back(rc.name);
  out->limits = std::make_unique<smtpd::connection_limits>(connections, names);
  const std::string protocol_dir = cfg->server.log_dir + "/protocol";
  bool any_log = false;
  for (const auto& rc : cfg->receive_connectors) any_log |= rc.protocol_log;
  std::error_code ec;
  // A failure here shows as the log file's own open error below.
  if (any_log) std::filesystem::create_directories(protocol_dir, ec);
  for (const auto& rc : cfg->receive_connectors) {
    auto p = make_policy(*cfg, rc, protocol_dir, error);
    if (!p) return nullptr;
    out->by_connector.push_back(std::move(p));
  }
  return out;
}

// The outbound TLS contexts: one unverified for opportunistic and mandatory connectors,
// and a verifying one per partner connector (its CA file, or the system store).
std::shared_ptr<const delivery::send_tls> make_send_tls(const config::config& cfg, std::string& error) {
  auto out = std::make_shared<delivery::send_tls>();
  tls::client_options o;
  o.policy = tls::verify_policy::opportunistic;
  out->unverified = tls::context::make_client(o, error);
  if (!out->unverified) return nullptr;
  for (const auto& sc : cfg.send_connectors) {
    if (sc.tls != route::tls_policy::partner) continue;
    tls::client_options v;
    v.policy = tls::verify_policy::verified;
    v.ca_file = sc.tls_ca;
    auto ctx = tls::context::make_client(v, error);
    if (!ctx) {
      error = "send connector \"" + sc.name + "\": " + error;
      return nullptr;
    }
    out->verified.emplace(sc.name, std::move(ctx));
  }
  return out;
}

}  // namespace

build_result build(std::shared_ptr<const config::config> cfg, uint64_t number,
                   std::chrono::system_clock::time_point loaded_at, daemon_state* shared) {
  build_result result;
  auto g = std::make_shared<generation>();
  g->number = number;
  g->loaded_at = loaded_at;
  g->cfg = cfg;
  g->routes = build_route_table(*cfg, result.errors);
  if (!g->routes) {
    result.failed = failure::routes;
    return result;
  }
  g->rules = std::make_shared<const rules::rule_set>(cfg->transport_rules);
  std::string error;
  g->tracking_log = log::append_file::open(cfg->server.log_dir + "/tracking.csv", log::tracking_log_header(), error,
                                           log_rotation(*cfg));
  smtpd::connection_registry private_connections;
  if (g->tracking_log)
    g->receive = make_receive_policies(cfg, g->routes, shared ? shared->connections : private_connections, error);
  if (g->receive) g->send_tls = make_send_tls(*cfg, error);
  if (!g->receive || !g->send_tls) {
    result.failed = failure::resources;
    result.errors.push_back(std::move(error));
    return result;
  }
  g->admin_view = admin::snapshot{cfg, g->routes, loaded_at};
  result.built = std::move(g);
  return result;
}

}  // namespace sluice::generation
