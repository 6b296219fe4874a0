// drain_test.cc: SIGTERM drains the built sluiced: transactions and deliveries under way finish within drain_timeout, nothing new starts.
// Untrusted input: none (the daemon's replies and the test's own peers).
#include <criterion/criterion.h>
#include <signal.h>
#include <sys/wait.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <thread>

#include "assertions.h"
#include "harness.h"
#include "peers.h"

using namespace sluice::testing;
using namespace std::chrono_literals;

namespace {

// default_config() with `keys` added to its [server] table.
std::string with_server_keys(const std::string& keys) {
  std::string c = sluiced_process::default_config();
  c.insert(c.find('\n') + 1, keys);
  return c;
}

// The exit status once the daemon has ended within `limit`, or -1. The zombie is left for
// the harness to reap (WNOWAIT).
int exit_status_within(pid_t pid, std::chrono::milliseconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  for (;;) {
    siginfo_t info{};
    if (::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT) == 0 && info.si_pid == pid)
      return info.si_code == CLD_EXITED ? info.si_status : 128 + info.si_status;
    if (std::chrono::steady_clock::now() >= deadline) return -1;
    std::this_thread::sleep_for(20ms);
  }
}

// A daemon whose drain may last `seconds`, started.
void start_draining_within(sluiced_process& d, int seconds) {
  d.write_config(with_server_keys("drain_timeout = " + std::to_string(seconds) + "\n"));
  START(d);
}

// A client in the middle of DATA: greeted, one recipient, 354, the first line of content sent.
void into_data(smtp_client& c, const std::string& rcpt = "alice@sluice.test") {
  cr_assert(c.connected());
  EXPECT_CODE(c.start_transaction(), 250);
  EXPECT_CODE(c.cmd("RCPT TO:<" + rcpt + ">"), 250);
  EXPECT_CODE(c.cmd("DATA"), 354);
  c.send("Subject: under way when SIGTERM came");
}

// After SIGTERM the ports close: a connection is refused, or closed without a greeting.
bool refuses_new_connections(uint16_t port) {
  return eventually(
      [port] {
        smtp_client late(port);
        if (!late.connected()) return true;
        return late.reply(500).empty() && late.closed_by_peer(500);
      },
      3000);
}

}  // namespace

Test(integration_drain, a_message_in_data_finishes_idle_sessions_get_421_new_ones_are_refused, .timeout = 60) {
  sluiced_process d;
  start_draining_within(d, 20);
  smtp_client busy(d.port());
  into_data(busy);
  smtp_client idle(d.port());
  cr_assert_eq(code_of(idle.reply()), 220);
  EXPECT_CODE(idle.cmd("EHLO idle.example"), 250);

  d.signal(SIGTERM);
  // Between transactions: told at once, and closed.
  const std::string told = idle.reply(3000);
  cr_assert(told.starts_with("421 4.3.2 "), "idle session got: '%s'", told.c_str());
  cr_assert(idle.closed_by_peer());
  cr_assert(refuses_new_connections(d.port()), "a new connection was served after SIGTERM");
  cr_assert(d.running() && exit_status_within(d.pid(), 500ms) == -1, "exited with a transaction under way:\n%s",
            d.log().c_str());

  // The message under way is taken, acknowledged, and then the session is told.
  busy.send("");
  const std::string queued = busy.cmd("body written after the signal\r\n.");
  EXPECT_CODE(queued, 250);
  const std::string id = queue_id_of(queued);
  cr_assert(!id.empty(), "%s", queued.c_str());
  cr_assert(busy.reply(3000).starts_with("421 4.3.2 "));
  cr_assert_eq(exit_status_within(d.pid(), 10s), 0, "sluiced did not exit 0 after the drain:\n%s", d.log().c_str());
  d.stop();

  // The acknowledged message is in the queue the next start finds.
  START(d);
  const command_result list = d.ctl("queue list --json");
  cr_assert(list.output.find(id) != std::string::npos, "%s not queued after the restart:\n%s", id.c_str(),
            list.output.c_str());
  d.stop();
  cr_assert(!std::filesystem::exists(d.dir() + "/admin.sock"), "the admin socket outlived the daemon");
}

Test(integration_drain, a_stalled_transaction_is_cut_at_drain_timeout, .timeout = 60) {
  sluiced_process d;
  start_draining_within(d, 2);
  smtp_client stalled(d.port());
  into_data(stalled);

  const auto signalled = std::chrono::steady_clock::now();
  d.signal(SIGTERM);
  // Nothing more is sent: the session holds the drain open until its deadline, not longer.
  const std::string cut = stalled.reply(10'000);
  const auto waited = std::chrono::steady_clock::now() - signalled;
  cr_assert(cut.starts_with("421 "), "stalled session got: '%s'", cut.c_str());
  cr_assert(waited >= 1500ms, "cut after %lld ms, before drain_timeout",
            static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(waited).count()));
  cr_assert(stalled.closed_by_peer());
  cr_assert_eq(exit_status_within(d.pid(), 5s), 0, "sluiced did not exit 0 after the deadline:\n%s", d.log().c_str());
  d.stop();
}

Test(integration_drain, a_second_sigterm_ends_the_drain_at_once, .timeout = 60) {
  sluiced_process d;
  start_draining_within(d, 60);
  smtp_client stalled(d.port());
  into_data(stalled);
  d.signal(SIGTERM);
  cr_assert(refuses_new_connections(d.port()));
  cr_assert_eq(exit_status_within(d.pid(), 1s), -1, "the first SIGTERM did not wait for the transaction");
  d.signal(SIGINT);
  cr_assert(stalled.reply(5000).starts_with("421 "));
  cr_assert_eq(exit_status_within(d.pid(), 5s), 0, "sluiced did not end soon after the second signal:\n%s",
               d.log().c_str());
  d.stop();
}

// A delivery on the wire when SIGTERM comes: a slow destination still gets it in the drain,
// and the daemon exits once it has; cut by the deadline instead, it stays queued and goes
// out after the restart. Either way the sink's records hold every acknowledged message.
Test(integration_drain, a_delivery_in_flight_completes_or_is_deferred_and_redelivered, .timeout = 90) {
  sluiced_process d;
  const uint16_t sink_port = free_port();
  const std::string smarthost =
      "\n[[send_connector]]\nname = \"Hub\"\naddress_spaces = [{ domain = \"*\", cost = 1 }]\nrouting = \"smarthost\"\n"
      "smart_hosts = [\"127.0.0.1:" + std::to_string(sink_port) + "\"]\ntls = \"none\"\n";
  auto deliver_one = [&](const std::string& subject) {
    smtp_client c(d.port(), "127.0.0.2");  // the Relay connector
    EXPECT_CODE(c.start_transaction(), 250);
    EXPECT_CODE(c.cmd("RCPT TO:<someone@relay.test>"), 250);
    EXPECT_CODE(c.cmd("DATA"), 354);
    EXPECT_CODE(c.cmd("Subject: " + subject + "\r\n\r\nbody\r\n."), 250);
    c.cmd("QUIT");
  };

  {
    // The sink holds its reply to the final dot 3 s; the drain allows 20.
    sink_process slow(d.dir(), "slow", "127.0.0.1", sink_port, {"--stall-at", "dot", "--stall-ms", "3000"});
    cr_assert(slow.started());
    d.write_config(with_server_keys("drain_timeout = 20\n") + smarthost);
    START(d);
    deliver_one("finishes in the drain");
    // On the wire: the sink has the message (it records on arrival) and holds its reply.
    cr_assert(eventually([&] { return slow.received() == 1; }, 5000), "the message never reached the sink");
    const auto signalled = std::chrono::steady_clock::now();
    d.signal(SIGTERM);
    cr_assert_eq(exit_status_within(d.pid(), 15s), 0, "%s", d.log().c_str());
    cr_assert(std::chrono::steady_clock::now() - signalled >= 1s, "exited without waiting for the reply to the dot");
    d.stop();
    START(d);
    const std::string left = d.ctl("queue list --json").output;
    cr_assert(left.find("\"id\":\"") == std::string::npos, "the delivery was not recorded as done:\n%s", left.c_str());
    d.stop();
    cr_assert_eq(slow.received(), 1u, "delivered twice");
  }
  {
    // Now the sink stalls longer than the drain allows: cut off, kept, and delivered later.
    sink_process stuck(d.dir(), "stuck", "127.0.0.1", sink_port, {"--stall-at", "dot", "--stall-ms", "30000"});
    d.write_config(with_server_keys("drain_timeout = 1\n") + smarthost +
                   "\n[delivery]\nretry_first = \"1s\"\nretry_max = \"1s\"\n");
    START(d);
    deliver_one("cut off by the deadline");
    cr_assert(eventually([&] { return stuck.received() == 1; }, 5000), "the message never reached the sink");
    d.signal(SIGTERM);
    cr_assert_eq(exit_status_within(d.pid(), 8s), 0, "%s", d.log().c_str());
    d.stop();
    cr_assert(d.ctl("queue list --json").output.find("\"id\":\"") != std::string::npos,
              "the cut-off delivery is not queued:\n%s", d.log().c_str());
  }
  sink_process well(d.dir(), "well", "127.0.0.1", sink_port);
  START(d);
  // The stuck sink may have recorded it too (a duplicate is allowed, a loss is not).
  cr_assert(eventually([&] { return well.received() >= 1; }, 20'000), "not redelivered after the restart:\n%s",
            d.log().c_str());
  d.stop();
}
