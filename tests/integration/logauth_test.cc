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
  // The harness's start-up probe may still hold a slot for a moment.
  for (int i = 0; i < 100 && open.size() < 2; ++i) {
    auto c = std::make_unique<smtp_client>(d.port());
    if (code_of(c->reply()) == 220)
      open.push_back(std::move(c));
    else
      usleep(50'000);
  }
  cr_assert_eq(open.size(), 2u, "two connections admitted");
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
  for (int i = 0; i < 200 && code_of(greeting) != 220; ++i) {
    usleep(50'000);
    smtp_client again(d.port());
    greeting = again.reply();
  }
  EXPECT_CODE(greeting, 220);
}

namespace {

// One message over SMTP; the reply to the final dot.
std::string send_mail(uint16_t port) {
  smtp_client c(port);
  c.start_transaction();
  c.cmd("RCPT TO:<alice@sluice.test>");
  c.cmd("DATA");
  std::string r = c.cmd("Subject: log test\r\n\r\nbody\r\n.");
  c.send("QUIT");
  return r;
}

std::string with_server_keys(const std::string& keys) {
  std::string cfg = sluiced_process::default_config();
  cfg.replace(cfg.find("map_size = \"256M\""), 17, "map_size = \"256M\"\n" + keys);
  return cfg;
}

}  // namespace

Test(integration_logauth, protocol_log_rotates_at_max_size_and_keeps_log_keep_files) {
  sluiced_process d;
  d.write_config(with_server_keys("log_max_size = \"2KB\"\nlog_keep = 3"));
  START(d);
  for (int i = 0; i < 15; ++i) EXPECT_CODE(send_mail(d.port()), 250);
  usleep(600'000);  // two flush intervals
  size_t rotated = 0;
  const std::string dir = d.dir() + "/log/protocol";
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    cr_assert_leq(fs::file_size(e.path()), 2048u, "%s is over log_max_size", name.c_str());
    if (name.starts_with("Internet.") && name != "Internet.csv") ++rotated;
  }
  cr_assert_eq(rotated, 3u, "15 sessions fill more than 4 files of 2KB; log_keep = 3 are kept");
  auto head = run("head -c 9 " + dir + "/Internet.csv").output;
  cr_assert_eq(head, "date-time", "a new file starts with the column names: %s", head.c_str());
}

Test(integration_logauth, failing_log_writes_drop_lines_not_mail) {
  sluiced_process d;
  d.write_config(sluiced_process::default_config());
  // Every write to these fails with ENOSPC, as on a full disk.
  run("mkdir -p " + d.dir() + "/log/protocol && ln -s /dev/full " + d.dir() + "/log/protocol/Internet.csv && ln -s /dev/full " +
      d.dir() + "/log/tracking.csv");
  START(d);
  for (int i = 0; i < 3; ++i) EXPECT_CODE(send_mail(d.port()), 250);
  cr_assert(wait_for_log(d, "sluiced: log: cannot write "), "%s", d.log().c_str());
  EXPECT_CODE(send_mail(d.port()), 250);
  // The admin socket's status answer (sluicectl has no status command yet).
  auto status = run("python3 -c \"import socket; s = socket.socket(socket.AF_UNIX); s.connect('" + d.dir() +
                    "/admin.sock'); s.sendall(b'status\\n'); s.settimeout(5); print(s.recv(65536).decode())\"");
  cr_assert(status.output.find("log lines dropped: 0") == std::string::npos, "%s", status.output.c_str());
  EXPECT_HAS(status, "log lines dropped: ");
}

Test(integration_logauth, full_tmpfs_log_dir_drops_lines_not_mail) {
  if (geteuid() != 0) return;  // mounting needs root (CI runs as root)
  sluiced_process d;
  d.write_config(sluiced_process::default_config());
  const std::string log_dir = d.dir() + "/log";
  run("mkdir -p " + log_dir);
  if (run("mount -t tmpfs -o size=256k tmpfs " + log_dir).status != 0) return;  // no mount privilege here
  START(d);
  EXPECT_CODE(send_mail(d.port()), 250);
  run("dd if=/dev/zero of=" + log_dir + "/filler bs=4k 2>/dev/null");  // until ENOSPC
  for (int i = 0; i < 3; ++i) EXPECT_CODE(send_mail(d.port()), 250);
  bool reported = wait_for_log(d, "sluiced: log: cannot write ");
  d.stop();
  run("umount " + log_dir);
  cr_assert(reported, "%s", d.log().c_str());
}
