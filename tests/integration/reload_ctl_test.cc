// reload_ctl_test.cc: `sluicectl reload` against the running sluiced, and `sluicectl config check` offline.
// Untrusted input: none (the test writes every file it reads).
#include <criterion/criterion.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <string>

#include "assertions.h"
#include "harness.h"

using namespace sluice::testing;

namespace {

std::string with_domain(const std::string& name, const std::string& type) {
  return "\n[[accepted_domain]]\nname = \"" + name + "\"\ntype = \"" + type + "\"\n";
}

// The 1-based line of the first line of `text` that contains `needle`, as a string.
std::string line_of(const std::string& text, const std::string& needle) {
  size_t at = text.find(needle);
  if (at == std::string::npos) return "not found";
  return std::to_string(std::count(text.begin(), text.begin() + static_cast<long>(at), '\n') + 1);
}

// Sends `requests` to the admin socket in one write and reads until `responses` framed
// answers (each ending in a "." line) have come, or 10 s pass.
std::string admin_exchange(const std::string& socket_path, const std::string& requests, int responses) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, socket_path.data(), std::min(socket_path.size(), sizeof addr.sun_path - 1));
  std::string got;
  if (connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0 ||
      send(fd, requests.data(), requests.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(requests.size())) {
    close(fd);
    return "connect or send failed";
  }
  int seen = 0;
  for (int waited = 0; seen < responses && waited < 10'000; waited += 100) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 100) <= 0) continue;
    char buf[4096];
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    got.append(buf, static_cast<size_t>(n));
    seen = 0;
    for (size_t at = 0; (at = got.find("\n.\n", at)) != std::string::npos; at += 3) ++seen;
  }
  close(fd);
  return got;
}

command_result check(const std::string& file) { return run(sluicectl_path() + " config check " + file); }

// Writes `text` as `name` in d's directory and checks it; the check must refuse it.
command_result check_refused(sluiced_process& d, const std::string& name, const std::string& text) {
  d.write_file(name, text);
  command_result r = check(d.dir() + "/" + name);
  cr_assert_eq(r.status, 1, "%s", r.output.c_str());
  return r;
}

}  // namespace

Test(integration_reload_ctl, reload_applies_a_changed_file_and_reports_it) {
  sluiced_process d;
  d.write_config(sluiced_process::default_config());
  START(d);
  auto r = d.ctl("route test x@fresh.test");
  EXPECT_HAS(r, "accepted domain: none");

  d.write_config(sluiced_process::default_config() + with_domain("fresh.test", "internal_relay"));
  r = d.ctl("reload");
  cr_assert_eq(r.status, 0, "%s", r.output.c_str());
  EXPECT_HAS(r, "configuration reloaded");
  // The answer comes after the reload: the very next query already sees the new file.
  r = d.ctl("route test x@fresh.test");
  cr_assert_eq(r.status, 0, "%s", r.output.c_str());
  EXPECT_HAS(r, "accepted domain: fresh.test");
  cr_assert(d.log().find("configuration reloaded from") != std::string::npos, "%s", d.log().c_str());
}

Test(integration_reload_ctl, requests_behind_a_reload_wait_for_its_answer) {
  sluiced_process d;
  d.write_config(sluiced_process::default_config());
  START(d);
  d.write_config(sluiced_process::default_config() + with_domain("fresh.test", "internal_relay"));
  // Pipelined on one connection: the reload's answer comes first, and the query behind it
  // is answered from the configuration the reload installed.
  const std::string got = admin_exchange(d.dir() + "/admin.sock", "reload\nroute test x@fresh.test\n", 2);
  const size_t reloaded = got.find("ok\nconfiguration reloaded\n.\n");
  cr_assert(reloaded != std::string::npos, "%s", got.c_str());
  cr_assert_eq(reloaded, 0u, "the reload is answered first: %s", got.c_str());
  cr_assert(got.find("accepted domain: fresh.test", reloaded) != std::string::npos, "%s", got.c_str());
}

Test(integration_reload_ctl, a_broken_file_is_refused_and_the_running_one_stays) {
  sluiced_process d;
  const std::string good = sluiced_process::default_config() + with_domain("fresh.test", "internal_relay");
  d.write_config(good);
  START(d);

  // A value the loader refuses: the error names the file and the line.
  const std::string bad = good + with_domain("broken.test", "sideways");
  d.write_config(bad);
  auto r = d.ctl("reload");
  cr_assert_eq(r.status, 1, "%s", r.output.c_str());
  EXPECT_HAS(r, "sluicectl: reload failed, the running configuration stays in force");
  EXPECT_HAS(r, "sluice.toml:" + line_of(bad, "\"sideways\"") + ":");
  EXPECT_HAS(r, "sideways");
  r = d.ctl("route test x@broken.test");
  EXPECT_HAS(r, "accepted domain: none");
  r = d.ctl("route test x@fresh.test");
  EXPECT_HAS(r, "accepted domain: fresh.test");

  // A file that loads but whose generation cannot be built (a certificate that is not
  // there) is refused by the same path SIGHUP takes.
  d.write_config(sluiced_process::default_config() + with_domain("other.test", "internal_relay") + R"(
[[receive_connector]]
name = "Secure"
type = "internet"
bindings = ["127.0.0.1:@PORT@"]
remote_ranges = ["127.0.0.9"]
tls = { starttls = "offered", certificate = "missing-cert.pem", key = "missing-key.pem" }
)");
  r = d.ctl("reload");
  cr_assert_eq(r.status, 1, "%s", r.output.c_str());
  EXPECT_HAS(r, "reload failed, the running configuration stays in force");
  EXPECT_HAS(r, "missing-cert.pem");
  r = d.ctl("route test x@other.test");
  EXPECT_HAS(r, "accepted domain: none");

  // Fixed again, the next reload takes.
  d.write_config(good + with_domain("later.test", "internal_relay"));
  r = d.ctl("reload");
  cr_assert_eq(r.status, 0, "%s", r.output.c_str());
  EXPECT_HAS(d.ctl("route test x@later.test"), "accepted domain: later.test");
}

Test(integration_reload_ctl, reload_without_a_daemon) {
  sluiced_process d;
  d.write_config(sluiced_process::default_config());
  auto r = d.ctl("reload");
  cr_assert_eq(r.status, 1, "%s", r.output.c_str());
  EXPECT_HAS(r, "sluicectl: sluiced is not running (no socket at " + d.dir() + "/admin.sock)");
}

Test(integration_reload_ctl, check_of_the_shipped_file) {
  const std::string file = source_root() + "/etc/sluice.toml";
  auto r = check(file);
  cr_assert_eq(r.status, 0, "%s", r.output.c_str());
  EXPECT_HAS(r, file + ": ok");
}

Test(integration_reload_ctl, check_reports_every_error_with_its_line) {
  sluiced_process d;  // only for its private directory: no daemon runs
  const std::string text = R"([server]
hostname = "mx.sluice.test"
workers = "two"

[[accepted_domain]]
name = "a.test"
type = "sideways"

[[receive_connector]]
name = "Internet"
bindings = ["127.0.0.1:99999"]
)";
  const std::string file = d.dir() + "/bad.toml";
  auto r = check_refused(d, "bad.toml", text);
  EXPECT_HAS(r, file + ":" + line_of(text, "\"two\"") + ":");
  EXPECT_HAS(r, file + ":" + line_of(text, "\"sideways\"") + ":");
  EXPECT_HAS(r, file + ":" + line_of(text, "99999") + ":");
  cr_assert(r.output.find(": ok") == std::string::npos, "%s", r.output.c_str());

  // TOML that does not parse: the line of the syntax error.
  const std::string broken = "[server]\nhostname = \"mx.sluice.test\"\nworkers = = 2\n";
  r = check_refused(d, "syntax.toml", broken);
  EXPECT_HAS(r, d.dir() + "/syntax.toml:3:");

  r = check(d.dir() + "/no-such.toml");
  cr_assert_eq(r.status, 1, "%s", r.output.c_str());
  EXPECT_HAS(r, "no-such.toml");
}

Test(integration_reload_ctl, check_reports_route_conflicts_and_writes_nothing) {
  sluiced_process d;
  const std::string text = R"([server]
hostname = "mx.sluice.test"
queue_dir = "@DIR@/never-queue"
log_dir = "@DIR@/never-log"

[[send_connector]]
name = "Twice"
address_spaces = ["*"]

[[send_connector]]
name = "Twice"
address_spaces = ["example.org"]
)";
  std::string t = text;
  for (size_t at; (at = t.find("@DIR@")) != std::string::npos;) t.replace(at, 5, d.dir());
  auto r = check_refused(d, "conflict.toml", t);
  EXPECT_HAS(r, "Twice");
  auto listing = run("ls " + d.dir());
  cr_assert(listing.output.find("never-") == std::string::npos, "config check created: %s", listing.output.c_str());
}

Test(integration_reload_ctl, check_loads_certificates_as_the_daemon_does) {
  sluiced_process d;
  d.write_file("junk-cert.pem", "this is not a certificate\n");
  d.write_file("junk-key.pem", "nor is this a key\n");
  const std::string text = R"([server]
hostname = "mx.sluice.test"

[[receive_connector]]
name = "Secure"
type = "internet"
bindings = ["127.0.0.1:2525"]
tls = { starttls = "offered", certificate = "junk-cert.pem", key = "junk-key.pem" }
)";
  const std::string file = d.dir() + "/tls.toml";
  auto r = check_refused(d, "tls.toml", text);
  EXPECT_HAS(r, file + ":" + line_of(text, "[[receive_connector]]") + ": receive connector Secure: TLS: ");
}
