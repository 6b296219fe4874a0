// admin_test.cc: `sluicectl route test` against a running sluiced over its admin socket.
#include <criterion/criterion.h>
#include <signal.h>
#include <unistd.h>

#include <string>

#include "assertions.h"
#include "harness.h"

using namespace sluice::testing;

namespace {

// The default daemon plus send connectors that exercise every way a route is chosen.
// The server limit is 1M (default_config); Fabrikam has its own, lower one.
std::string routing_config() {
  return sluiced_process::default_config() + R"(
[[send_connector]]
name = "Internet"
address_spaces = ["*;10"]

[[send_connector]]
name = "Fabrikam"
address_spaces = ["*.fabrikam.test;5"]
routing = "smarthost"
smart_hosts = ["relay.fabrikam.test:2525"]
max_message_size = "64K"
tls = "mandatory"

[[send_connector]]
name = "Woodgrove-A"
address_spaces = ["woodgrove.test;5"]

[[send_connector]]
name = "Woodgrove-B"
address_spaces = ["woodgrove.test;3"]

[[send_connector]]
name = "Woodgrove-C"
address_spaces = ["woodgrove.test;3"]

[[send_connector]]
name = "Contoso-Old"
enabled = false
address_spaces = ["contoso.test;1"]

[[send_connector]]
name = "Contoso"
address_spaces = ["contoso.test;50"]
)";
}

command_result route_test(const sluiced_process& d, const std::string& args) { return d.ctl("route test " + args); }

}  // namespace

Test(integration_admin, authoritative_local_recipient) {
  sluiced_process d;
  d.write_config(routing_config());
  START(d);
  auto r = route_test(d, "alice@sluice.test");
  cr_assert_eq(r.status, 0, "%s", r.output.c_str());
  EXPECT_HAS(r, "accepted domain: sluice.test (authoritative)");
  EXPECT_HAS(r, "recipient: in the recipient table, delivered here");
  EXPECT_HAS(r, "send connectors: not consulted");
  EXPECT_HAS(r, "outcome: local_delivery via local:sluice.test");
}

Test(integration_admin, unknown_local_recipient) {
  sluiced_process d;
  d.write_config(routing_config());
  START(d);
  auto r = route_test(d, "nobody@SLUICE.test");
  cr_assert_eq(r.status, 0, "an answer, even a refusal, is a successful query: %s", r.output.c_str());
  EXPECT_HAS(r, "recipient: not in the recipient table");
  EXPECT_HAS(r, "outcome: unknown_recipient (5.1.1");
}

Test(integration_admin, wildcard_address_space_beats_star) {
  sluiced_process d;
  d.write_config(routing_config());
  START(d);
  auto r = route_test(d, "user@mail.fabrikam.test --size 1000");
  cr_assert_eq(r.status, 0, "%s", r.output.c_str());
  EXPECT_HAS(r, "accepted domain: none");
  EXPECT_HAS(r, "send connector: Fabrikam (address space *.fabrikam.test, cost 5)");
  EXPECT_HAS(r, "next hop: smart hosts relay.fabrikam.test:2525");
  EXPECT_HAS(r, "lost: connector Internet (address space *, cost 10): less specific than *.fabrikam.test");
  EXPECT_HAS(r, "size limit: 65536 (from send connector");
  EXPECT_HAS(r, "tls policy: mandatory");
  EXPECT_HAS(r, "outcome: remote via smarthost:Fabrikam");
}

Test(integration_admin, cost_then_name_break_ties) {
  sluiced_process d;
  d.write_config(routing_config());
  START(d);
  auto r = route_test(d, "someone@woodgrove.test");
  cr_assert_eq(r.status, 0, "%s", r.output.c_str());
  EXPECT_HAS(r, "send connector: Woodgrove-B (address space woodgrove.test, cost 3)");
  EXPECT_HAS(r, "lost: connector Woodgrove-A (address space woodgrove.test, cost 5): higher cost (5 > 3)");
  EXPECT_HAS(r, "lost: connector Woodgrove-C (address space woodgrove.test, cost 3): tie-break by name");
  EXPECT_HAS(r, "next hop: MX of woodgrove.test (DNS routing)");
  EXPECT_HAS(r, "outcome: remote via dns:Woodgrove-B:woodgrove.test");
}

Test(integration_admin, disabled_connector_is_skipped) {
  sluiced_process d;
  d.write_config(routing_config());
  START(d);
  auto r = route_test(d, "x@contoso.test");
  cr_assert_eq(r.status, 0, "%s", r.output.c_str());
  EXPECT_HAS(r, "send connector: Contoso (address space contoso.test, cost 50)");
  EXPECT_HAS(r, "lost: connector Contoso-Old (address space contoso.test, cost 1): disabled");
}

Test(integration_admin, over_the_send_connector_limit_is_too_big) {
  sluiced_process d;
  d.write_config(routing_config());
  START(d);
  auto r = route_test(d, "user@eu.fabrikam.test --size 100000");
  cr_assert_eq(r.status, 0, "%s", r.output.c_str());
  EXPECT_HAS(r, "size limit: 65536 (from send connector");
  EXPECT_HAS(r, "message size: 100000 exceeds the limit");
  EXPECT_HAS(r, "outcome: too_big (5.3.4");
  // The same size under the server-wide limit goes out through "*".
  r = route_test(d, "user@example.org --size 100000");
  EXPECT_HAS(r, "outcome: remote via dns:Internet:example.org");
}

Test(integration_admin, socket_found_from_config_or_given_explicitly) {
  sluiced_process d;
  d.write_config(routing_config());
  START(d);
  auto r = run(sluicectl_path() + " route test alice@sluice.test --config " + d.dir() + "/sluice.toml");
  cr_assert_eq(r.status, 0, "%s", r.output.c_str());
  EXPECT_HAS(r, "outcome: local_delivery");
  r = run(sluicectl_path() + " --json route test bob@sluice.test --socket " + d.dir() + "/admin.sock");
  cr_assert_eq(r.status, 0, "%s", r.output.c_str());
  EXPECT_HAS(r, "{\"ok\":true,\"lines\":[");
  EXPECT_HAS(r, "\"outcome: local_delivery via local:sluice.test\"");
}

Test(integration_admin, bad_arguments_are_reported) {
  sluiced_process d;
  d.write_config(routing_config());
  START(d);
  auto r = route_test(d, "user@example.org --size lots");
  cr_assert_eq(r.status, 1, "%s", r.output.c_str());
  EXPECT_HAS(r, "sluicectl: --size: 'lots' is not a size in bytes");
}

Test(integration_admin, not_running_is_a_clear_error) {
  sluiced_process d;
  d.write_config(routing_config());
  auto r = route_test(d, "alice@sluice.test");
  cr_assert_eq(r.status, 1, "%s", r.output.c_str());
  EXPECT_HAS(r, "sluicectl: sluiced is not running (no socket at " + d.dir() + "/admin.sock)");
  // A daemon that has stopped takes its socket with it.
  START(d);
  cr_assert_eq(route_test(d, "alice@sluice.test").status, 0);
  d.stop();
  r = route_test(d, "alice@sluice.test");
  cr_assert_eq(r.status, 1, "%s", r.output.c_str());
  EXPECT_HAS(r, "sluiced is not running");
}

Test(integration_admin, reload_updates_the_answer) {
  sluiced_process d;
  d.write_config(routing_config());
  START(d);
  auto r = route_test(d, "x@northwind.test");
  EXPECT_HAS(r, "send connector: Internet");
  d.write_config(routing_config() + R"(
[[send_connector]]
name = "Northwind"
address_spaces = ["northwind.test"]
)");
  d.signal(SIGHUP);
  // The reload happens on the daemon's main thread; poll until the answer changes.
  for (int i = 0; i < 100; ++i) {
    r = route_test(d, "x@northwind.test");
    if (r.output.find("send connector: Northwind") != std::string::npos) break;
    usleep(50'000);
  }
  EXPECT_HAS(r, "send connector: Northwind (address space northwind.test, cost 1)");
  r = d.ctl("route test x@northwind.test --json");
  cr_assert_eq(r.status, 0, "%s", r.output.c_str());
}
