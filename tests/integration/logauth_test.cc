// logauth_test.cc: protocol log rotation and write failures, and AUTH/connection limits shared by loops and reloads.
#include <criterion/criterion.h>
#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "assertions.h"
#include "harness.h"

using namespace sluice::testing;
namespace fs = std::filesystem;

namespace {

// Waits until the daemon's log has `text` (at most ~5 s).
bool wait_for_log(const sluiced_process& d, const std::string& text) {
  for (int i = 0; i < 100; ++i) {
    if (d.log().find(text) != std::string::npos) return true;
    usleep(50'000);
  }
  return false;
}

void reload(sluiced_process& d) {
  size_t before = 0;
  for (size_t at = d.log().find("configuration reloaded"); at != std::string::npos;
       at = d.log().find("configuration reloaded", at + 1))
    ++before;
  d.signal(SIGHUP);
  for (int i = 0; i < 100; ++i) {
    size_t now = 0;
    for (size_t at = d.log().find("configuration reloaded"); at != std::string::npos;
         at = d.log().find("configuration reloaded", at + 1))
      ++now;
    if (now > before) return;
    usleep(50'000);
  }
  cr_assert_fail("reload not confirmed: %s", d.log().c_str());
}

// Four loops, and a submission connector allowing plaintext AUTH from loopback with a
// budget of 3 failures per source.
std::string auth_config(sluiced_process& d, const std::string& submission_port) {
  std::string hash = run("echo 'correct horse' | " + sluiced_path() + " --hash-password").output;
  while (!hash.empty() && (hash.back() == '\n' || hash.back() == '\r')) hash.pop_back();
  d.write_file("credentials", "alice:" + hash + "\n");
  std::string cfg = sluiced_process::default_config();
  cfg.replace(cfg.find("workers = 2"), 11, "workers = 4");
  cfg += R"(
[[receive_connector]]
name = "Submission"
type = "client"
bindings = ["127.0.0.1:)" + submission_port + R"("]
tls = { certificate = "auto", key = "auto", starttls = "offered" }
auth = { credentials = "credentials", allow_plaintext_on_loopback = true, max_failures_per_ip = 3 }
)";
  return cfg;
}

// One connection, one AUTH attempt ("\0alice\0wrong" or the right password); the reply.
std::string one_auth(uint16_t port, bool right_password) {
  smtp_client c(port);
  c.reply();
  c.cmd("EHLO client.example");
  std::string r = c.cmd(right_password ? "AUTH PLAIN AGFsaWNlAGNvcnJlY3QgaG9yc2U=" : "AUTH PLAIN AGFsaWNlAHdyb25n");
  c.send("QUIT");
  return r;
}

}  // namespace

Test(integration_logauth, auth_failures_counted_across_loops_and_kept_over_reload) {
  sluiced_process d;
  uint16_t submission = free_port();
  d.write_config(auth_config(d, std::to_string(submission)));
  START(d);
  // Each failure on its own connection: SO_REUSEPORT spreads them over the four loops.
  for (int i = 0; i < 3; ++i) EXPECT_CODE(one_auth(submission, false), 535);
  // With one budget per loop, most of these would land on a loop that has seen fewer
  // than 3 failures and get 235.
  for (int i = 0; i < 8; ++i) EXPECT_CODE(one_auth(submission, true), 454);
  reload(d);
  for (int i = 0; i < 8; ++i) EXPECT_CODE(one_auth(submission, true), 454);
}

Test(integration_logauth, connections_per_ip_hold_across_reload) {
  sluiced_process d;
  std::string cfg = sluiced_process::default_config();
  cfg.replace(cfg.find("max_recipients = 5"), 18, "max_recipients = 5\nmax_connections_per_ip = 2");
  d.write_config(cfg);
  START(d);
  std::vector<std::unique_ptr<smtp_client>> open;
  for (int i = 0; i < 2; ++i) {
    open.push_back(std::make_unique<smtp_client>(d.port()));
    EXPECT_CODE(open.back()->reply(), 220);
  }
  {
    smtp_client third(d.port());
    EXPECT_CODE(third.reply(), 421);
  }
  reload(d);
  smtp_client after(d.port());
  EXPECT_CODE(after.reply(), 421);
  // The two admitted before the reload still work and, once closed, free their slots.
  EXPECT_CODE(open[0]->cmd("EHLO client.example"), 250);
  open.clear();
  std::string greeting;
  for (int i = 0; i < 50 && code_of(greeting) != 220; ++i) {
    usleep(50'000);
    smtp_client again(d.port());
    greeting = again.reply();
  }
  EXPECT_CODE(greeting, 220);
}
