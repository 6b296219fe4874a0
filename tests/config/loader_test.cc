// loader_test.cc: TOML loading: defaults, presets, sizes, and every error's file:line:key form.
#include <criterion/criterion.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <thread>

#include "config/config.h"
#include "test_util.h"

using namespace sluice::config;
namespace route = sluice::route;
using sluice::config::test::expect_error;
using sluice::config::test::load;
using sluice::config::test::load_ok;
using sluice::config::test::scratch_dir;

namespace {

const char* minimal_connector = R"toml(
[[receive_connector]]
name = "Default"
type = "internet"
bindings = ["127.0.0.1:2525"]
)toml";

}  // namespace

Test(config_loader, shipped_config_loads_cleanly) {
  std::string path = std::string(SLUICE_SOURCE_ROOT) + "/etc/sluice.toml";
  load_result r = load_file(path);
  std::string errors = r.ok() ? "" : r.error_text();
  cr_assert(r.ok(), "etc/sluice.toml: %s", errors.c_str());
  const config& c = *r.value;
  cr_assert_eq(c.receive_connectors.size(), 2u);
  auto bindings = c.all_bindings();
  cr_assert_eq(bindings.size(), 2u);
  std::string b0 = bindings[0].to_string(), b1 = bindings[1].to_string();
  cr_assert_str_eq(b0.c_str(), "127.0.0.1:2525");
  cr_assert_str_eq(b1.c_str(), "[::1]:2525");
  // Loopback clients land on the relay connector; the internet one is the fallback.
  auto lo = *ip_address::parse("127.0.0.1");
  const receive_connector* rc = c.select_receive_connector(lo, 2525, lo);
  cr_assert(rc != nullptr && rc->name == "Loopback relay" && rc->permissions.relay);
  auto lo6 = *ip_address::parse("::1");
  rc = c.select_receive_connector(lo6, 2525, lo6);
  cr_assert(rc != nullptr && rc->name == "Loopback relay");
  rc = c.find_receive_connector("Default");
  cr_assert(rc != nullptr && rc->permissions.anonymous && !rc->permissions.relay);
  cr_assert_eq(rc->tls.starttls, starttls_mode::offered);
  cr_assert(rc->tls.is_auto());
  // Recipients come from etc/recipients.txt, resolved next to the config file. How the
  // shipped domains route is checked in tests/generation.
  cr_assert_eq(c.accepted_domains.size(), 2u);
  const accepted_domain& d = c.accepted_domains[0];
  cr_assert(d.name == "sluice.test" && d.type == route::domain_kind::authoritative && d.has_recipient_list);
  std::string recipients_file = std::filesystem::path(path).parent_path().string() + "/recipients.txt";
  cr_assert_str_eq(d.recipients_file.c_str(), recipients_file.c_str());
  cr_assert_eq(d.recipients.count("postmaster@sluice.test"), 1u);
  cr_assert_eq(d.recipients.count("alice@sluice.test"), 1u);
  cr_assert_eq(d.recipients.count("mallory@sluice.test"), 0u);
  cr_assert_eq(c.default_domain(), &d);
  const accepted_domain& relay = c.accepted_domains[1];
  cr_assert(relay.name == "*.relay.sluice.test" && relay.type == route::domain_kind::external_relay);
  const send_connector* sc = c.find_send_connector("Internet");
  cr_assert(sc != nullptr && sc->routing == route::routing_method::dns && sc->address_spaces.size() == 1);
  cr_assert(sc->address_spaces[0].domain == "*");
  cr_assert_eq(c.server.max_message_size, 36ull << 20);
  cr_assert(c.server.pickup_dir == "./var/pickup");
  cr_assert(c.server.auto_tls_dir == "./var/tls", "%s", c.server.auto_tls_dir.c_str());
}

Test(config_loader, defaults_when_keys_are_absent) {
  auto c = load_ok(minimal_connector);
  cr_assert(!c->server.hostname.empty());
  unsigned cores = std::thread::hardware_concurrency();
  cr_assert_eq(c->server.workers, cores == 0 ? 1u : cores);
  cr_assert(c->server.queue_dir == "./var/queue");
  cr_assert(c->server.log_dir == "./var/log");
  cr_assert(c->server.pickup_dir.empty());
  cr_assert_eq(c->server.pickup_interval_ms, 1000u);
  cr_assert_eq(c->server.max_message_size, 36ull << 20);
  cr_assert_eq(c->server.map_size, 8ull << 30);
  cr_assert_eq(c->server.max_received_headers, 100u);
  cr_assert_eq(c->server.max_in_flight_bytes, 512ull << 20);
  const receive_connector& rc = c->receive_connectors.at(0);
  cr_assert_eq(rc.max_message_size, 36ull << 20);
  cr_assert_eq(rc.max_recipients, 200u);
  cr_assert_eq(rc.max_connections, 1000u);
  cr_assert_eq(rc.max_connections_per_ip, 100u);
  cr_assert_eq(rc.max_errors, 10u);
  cr_assert(!rc.helo_required && !rc.protocol_log && rc.banner.empty());
  cr_assert_eq(rc.timeouts.command_s, 300u);
  cr_assert_eq(rc.timeouts.data_s, 600u);
  cr_assert_eq(rc.timeouts.connection_s, 1800u);
  cr_assert_eq(rc.remote_ranges.size(), 2u);
  cr_assert(rc.remote_ranges[0] == *ip_range::parse("0.0.0.0/0"));
  cr_assert(rc.remote_ranges[1] == *ip_range::parse("::/0"));
  cr_assert_eq(rc.auth.mechanisms.size(), 2u);
  cr_assert_eq(rc.auth.max_failures_per_ip, 5u);
  cr_assert(rc.tls.min_version == "1.2");
}

Test(config_loader, server_settings_are_read) {
  auto c = load_ok(std::string(R"toml(
[server]
hostname = "MX1.Example.COM"
workers = 3
queue_dir = "/srv/sluice/queue/"
max_message_size = "10MB"
map_size = "2G"
pickup_dir = "/srv/pickup"
pickup_interval_ms = 250
log_dir = "/srv/log"
max_received_headers = 30
)toml") + minimal_connector);
  cr_assert(c->server.hostname == "mx1.example.com");
  cr_assert_eq(c->server.workers, 3u);
  cr_assert_eq(c->server.max_message_size, 10ull << 20);
  cr_assert_eq(c->server.map_size, 2ull << 30);
  cr_assert_eq(c->server.pickup_interval_ms, 250u);
  cr_assert_eq(c->server.max_received_headers, 30u);
  cr_assert(c->server.auto_tls_dir == "/srv/sluice/tls", "%s", c->server.auto_tls_dir.c_str());
  // A connector without its own limit inherits the server's.
  cr_assert_eq(c->receive_connectors[0].max_message_size, 10ull << 20);
}

Test(config_loader, size_suffixes) {
  struct {
    const char* text;
    uint64_t bytes;
  } good[] = {{"1", 1},          {"100B", 100},         {"512K", 512ull << 10}, {"512kb", 512ull << 10},
              {"36MB", 36ull << 20}, {"36M", 36ull << 20}, {"36MiB", 36ull << 20}, {"1G", 1ull << 30},
              {"8GB", 8ull << 30},   {"2gib", 2ull << 30}, {"1T", 1ull << 40},    {"10 MB", 10ull << 20}};
  for (auto& g : good) {
    auto v = parse_size(g.text);
    cr_assert(v.has_value() && *v == g.bytes, "%s", g.text);
  }
  const char* bad[] = {"", "MB", "0", "0MB", "-1", "1.5MB", "36XB", "36 M B", "99999999999999999999",
                       "20000000000G"};
  for (const char* b : bad) cr_assert(!parse_size(b).has_value(), "'%s' must not parse", b);

  auto c = load_ok(R"toml(
[server]
max_message_size = 1048576
[[receive_connector]]
name = "A"
type = "internet"
bindings = ["127.0.0.1:25"]
max_message_size = "512K"
)toml");
  cr_assert_eq(c->server.max_message_size, 1048576u);
  cr_assert_eq(c->receive_connectors[0].max_message_size, 512u << 10);
  expect_error("[server]\nmax_message_size = \"36XB\"\n", 2, "server.max_message_size", "is not a size");
  expect_error("[server]\nmax_message_size = 0\n", 2, "server.max_message_size", "positive");
}

Test(config_loader, workers_auto_and_number) {
  auto c = load_ok(std::string("[server]\nworkers = \"auto\"\n") + minimal_connector);
  cr_assert(c->server.workers >= 1);
  expect_error("[server]\nworkers = 0\n", 2, "server.workers", "between 1 and 128");
  // Queue ids name their issuer in one byte; 128 and up belong to the pickup and others.
  expect_error("[server]\nworkers = 129\n", 2, "server.workers", "between 1 and 128");
  expect_error("[server]\nworkers = \"many\"\n", 2, "server.workers", "expected \"auto\" or an integer");
}

Test(config_loader, presets_match_exchange_usage_types) {
  auto c = load_ok(R"toml(
[[receive_connector]]
name = "internet"
type = "internet"
bindings = ["0.0.0.0:25"]
remote_ranges = ["0.0.0.0/0"]

[[receive_connector]]
name = "enterprise"
type = "enterprise"
bindings = ["0.0.0.0:25"]
remote_ranges = ["10.0.0.0/8"]

[[receive_connector]]
name = "partner"
type = "partner"
bindings = ["0.0.0.0:25"]
remote_ranges = ["192.0.2.0/24"]

[[receive_connector]]
name = "custom"
type = "custom"
bindings = ["0.0.0.0:2526"]
)toml");
  const receive_connector* rc = c->find_receive_connector("internet");
  cr_assert(rc->permissions.anonymous && !rc->permissions.relay && !rc->permissions.auth_required);
  cr_assert_eq(rc->tls.starttls, starttls_mode::offered);
  rc = c->find_receive_connector("enterprise");
  cr_assert(rc->permissions.anonymous && rc->permissions.relay);
  rc = c->find_receive_connector("partner");
  cr_assert(rc->permissions.anonymous && !rc->permissions.relay);
  cr_assert_eq(rc->tls.starttls, starttls_mode::required);
  cr_assert(rc->tls.require_client_certificate);
  rc = c->find_receive_connector("custom");
  cr_assert(!rc->permissions.anonymous && !rc->permissions.relay && !rc->permissions.auth_required &&
            !rc->permissions.relay_authenticated);
  cr_assert_eq(rc->tls.starttls, starttls_mode::off);
  cr_assert_eq(rc->max_recipients, 200u);
}

Test(config_loader, client_preset_and_overrides) {
  scratch_dir dir;
  dir.write("creds.txt", "alice:$y$j9T$abc\n");
  auto c = load_ok(R"toml(
[[receive_connector]]
name = "Client"
type = "client"
bindings = ["[::]:587"]
auth = { credentials = "creds.txt", mechanisms = ["plain"], allow_plaintext_on_loopback = true }
tls = { starttls = "offered", min_version = "1.3" }
permissions = { relay_authenticated = false }
)toml",
                   dir.path());
  const receive_connector& rc = c->receive_connectors[0];
  cr_assert(rc.permissions.auth_required, "preset kept");
  cr_assert(!rc.permissions.relay_authenticated, "override applied");
  cr_assert(!rc.permissions.anonymous);
  cr_assert_eq(rc.tls.starttls, starttls_mode::offered);
  cr_assert(rc.tls.min_version == "1.3");
  cr_assert(rc.auth.credentials == dir.path() + "/creds.txt", "%s", rc.auth.credentials.c_str());
  cr_assert_eq(rc.auth.mechanisms.size(), 1u);
  cr_assert(rc.auth.mechanisms[0] == "PLAIN");
  cr_assert(rc.auth.allow_plaintext_on_loopback);
}

Test(config_loader, client_preset_needs_credentials) {
  expect_error(R"toml(
[[receive_connector]]
name = "Client"
type = "client"
bindings = ["[::]:587"]
)toml",
               2, "receive_connector[0].auth.credentials", "auth_required");
}

Test(config_loader, tls_settings_and_sni) {
  scratch_dir dir;
  dir.write("cert.pem", "x");
  dir.write("key.pem", "x");
  dir.write("ca.pem", "x");
  auto c = load_ok(R"toml(
[[receive_connector]]
name = "TLS"
type = "partner"
bindings = ["0.0.0.0:25"]
[receive_connector.tls]
certificate = "cert.pem"
key = "key.pem"
client_ca = "ca.pem"
ciphers = "HIGH:!aNULL"
sni = [{ name = "Mail.Other.Example", certificate = "cert.pem", key = "key.pem" },
       { name = "*.third.example", certificate = "auto", key = "auto" }]
)toml",
                   dir.path());
  const tls_settings& tls = c->receive_connectors[0].tls;
  cr_assert(tls.certificate == dir.path() + "/cert.pem");
  cr_assert(tls.key == dir.path() + "/key.pem");
  cr_assert(tls.client_ca == dir.path() + "/ca.pem");
  cr_assert(tls.ciphers == "HIGH:!aNULL");
  cr_assert_eq(tls.sni.size(), 2u);
  cr_assert(tls.sni[0].name == "mail.other.example");
  cr_assert(tls.sni[1].certificate == "auto");
}

Test(config_loader, tls_errors) {
  expect_error(R"toml(
[[receive_connector]]
name = "T"
type = "internet"
bindings = ["0.0.0.0:25"]
tls = { certificate = "missing.pem", key = "auto" }
)toml",
               6, "receive_connector[0].tls.certificate", "does not exist");
  scratch_dir dir;
  dir.write("cert.pem", "x");
  expect_error(R"toml(
[[receive_connector]]
name = "T"
type = "internet"
bindings = ["0.0.0.0:25"]
tls = { certificate = "cert.pem" }
)toml",
               6, "receive_connector[0].tls.key", "both be \"auto\" or both be files", dir.path());
  expect_error(R"toml(
[[receive_connector]]
name = "T"
type = "internet"
bindings = ["0.0.0.0:25"]
tls = { min_version = 1.2 }
)toml",
               6, "receive_connector[0].tls.min_version", "as a string");
  expect_error(R"toml(
[[receive_connector]]
name = "T"
type = "custom"
bindings = ["0.0.0.0:25"]
tls = { require_client_certificate = true }
)toml",
               6, "receive_connector[0].tls.require_client_certificate", "needs TLS");
  expect_error(R"toml(
[[receive_connector]]
name = "T"
type = "internet"
bindings = ["0.0.0.0:25"]
tls = { sni = [{ name = "a.example", certificate = "auto" }] }
)toml",
               6, "receive_connector[0].tls.sni[0].key", "is required");
}

// ---- error messages: file:line:column: key: message ----------------------------------

Test(config_errors, message_format) {
  config_error e{"etc/sluice.toml", 12, 5, "receive_connector[1].bindings", "'1.2.3.4:99999' is not a valid IP:port"};
  std::string text = e.to_string();
  cr_assert_str_eq(text.c_str(),
                   "etc/sluice.toml:12:5: receive_connector[1].bindings: '1.2.3.4:99999' is not a valid IP:port");
  config_error no_pos{"x.toml", 0, 0, "", "cannot read: No such file or directory"};
  text = no_pos.to_string();
  cr_assert_str_eq(text.c_str(), "x.toml: cannot read: No such file or directory");
}

Test(config_errors, bad_binding_points_at_the_element) {
  config_error e = expect_error(R"toml(
[[receive_connector]]
name = "A"
type = "internet"
bindings = ["127.0.0.1:25"]

[[receive_connector]]
name = "B"
type = "internet"
bindings = ["127.0.0.1:2525",
    "1.2.3.4:99999"]
)toml",
                                11, "receive_connector[1].bindings", "'1.2.3.4:99999' is not a valid IP:port");
  cr_assert_eq(e.column, 5);
  std::string text = e.to_string();
  cr_assert_str_eq(text.c_str(),
                   "test.toml:11:5: receive_connector[1].bindings: '1.2.3.4:99999' is not a valid IP:port");
}

Test(config_errors, wrong_type) {
  expect_error("[server]\nqueue_dir = 5\n", 2, "server.queue_dir", "expected a string, got an integer");
  expect_error(R"toml(
[[receive_connector]]
name = "A"
type = "internet"
bindings = ["127.0.0.1:25"]
max_recipients = "lots"
)toml",
               6, "receive_connector[0].max_recipients", "expected an integer, got a string");
  expect_error(R"toml(
[[receive_connector]]
name = "A"
type = "internet"
bindings = "127.0.0.1:25"
)toml",
               5, "receive_connector[0].bindings", "expected an array, got a string");
  expect_error(R"toml(
[[receive_connector]]
name = "A"
type = "internet"
bindings = ["127.0.0.1:25"]
helo_required = "yes"
)toml",
               6, "receive_connector[0].helo_required", "expected a boolean");
  expect_error("[receive_connector]\nname = \"A\"\n", 1, "receive_connector", "write [[receive_connector]]");
}

Test(config_errors, unknown_keys_are_errors_with_suggestions) {
  expect_error("[server]\nqueue_dri = \"x\"\n", 2, "server.queue_dri", "did you mean 'queue_dir'");
  expect_error(R"toml(
[[receive_connector]]
name = "A"
type = "internet"
bindngs = ["127.0.0.1:25"]
)toml",
               5, "receive_connector[0].bindngs", "did you mean 'bindings'");
  expect_error(R"toml(
[[receive_connector]]
name = "A"
type = "internet"
bindings = ["127.0.0.1:25"]
permissions = { anonymous = true, rely = true }
)toml",
               6, "receive_connector[0].permissions.rely", "unknown key");
  expect_error("[[receive_connectors]]\nname = \"A\"\n", 1, "receive_connectors", "did you mean 'receive_connector'");
  expect_error("[frobnicate]\n", 1, "frobnicate", "unknown key");
  // max_message_size is a connector key too, so it is known there; workers is not.
  expect_error(R"toml(
[[receive_connector]]
name = "A"
type = "internet"
bindings = ["127.0.0.1:25"]
workers = 4
)toml",
               6, "receive_connector[0].workers", "must be under [server]");
  expect_error("hostname = \"mx.example.com\"\n", 1, "hostname", "must be under [server]");
}

Test(config_errors, bad_enum_value) {
  expect_error(R"toml(
[[receive_connector]]
name = "A"
type = "intranet"
bindings = ["127.0.0.1:25"]
)toml",
               4, "receive_connector[0].type", "'intranet' is not one of \"internet\", \"enterprise\"");
  expect_error(R"toml(
[[accepted_domain]]
name = "example.com"
type = "authoritive"
)toml",
               4, "accepted_domain[0].type", "is not one of");
  expect_error(R"toml(
[[receive_connector]]
name = "A"
type = "internet"
bindings = ["127.0.0.1:25"]
tls = { starttls = "yes" }
)toml",
               6, "receive_connector[0].tls.starttls", "'yes' is not one of \"off\", \"offered\", \"required\"");
}

Test(config_errors, bad_ip_range) {
  expect_error(R"toml(
[[receive_connector]]
name = "A"
type = "internet"
bindings = ["127.0.0.1:25"]
remote_ranges = ["10.0.0.0/8", "10.0.0.300"]
)toml",
               6, "receive_connector[0].remote_ranges", "'10.0.0.300' is not a valid IP range");
  expect_error(R"toml(
[[receive_connector]]
name = "A"
type = "internet"
bindings = ["127.0.0.1:25"]
remote_ranges = ["10.0.0.5/8"]
)toml",
               6, "receive_connector[0].remote_ranges", "did you mean 10.0.0.0/8");
}

Test(config_errors, missing_recipients_file_is_named) {
  scratch_dir dir;
  config_error e = expect_error(R"toml(
[[accepted_domain]]
name = "example.com"
recipients = "nope.txt"
)toml",
                                4, "accepted_domain[0].recipients", "nope.txt", dir.path());
  cr_assert(e.message.find(dir.path() + "/nope.txt") != std::string::npos, "%s", e.message.c_str());
  cr_assert(e.message.find("No such file") != std::string::npos, "%s", e.message.c_str());
}

Test(config_errors, bad_line_in_recipients_file_names_that_file) {
  scratch_dir dir;
  std::string file = dir.write("users.txt", "alice@example.com\n# comment\n\nbob\n");
  load_result r = load("[[accepted_domain]]\nname = \"example.com\"\nrecipients = \"users.txt\"\n", dir.path());
  cr_assert(!r.ok());
  cr_assert(r.error().file == file, "%s", r.error().file.c_str());
  cr_assert_eq(r.error().line, 4);
  cr_assert(r.error().key == "accepted_domain[0].recipients");
  cr_assert(r.error().message.find("'bob' is not an e-mail address") != std::string::npos);
}

Test(config_errors, duplicate_connector_names) {
  expect_error(R"toml(
[[receive_connector]]
name = "Default"
type = "internet"
bindings = ["127.0.0.1:25"]

[[receive_connector]]
name = "default"
type = "internet"
bindings = ["127.0.0.1:26"]
)toml",
               8, "receive_connector[1].name",
               "duplicate receive connector name 'default' (also receive_connector[0] at line 2)");
  expect_error(R"toml(
[[send_connector]]
name = "Out"
address_spaces = ["*"]

[[send_connector]]
name = "Out"
address_spaces = ["example.com"]
)toml",
               7, "send_connector[1].name", "duplicate send connector name 'Out'");
}

Test(config_errors, duplicate_binding_and_range_names_both_connectors) {
  config_error e = expect_error(R"toml(
[[receive_connector]]
name = "Internet"
type = "internet"
bindings = ["0.0.0.0:25"]
remote_ranges = ["10.0.0.0/8"]

[[receive_connector]]
name = "Internal"
type = "enterprise"
bindings = ["127.0.0.1:25", "0.0.0.0:25"]
remote_ranges = ["192.168.0.0/16", "10.0.0.0-10.255.255.255"]
)toml",
                                12, "receive_connector[1].remote_ranges", "both use binding 0.0.0.0:25");
  cr_assert(e.message.find("'Internal'") != std::string::npos, "%s", e.message.c_str());
  cr_assert(e.message.find("'Internet'") != std::string::npos, "%s", e.message.c_str());
  cr_assert(e.message.find("10.0.0.0/8") != std::string::npos, "%s", e.message.c_str());
  // Same range on different bindings, or different ranges on one binding: both fine.
  load_ok(R"toml(
[[receive_connector]]
name = "A"
type = "internet"
bindings = ["0.0.0.0:25"]
[[receive_connector]]
name = "B"
type = "internet"
bindings = ["0.0.0.0:587"]
[[receive_connector]]
name = "C"
type = "enterprise"
bindings = ["0.0.0.0:25"]
remote_ranges = ["10.0.0.0/8"]
)toml");
}

Test(config_errors, missing_smart_hosts) {
  expect_error(R"toml(
[[send_connector]]
name = "Relay"
address_spaces = ["*"]
routing = "smarthost"
)toml",
               5, "send_connector[0].smart_hosts", "is required when routing = \"smarthost\"");
  expect_error(R"toml(
[[send_connector]]
name = "Relay"
address_spaces = ["*"]
smart_hosts = ["relay.example.com"]
)toml",
               5, "send_connector[0].smart_hosts", "only used with routing = \"smarthost\"");
  expect_error(R"toml(
[[send_connector]]
name = "Relay"
address_spaces = ["*"]
routing = "smarthost"
smart_hosts = ["relay.example.com:99999"]
)toml",
               6, "send_connector[0].smart_hosts", "is not a valid host or host:port");
}

Test(config_errors, missing_required_keys) {
  expect_error("[[receive_connector]]\ntype = \"internet\"\nbindings = [\"127.0.0.1:25\"]\n", 1,
               "receive_connector[0].name", "is required");
  expect_error("[[receive_connector]]\nname = \"A\"\nbindings = [\"127.0.0.1:25\"]\n", 1,
               "receive_connector[0].type", "is required");
  expect_error("[[receive_connector]]\nname = \"A\"\ntype = \"internet\"\n", 1, "receive_connector[0].bindings",
               "is required");
  expect_error("[[send_connector]]\nname = \"A\"\n", 1, "send_connector[0].address_spaces", "is required");
  expect_error("[[accepted_domain]]\ntype = \"authoritative\"\n", 1, "accepted_domain[0].name", "is required");
}

Test(config_errors, out_of_range_numbers) {
  expect_error(R"toml(
[[receive_connector]]
name = "A"
type = "internet"
bindings = ["127.0.0.1:25"]
max_recipients = 0
)toml",
               6, "receive_connector[0].max_recipients", "between 1 and");
  expect_error(R"toml(
[[receive_connector]]
name = "A"
type = "internet"
bindings = ["127.0.0.1:25"]
timeouts = { command_s = -5 }
)toml",
               6, "receive_connector[0].timeouts.command_s", "between 1 and 86400");
  expect_error(R"toml(
[[send_connector]]
name = "Out"
address_spaces = [{ domain = "*", cost = 101 }]
)toml",
               4, "send_connector[0].address_spaces[0].cost", "between 1 and 100");
}

Test(config_errors, contradictory_permissions) {
  expect_error(R"toml(
[[receive_connector]]
name = "A"
type = "internet"
bindings = ["127.0.0.1:25"]
permissions = { anonymous = true, auth_required = true }
)toml",
               6, "receive_connector[0].permissions", "cannot both be true");
}

Test(config_errors, banner_must_be_one_printable_line) {
  expect_error(R"toml(
[[receive_connector]]
name = "A"
type = "internet"
bindings = ["127.0.0.1:25"]
banner = "hello\r\n250 injected"
)toml",
               6, "receive_connector[0].banner", "printable ASCII");
}

Test(config_errors, toml_syntax_error_has_position) {
  load_result r = load("[server]\nhostname = \"unterminated\n");
  cr_assert(!r.ok());
  cr_assert_eq(r.error().line, 2);
  cr_assert(r.error().column > 0);
  cr_assert(r.error().file == "test.toml");
  cr_assert(r.error().key.empty());
}

Test(config_errors, several_errors_reported_in_file_order) {
  load_result r = load(R"toml(
[[receive_connector]]
name = "A"
type = "nope"
bindings = ["bad"]

[server]
workers = -1
)toml");
  cr_assert(!r.ok());
  cr_assert_eq(r.errors.size(), 3u, "%s", r.error_text().c_str());
  cr_assert_eq(r.errors[0].line, 4);
  cr_assert_eq(r.errors[1].line, 5);
  cr_assert_eq(r.errors[2].line, 8);
}

Test(config_errors, unreadable_file) {
  load_result r = load_file("/nonexistent/sluice.toml");
  cr_assert(!r.ok());
  std::string text = r.error_text();
  cr_assert_str_eq(text.c_str(), "/nonexistent/sluice.toml: cannot read: No such file or directory");
  r = load_file("/tmp");
  cr_assert(!r.ok());
  cr_assert(r.error().message.find("is a directory") != std::string::npos);
}

// ---- send connectors -----------------------------------------------------------------

Test(config_send, address_spaces_smart_hosts_and_defaults) {
  auto c = load_ok(R"toml(
[[send_connector]]
name = "Partners"
address_spaces = ["Contoso.com;5", "*.contoso.com", { domain = "fabrikam.com", cost = 3 }]
routing = "smarthost"
smart_hosts = ["relay1.example.com", "relay2.example.com:2525", "[192.0.2.1]:26", "[2001:db8::1]:27"]
port = 587
tls = "mandatory"
source_servers = ["hub1"]
enabled = false
)toml");
  const send_connector& sc = c->send_connectors.at(0);
  cr_assert(!sc.enabled);
  cr_assert_eq(sc.address_spaces.size(), 3u);
  cr_assert(sc.address_spaces[0].domain == "contoso.com" && sc.address_spaces[0].cost == 5);
  cr_assert(sc.address_spaces[1].domain == "*.contoso.com" && sc.address_spaces[1].cost == 1);
  cr_assert(sc.address_spaces[2].domain == "fabrikam.com" && sc.address_spaces[2].cost == 3);
  cr_assert_eq(sc.smart_hosts.size(), 4u);
  cr_assert(sc.smart_hosts[0].host == "relay1.example.com" && sc.smart_hosts[0].port == 587);
  cr_assert(sc.smart_hosts[1].port == 2525);
  cr_assert(sc.smart_hosts[2].host == "192.0.2.1" && sc.smart_hosts[2].port == 26);
  std::string text = sc.smart_hosts[3].to_string();
  cr_assert_str_eq(text.c_str(), "[2001:db8::1]:27");
  cr_assert_eq(sc.tls, route::tls_policy::mandatory);
  cr_assert_eq(sc.max_message_size, 36ull << 20);
  cr_assert_eq(sc.source_servers.size(), 1u);
}

Test(config_send, address_space_errors) {
  expect_error(R"toml(
[[send_connector]]
name = "Out"
address_spaces = ["example.com;0"]
)toml",
               4, "send_connector[0].address_spaces[0]", "between 1 and 100");
  expect_error(R"toml(
[[send_connector]]
name = "Out"
address_spaces = ["exa mple.com"]
)toml",
               4, "send_connector[0].address_spaces[0]", "is not a domain");
  expect_error(R"toml(
[[send_connector]]
name = "Out"
address_spaces = ["example.com", "EXAMPLE.com;4"]
)toml",
               4, "send_connector[0].address_spaces[1]", "duplicate address space");
  expect_error(R"toml(
[[send_connector]]
name = "Out"
address_spaces = ["*"]
tls = "sometimes"
)toml",
               5, "send_connector[0].tls", "is not one of");
}

// Damaged copies of the shipped file: the loader must neither crash nor report an error
// it cannot place (every problem in the main file has a line number and a message).
Test(config_loader, damaged_configs_are_always_located) {
  std::ifstream in(std::string(SLUICE_SOURCE_ROOT) + "/etc/sluice.toml");
  std::stringstream buf;
  buf << in.rdbuf();
  const std::string base = buf.str();
  cr_assert(!base.empty());
  const char* junk[] = {"\"", "[", "]", "=", "\n", "::", "-", "/", "(", ")", "{", "}", ",", "0", "99999",
                        "auto", "*", ".", "#", "[[receive_connector]]\n", "\"x\"", "true"};
  std::mt19937 rng(20261128);
  int failures = 0;
  for (int i = 0; i < 2000; ++i) {
    std::string text = base;
    for (int k = 0, n = 1 + static_cast<int>(rng() % 4); k < n; ++k) {
      size_t pos = rng() % (text.size() + 1);
      switch (rng() % 3) {
        case 0: text.insert(pos, junk[rng() % (sizeof junk / sizeof *junk)]); break;
        case 1: text.erase(pos, rng() % 8); break;
        default: text.insert(pos, text.substr(rng() % text.size(), rng() % 40)); break;
      }
    }
    load_result r = load_string(text, "damaged.toml", std::string(SLUICE_SOURCE_ROOT) + "/etc");
    if (r.ok()) continue;
    ++failures;
    for (const config_error& e : r.errors) {
      cr_assert(!e.message.empty());
      if (e.file == "damaged.toml") cr_assert(e.line > 0, "%s", e.to_string().c_str());
    }
  }
  cr_assert(failures > 100, "the damage should break the file often (%d)", failures);
}

// The memory budget for messages in flight: read as a size, at least the largest message
// (a smaller one would refuse that message with 452 forever), raised with it when unset.
Test(config_loader, max_in_flight_bytes) {
  auto c = load_ok(std::string("[server]\nmax_in_flight_bytes = \"64MB\"\n") + minimal_connector);
  cr_assert_eq(c->server.max_in_flight_bytes, 64ull << 20);
  c = load_ok(std::string("[server]\nmax_message_size = \"1GB\"\n") + minimal_connector);
  cr_assert_eq(c->server.max_in_flight_bytes, 1ull << 30);
  expect_error("[server]\nmax_message_size = \"36MB\"\nmax_in_flight_bytes = \"16MB\"\n", 3,
               "server.max_in_flight_bytes", "must be at least max_message_size");
  expect_error("[server]\nmax_in_flight_bytes = 0\n", 2, "server.max_in_flight_bytes", "positive number of bytes");
}
