// reload_test.cc: after SIGHUP the RCPT answer, the categorizer's route and sluicectl all come from the new generation.
#include <criterion/criterion.h>
#include <signal.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <string>

#include "assertions.h"
#include "harness.h"

using namespace sluice::testing;

namespace {

// The default test config, with a smart host for everything else (a port nobody answers,
// so nothing leaves the queues while the test looks at them).
std::string base_config() {
  return sluiced_process::default_config() + R"(
[[send_connector]]
name = "Outbound"
address_spaces = ["*"]
routing = "smarthost"
smart_hosts = ["127.0.0.1:)" + std::to_string(free_port()) + R"("]
)";
}

// What the reload adds: a domain the Internet connector now accepts without relay
// permission, and its own next hop.
std::string reloaded_config(const std::string& base) {
  return base + R"(
[[accepted_domain]]
name = "newdomain.test"
type = "internal_relay"

[[send_connector]]
name = "Newhop"
address_spaces = ["newdomain.test"]
routing = "smarthost"
smart_hosts = ["127.0.0.1:)" + std::to_string(free_port()) + R"("]
)";
}

std::string rcpt_reply(const sluiced_process& d, const std::string& address) {
  smtp_client c(d.port());
  if (code_of(c.start_transaction()) != 250) return "";
  std::string reply = c.cmd("RCPT TO:<" + address + ">");
  c.cmd("QUIT");
  return reply;
}

std::string file_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace

Test(integration_reload, rcpt_and_categorizer_switch_to_the_new_generation_together, .timeout = 60) {
  sluiced_process d;
  const std::string base = base_config();
  d.write_config(base);
  START(d);
  // Not an accepted domain yet: the Internet connector may not relay to it.
  std::string reply = rcpt_reply(d, "carol@newdomain.test");
  cr_assert(reply.rfind("550 5.7.54", 0) == 0, "%s", reply.c_str());

  d.write_config(reloaded_config(base));
  d.signal(SIGHUP);
  for (int i = 0; i < 100 && code_of(reply) != 250; ++i) {
    usleep(50'000);
    reply = rcpt_reply(d, "carol@newdomain.test");
  }
  EXPECT_CODE(reply, 250);
  cr_assert(d.log().find("configuration reloaded") != std::string::npos, "%s", d.log().c_str());

  std::string id;
  {
    smtp_client c(d.port());
    EXPECT_CODE(c.start_transaction(), 250);
    EXPECT_CODE(c.cmd("RCPT TO:<carol@newdomain.test>"), 250);
    EXPECT_CODE(c.cmd("DATA"), 354);
    std::string queued = c.cmd("Subject: reloaded\r\n\r\nrouted by the new generation\r\n.");
    EXPECT_CODE(queued, 250);
    id = queue_id_of(queued);
    c.cmd("QUIT");
  }
  cr_assert(!id.empty());

  // The categorizer routed it with the same table: to the new connector, not to "*".
  const std::string route_line = ",ROUTE,\"" + id + "\",\"sender@example.org\",\"carol@newdomain.test\",\"smarthost:Newhop\",";
  std::string tracking;
  command_result queues;
  for (int i = 0; i < 100; ++i) {
    tracking = file_text(d.dir() + "/log/tracking.csv");
    queues = d.ctl("queue list");
    if (tracking.find(route_line) != std::string::npos && queues.output.find("smarthost:Newhop") != std::string::npos)
      break;
    usleep(50'000);
  }
  cr_assert(tracking.find(route_line) != std::string::npos, "no %s in:\n%s", route_line.c_str(), tracking.c_str());
  cr_assert(tracking.find("\"" + id + "\",\"sender@example.org\",\"carol@newdomain.test\",\"smarthost:Outbound\"") ==
                std::string::npos,
            "%s", tracking.c_str());
  EXPECT_HAS(queues, "smarthost:Newhop");
  // The admin socket answers from the same generation.
  EXPECT_HAS(d.ctl("route test carol@newdomain.test"), "send connector: Newhop");
  d.stop();
}

Test(integration_reload, a_reload_that_cannot_build_keeps_the_running_generation, .timeout = 60) {
  sluiced_process d;
  const std::string base = base_config();
  d.write_config(base);
  START(d);
  // A credentials file that exists but holds no valid entry: the config loads, the
  // generation cannot be built.
  d.write_file("creds.txt", "carol without a hash\n");
  d.write_config(reloaded_config(base) + R"(
[[receive_connector]]
name = "Submission"
type = "custom"
bindings = ["127.0.0.1:)" + std::to_string(free_port()) + R"("]
auth = { credentials = "creds.txt", mechanisms = ["plain"] }
)");
  d.signal(SIGHUP);
  for (int i = 0; i < 100 && d.log().find("reload failed") == std::string::npos; ++i) usleep(50'000);
  const std::string log = d.log();
  cr_assert(log.find("sluiced: reload failed, configuration unchanged: receive connector Submission: AUTH: ") !=
                std::string::npos,
            "%s", log.c_str());
  cr_assert(log.find("configuration reloaded") == std::string::npos, "%s", log.c_str());
  // Neither half of the failed generation is in force.
  std::string reply = rcpt_reply(d, "carol@newdomain.test");
  cr_assert(reply.rfind("550 5.7.54", 0) == 0, "%s", reply.c_str());
  EXPECT_HAS(d.ctl("route test carol@newdomain.test"), "send connector: Outbound");
  d.stop();
}
