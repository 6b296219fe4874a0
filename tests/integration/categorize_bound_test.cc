// categorize_bound_test.cc: send connector names too long for a next-hop key are refused at check and at reload.
#include <criterion/criterion.h>
#include <signal.h>
#include <unistd.h>

#include <string>

#include "assertions.h"
#include "harness.h"

using namespace sluice::testing;

namespace {

// A DNS connector whose name leaves no room for a long recipient domain in its hop key
// ("dns:<name>:<domain>" over the store's 480 bytes), on line 2 of the appended text.
std::string long_connector(const std::string& name_prefix) {
  return "\n[[send_connector]]\nname = \"" + name_prefix + std::string(300 - name_prefix.size(), 'x') +
         "\"\naddress_spaces = [\"far.example\"]\nrouting = \"dns\"\n";
}

int line_count(const std::string& text) {
  int n = 0;
  for (char c : text) n += c == '\n';
  return n;
}

}  // namespace

// Before: accepted, and every message routed to far.example failed in the store's
// categorize transaction once a second, for ever.
Test(integration_categorize_bound, check_config_refuses_a_connector_name_too_long_for_its_hop_key) {
  sluiced_process d;
  const std::string base = sluiced_process::default_config();
  d.write_config(base + long_connector("Far"));
  auto r = run(sluiced_path() + " --config " + d.dir() + "/sluice.toml --check-config");
  cr_assert_eq(r.status, 78, "%s", r.output.c_str());
  const std::string where = d.dir() + "/sluice.toml:" + std::to_string(line_count(base) + 3) + ":8: send_connector[0].name: ";
  cr_assert(r.output.find(where + "is 300 bytes long: its next-hop key") != std::string::npos, "expected '%s' in %s",
            where.c_str(), r.output.c_str());
  cr_assert(r.output.find("must fit in 480 bytes") != std::string::npos, "%s", r.output.c_str());
}

Test(integration_categorize_bound, a_reload_with_such_a_name_keeps_the_running_configuration, .timeout = 60) {
  sluiced_process d;
  const std::string base = sluiced_process::default_config() + R"(
[[send_connector]]
name = "Outbound"
address_spaces = ["*"]
routing = "smarthost"
smart_hosts = ["127.0.0.1:)" + std::to_string(free_port()) + R"("]
)";
  d.write_config(base);
  START(d);
  EXPECT_HAS(d.ctl("route test y@far.example"), "send connector: Outbound");

  d.write_config(base + long_connector("Far"));
  d.signal(SIGHUP);
  for (int i = 0; i < 100 && d.log().find("reload failed") == std::string::npos; ++i) usleep(50'000);
  const std::string log = d.log();
  cr_assert(log.find("sluiced: reload failed, configuration unchanged") != std::string::npos, "%s", log.c_str());
  cr_assert(log.find("send_connector[1].name: is 300 bytes long") != std::string::npos, "%s", log.c_str());
  cr_assert(log.find("configuration reloaded") == std::string::npos, "%s", log.c_str());
  // Still the old table: far.example goes through Outbound, and mail to it is categorized.
  EXPECT_HAS(d.ctl("route test y@far.example"), "send connector: Outbound");
  {
    smtp_client c(d.port(), "127.0.0.2");
    EXPECT_CODE(c.start_transaction(), 250);
    EXPECT_CODE(c.cmd("RCPT TO:<y@far.example>"), 250);
    EXPECT_CODE(c.cmd("DATA"), 354);
    EXPECT_CODE(c.cmd("Subject: after the refused reload\r\n\r\nstill routed\r\n."), 250);
    c.cmd("QUIT");
  }
  command_result queues;
  for (int i = 0; i < 100; ++i) {
    queues = d.ctl("queue list");
    if (queues.output.find("0 awaiting categorization") != std::string::npos &&
        queues.output.find("smarthost:Outbound") != std::string::npos)
      break;
    usleep(50'000);
  }
  EXPECT_HAS(queues, "0 awaiting categorization");
  EXPECT_HAS(queues, "smarthost:Outbound");
  d.stop();
}
