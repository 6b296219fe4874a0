// config_cmd.cc: `sluicectl config check FILE`: validates a configuration file with the daemon's own loader, offline.
// Untrusted input: the TOML file named on the command line (parsed by config::load_file, never written).
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <memory>
#include <string>
#include <vector>

#include "auth/credentials.h"
#include "common.h"
#include "config/config.h"
#include "generation/route_config.h"
#include "tls/context.h"

namespace sluice::ctl {

namespace {

// "FILE:LINE: " for something defined at `line` (0: unknown, then "FILE: ").
std::string where(const std::string& file, int line) {
  return line > 0 ? fmt::format("{}:{}: ", file, line) : file + ": ";
}

// The files a generation build would load, loaded the same way (tls::context, the AUTH
// credentials reader), so a certificate that does not load fails the check as it would
// fail a reload. "auto" certificates are skipped: sluiced generates them when missing,
// and a check never writes.
void check_resources(const std::string& file, const config::config& cfg, std::vector<std::string>& out) {
  for (const auto& rc : cfg.receive_connectors) {
    const std::string at = where(file, rc.line) + "receive connector " + rc.name + ": ";
    std::string error;
    if (rc.tls.starttls != config::starttls_mode::off) {
      tls::server_options o;
      if (!tls::parse_protocol(rc.tls.min_version, o.minimum)) out.push_back(at + "TLS: bad min_version " + rc.tls.min_version);
      o.ciphers = rc.tls.ciphers;
      if (rc.tls.require_client_certificate) o.client_auth = tls::client_certs::require;
      o.client_ca_file = rc.tls.client_ca;
      std::vector<tls::cert_pair> pairs;
      if (!rc.tls.is_auto()) pairs.push_back({rc.tls.certificate, rc.tls.key});
      for (const auto& sni : rc.tls.sni)
        if (sni.certificate != "auto") pairs.push_back({sni.certificate, sni.key});
      for (const auto& pair : pairs) {
        o.pair = pair;
        if (!tls::context::make_server(o, error)) out.push_back(at + "TLS: " + error);
      }
    }
    if (!rc.auth.credentials.empty() && !auth::credentials::load(rc.auth.credentials, error))
      out.push_back(at + "AUTH: " + error);
  }
  for (const auto& sc : cfg.send_connectors) {
    if (sc.tls != route::tls_policy::partner) continue;
    tls::client_options o;
    o.policy = tls::verify_policy::verified;
    o.ca_file = sc.tls_ca;
    std::string error;
    if (!tls::context::make_client(o, error)) out.push_back(where(file, sc.line) + "send connector " + sc.name + ": " + error);
  }
}

}  // namespace

// Every problem sluiced would refuse the file for at start or reload, without touching
// anything: the loader's errors (each with file:line:column), then, for a file that
// loads, the routing table's (route conflicts name their connectors, not a line) and
// the certificates' and credentials'.
std::vector<std::string> config_problems(const std::string& file, const config::load_result& loaded) {
  std::vector<std::string> out;
  if (!loaded) {
    for (const auto& e : loaded.errors) out.push_back(e.to_string());
    return out;
  }
  std::vector<std::string> route_errors;
  if (!generation::build_route_table(*loaded.value, route_errors))
    for (const auto& e : route_errors) out.push_back(file + ": " + e);
  check_resources(file, *loaded.value, out);
  return out;
}

namespace {

std::vector<std::string> problems_of(const std::string& file) { return config_problems(file, config::load_file(file)); }

void config_check(const global_options& g, const std::string& file) {
  const std::vector<std::string> problems = problems_of(file);
  if (g.json) {
    std::string list;
    for (const auto& p : problems) list += (list.empty() ? "" : ",") + json_string(p);
    fmt::print("{{\"file\":{},\"ok\":{},\"errors\":[{}]}}\n", json_string(file), problems.empty(), list);
  } else if (problems.empty()) {
    fmt::print("{}: ok\n", terminal_text(file));
  } else {
    for (const auto& p : problems) fmt::print("{}\n", terminal_text(p));
  }
  if (!problems.empty())
    throw command_error{fmt::format("{}: {} error{}", terminal_text(file), problems.size(), problems.size() == 1 ? "" : "s")};
}

}  // namespace

void add_config_commands(CLI::App& app, global_options& g) {
  auto* config = app.add_subcommand("config", "configuration files");
  config->require_subcommand(1);
  auto file = std::make_shared<std::string>();
  auto* check = config->add_subcommand(
      "check", "load and validate FILE as sluiced would (syntax, keys, values, routes, certificates, credentials); prints FILE: ok or every "
               "error with its line; needs no daemon and writes nothing");
  check->add_option("file", *file, "configuration file (TOML)")->required();
  check->callback([&g, file] { config_check(g, *file); });
}

}  // namespace sluice::ctl
