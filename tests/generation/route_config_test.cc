// route_config_test.cc: the config → route table adapter gives the decisions the config describes.
#include <criterion/criterion.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "config/config.h"
#include "generation/route_config.h"

using namespace sluice;

namespace {

// A scratch directory for the recipients file, removed at the end of the test.
struct scratch {
  std::string path;
  scratch() {
    char tmpl[] = "/tmp/sluice-admin-test-XXXXXX";
    char* p = mkdtemp(tmpl);
    cr_assert(p != nullptr);
    path = p;
  }
  ~scratch() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
};

const char* const k_config = R"(
[server]
hostname = "mx1.contoso.com"
queue_dir = "/tmp/unused/queue"
max_message_size = "10MB"

[[accepted_domain]]
name = "contoso.com"
type = "authoritative"
recipients = "recipients.txt"

[[accepted_domain]]
name = "open.test"
type = "authoritative"

[[accepted_domain]]
name = "partner.test"
type = "internal_relay"

[[send_connector]]
name = "Internet"
address_spaces = ["*"]
tls = "opportunistic"

[[send_connector]]
name = "Fabrikam"
address_spaces = [{ domain = "*.fabrikam.com", cost = 5 }, "fabrikam.com;5"]
routing = "smarthost"
smart_hosts = ["relay.fabrikam.com:2525"]
max_message_size = "1MB"
tls = "mandatory"

[[send_connector]]
name = "Fabrikam-backup"
address_spaces = ["fabrikam.com;10"]
routing = "smarthost"
smart_hosts = ["backup.fabrikam.com"]

[[send_connector]]
name = "Elsewhere"
address_spaces = ["woodgrove.test"]
source_servers = ["mx9.contoso.com"]
)";

// The table built from a configuration that must load and convert without errors.
std::shared_ptr<const route::table> table_of(const config::load_result& loaded) {
  if (!loaded.ok()) cr_assert_fail("config: %s", loaded.error_text().c_str());
  std::vector<std::string> errors;
  auto t = generation::build_route_table(*loaded.value, errors);
  cr_assert(errors.empty(), "unexpected error: %s", errors.empty() ? "" : errors.front().c_str());
  cr_assert(t != nullptr);
  return t;
}

std::shared_ptr<const route::table> build(const scratch& dir) {
  {
    std::ofstream out(dir.path + "/recipients.txt");
    out << "Alice@Contoso.com\nbob@contoso.com\n";
  }
  return table_of(config::load_string(k_config, "test.toml", dir.path));
}

}  // namespace

Test(admin_route_config, recipient_list_becomes_authoritative_table) {
  scratch dir;
  auto t = build(dir);
  auto d = t->route_recipient("ALICE@contoso.com", 100, 0);
  cr_assert_eq(d.result, route::outcome::local_delivery);
  cr_assert_eq(d.hop.kind, route::hop_kind::local);
  d = t->route_recipient("carol@contoso.com", 100, 0);
  cr_assert_eq(d.result, route::outcome::unknown_recipient);
  // No recipients key: every address exists.
  d = t->route_recipient("anyone@open.test", 100, 0);
  cr_assert_eq(d.result, route::outcome::local_delivery);
  // Internal relay without a list: nobody is here, everything is relayed.
  d = t->route_recipient("x@partner.test", 100, 0);
  cr_assert_eq(d.result, route::outcome::relay_internal);
  cr_assert(d.connector != nullptr);
  cr_assert_str_eq(d.connector->name.c_str(), "Internet");
}

Test(admin_route_config, address_spaces_costs_and_smart_hosts_carry_over) {
  scratch dir;
  auto t = build(dir);
  auto d = t->route_recipient("u@fabrikam.com", 100, 0);
  cr_assert_eq(d.result, route::outcome::remote);
  cr_assert_str_eq(d.connector->name.c_str(), "Fabrikam", "cost 5 beats cost 10");
  cr_assert_eq(d.cost, 5u);
  cr_assert_eq(d.hop.kind, route::hop_kind::smart_host);
  cr_assert_eq(d.connector->smart_hosts.size(), 1u);
  cr_assert_eq(d.connector->smart_hosts[0].port, 2525);
  cr_assert_eq(d.tls, route::tls_policy::mandatory);
  std::string key = t->hop_key(d.hop);
  cr_assert_str_eq(key.c_str(), "smarthost:Fabrikam");

  d = t->route_recipient("u@eu.fabrikam.com", 100, 0);
  cr_assert_str_eq(d.connector->name.c_str(), "Fabrikam");
  d = t->route_recipient("u@example.org", 100, 0);
  cr_assert_str_eq(d.connector->name.c_str(), "Internet");
  cr_assert_eq(d.hop.kind, route::hop_kind::dns);
}

Test(admin_route_config, size_limits_come_from_server_and_connector) {
  scratch dir;
  auto t = build(dir);
  cr_assert_eq(t->size_limits().organisation_max_size, 10ull << 20);
  auto d = t->route_recipient("u@fabrikam.com", 2ull << 20, 0);
  cr_assert_eq(d.result, route::outcome::too_big);
  cr_assert_eq(d.size_limit, 1ull << 20);
  cr_assert_eq(d.size_limit_from, route::limit_source::send_connector);
  // The Internet connector inherits the server's limit from the loader.
  d = t->route_recipient("u@example.org", 11ull << 20, 0);
  cr_assert_eq(d.result, route::outcome::too_big);
  cr_assert_eq(d.size_limit, 10ull << 20);
}

Test(admin_route_config, source_servers_use_the_server_hostname) {
  scratch dir;
  auto t = build(dir);
  // Elsewhere may only be used by mx9; we are mx1, so the "*" connector wins.
  auto d = t->route_recipient("u@woodgrove.test", 100, 0);
  cr_assert_eq(d.result, route::outcome::remote);
  cr_assert_str_eq(d.connector->name.c_str(), "Internet");
}

Test(admin_route_config, disabled_connector_is_kept_but_skipped) {
  scratch dir;
  auto loaded = config::load_string(
      "[server]\nqueue_dir = \"/tmp/q\"\n"
      "[[send_connector]]\nname = \"Off\"\nenabled = false\naddress_spaces = [\"*\"]\n",
      "test.toml", dir.path);
  if (!loaded.ok()) cr_assert_fail("config: %s", loaded.error_text().c_str());
  std::vector<std::string> errors;
  auto t = generation::build_route_table(*loaded.value, errors);
  cr_assert(t != nullptr);
  cr_assert_eq(t->send_connectors().size(), 1u);
  cr_assert(!t->send_connectors()[0].enabled);
  auto d = t->route_recipient("u@example.org", 100, 0);
  cr_assert_eq(d.result, route::outcome::no_route);
}

// The shipped configuration routes as its comments say.
Test(admin_route_config, shipped_config_routes_its_domains) {
  auto t = table_of(config::load_file(std::string(SLUICE_SOURCE_ROOT) + "/etc/sluice.toml"));
  cr_assert_eq(t->route_recipient("postmaster@sluice.test", 100, 0).result, route::outcome::local_delivery);
  cr_assert_eq(t->route_recipient("Alice@Sluice.Test", 100, 0).result, route::outcome::local_delivery);
  cr_assert_eq(t->route_recipient("mallory@sluice.test", 100, 0).result, route::outcome::unknown_recipient);
  auto d = t->route_recipient("x@mx.relay.sluice.test", 100, 0);
  cr_assert_eq(d.result, route::outcome::relay_external);
  cr_assert(d.domain != nullptr && d.domain->name == "*.relay.sluice.test");
  cr_assert(!d.needs_relay_permission());
  // The wildcard covers subdomains only; the bare name belongs to nobody.
  cr_assert(t->route_recipient("x@relay.sluice.test", 100, 0).domain == nullptr);
}

Test(admin_route_config, wildcard_domain_recipients_file_reaches_the_table) {
  scratch dir;
  {
    std::ofstream out(dir.path + "/users.txt");
    out << "a@sub.example.com\nB@Deep.Sub.Example.com\n";
  }
  auto t = table_of(config::load_string(
      "[[accepted_domain]]\nname = \"*.example.com\"\nrecipients = \"users.txt\"\n", "test.toml", dir.path));
  cr_assert_eq(t->route_recipient("b@deep.sub.example.com", 100, 0).result, route::outcome::local_delivery);
  cr_assert_eq(t->route_recipient("b@DEEP.sub.example.com", 100, 0).result, route::outcome::local_delivery);
  cr_assert_eq(t->route_recipient("A@Sub.Example.Com", 100, 0).result, route::outcome::local_delivery);
  cr_assert_eq(t->route_recipient("a@deep.sub.example.com", 100, 0).result, route::outcome::unknown_recipient);
  cr_assert_eq(t->route_recipient("b@example.com", 100, 0).result, route::outcome::no_route);
}
