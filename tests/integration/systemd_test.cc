// systemd_test.cc: sluiced speaks the sd_notify protocol to a NOTIFY_SOCKET the test binds, and the shipped unit verifies.
// Untrusted input: the daemon's datagrams and systemd-analyze's output (parsed, never trusted to be well formed).
#include <criterion/criterion.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <chrono>
#include <cstddef>
#include <cstring>
#include <filesystem>
#include <functional>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "assertions.h"
#include "harness.h"

using namespace sluice::testing;

namespace {

uint64_t monotonic_usec() {
  timespec now{};
  clock_gettime(CLOCK_MONOTONIC, &now);
  return static_cast<uint64_t>(now.tv_sec) * 1'000'000 + static_cast<uint64_t>(now.tv_nsec) / 1000;
}

// What a service manager does: a Unix datagram socket, one message per datagram, with the
// sender's credentials (SO_PASSCRED) so the test sees which process spoke.
class notify_socket {
 public:
  // `name` as NOTIFY_SOCKET spells it: an absolute path, or "@name" (abstract namespace).
  explicit notify_socket(std::string name) : name_(std::move(name)) {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::memcpy(a.sun_path, name_.data(), name_.size());
    if (name_[0] == '@') a.sun_path[0] = '\0';
    const auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name_.size());
    bound_ = ::bind(fd_, reinterpret_cast<sockaddr*>(&a), len) == 0;
    int on = 1;
    ::setsockopt(fd_, SOL_SOCKET, SO_PASSCRED, &on, sizeof on);
  }
  ~notify_socket() {
    ::close(fd_);
    if (name_[0] == '/') ::unlink(name_.c_str());
  }
  bool bound() const { return bound_; }
  const std::string& name() const { return name_; }

  struct message {
    std::string text;  // "" on timeout
    pid_t sender = -1;
  };
  message receive(int timeout_ms = 10'000) {
    message m;
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, timeout_ms) != 1) return m;
    char buf[8192];
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(ucred))];
    iovec iov{buf, sizeof buf};
    msghdr h{};
    h.msg_iov = &iov;
    h.msg_iovlen = 1;
    h.msg_control = control;
    h.msg_controllen = sizeof control;
    const ssize_t n = ::recvmsg(fd_, &h, MSG_DONTWAIT);
    if (n <= 0) return m;
    m.text.assign(buf, static_cast<size_t>(n));
    for (cmsghdr* c = CMSG_FIRSTHDR(&h); c != nullptr; c = CMSG_NXTHDR(&h, c))
      if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS) {
        ucred cred;
        std::memcpy(&cred, CMSG_DATA(c), sizeof cred);
        m.sender = cred.pid;
      }
    return m;
  }
  // The next message that has `line` as one of its lines (skipping periodic STATUS-only
  // ones); its text, or "" if none came in time.
  std::string receive_with(const std::string& line, pid_t from, int timeout_ms = 10'000) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    for (;;) {
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count();
      if (left <= 0) return "";
      message m = receive(static_cast<int>(left));
      if (m.text.empty()) return "";
      cr_assert_eq(m.sender, from, "datagram from pid %d, not the daemon (%d): %s", m.sender, from, m.text.c_str());
      if (has_line(m.text, line)) return m.text;
    }
  }

  static bool has_line(const std::string& text, const std::string& line) {
    std::istringstream in(text);
    for (std::string l; std::getline(in, l);)
      if (l == line) return true;
    return false;
  }
  // The value of "KEY=" in a message, or "".
  static std::string value_of(const std::string& text, const std::string& key) {
    std::istringstream in(text);
    for (std::string l; std::getline(in, l);)
      if (l.rfind(key, 0) == 0) return l.substr(key.size());
    return "";
  }

 private:
  std::string name_;
  int fd_ = -1;
  bool bound_ = false;
};

// Every line of a notification is one KEY=VALUE assignment of the protocol's form: a
// status text must not smuggle a line of its own (READY=1, MAINPID=...).
void expect_well_formed(const std::string& text) {
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);) {
    const size_t eq = l.find('=');
    cr_assert(eq != std::string::npos && eq > 0, "not an assignment: '%s' in:\n%s", l.c_str(), text.c_str());
    for (size_t i = 0; i < eq; ++i)
      cr_assert((l[i] >= 'A' && l[i] <= 'Z') || l[i] == '_', "bad key in '%s'", l.c_str());
    for (unsigned char c : l) cr_assert(c >= 0x20 && c < 0x7f, "control or non-ASCII byte in '%s'", l.c_str());
  }
}

std::string abstract_name() {
  std::random_device rd;
  return "@sluice-test-notify-" + std::to_string(::getpid()) + "-" + std::to_string(rd());
}

// A config with a second binding on its own port, so READY=1 can be checked against both.
std::string two_port_config(uint16_t second) {
  std::string c = sluiced_process::default_config();
  const std::string one = "bindings = [\"127.0.0.1:@PORT@\"]\nmax_recipients";
  c.replace(c.find(one), one.size(),
            "bindings = [\"127.0.0.1:@PORT@\", \"127.0.0.1:" + std::to_string(second) + "\"]\nmax_recipients");
  return c;
}

bool accepts(uint16_t port) {
  smtp_client c(port);
  return c.connected();
}

// Starts the daemon and returns the first notification, read on another thread while
// start() still waits for the port, so the test sees it as soon as it is sent. (The daemon
// must be started from the test's own thread: it ends with the thread that forked it.)
// `then` runs on that thread right after the message arrives.
notify_socket::message start_and_receive(sluiced_process& d, notify_socket& s, bool& started,
                                         const std::function<void()>& then = {}) {
  notify_socket::message m;
  std::thread reader([&] {
    m = s.receive(15'000);
    if (!m.text.empty() && then) then();
  });
  started = d.start();
  reader.join();
  return m;
}

// Points the daemon's NOTIFY_SOCKET at `s`, starts it and fails the test unless READY=1
// comes first.
void start_until_ready(sluiced_process& d, notify_socket& s) {
  cr_assert(s.bound(), "cannot bind %s", s.name().c_str());
  d.set_env("NOTIFY_SOCKET", s.name());
  bool started = false;
  const std::string ready = start_and_receive(d, s, started).text;
  cr_assert(started, "sluiced did not start: %s", d.log().c_str());
  cr_assert(notify_socket::has_line(ready, "READY=1"), "no READY=1 on %s: '%s'\n%s", s.name().c_str(), ready.c_str(),
            d.log().c_str());
}

// SIGHUP, then RELOADING=1 and the READY=1 that ends the reload: that one is returned.
std::string reload_until_ready(sluiced_process& d, notify_socket& s) {
  d.signal(SIGHUP);
  cr_assert(!s.receive_with("RELOADING=1", d.pid()).empty(), "no RELOADING=1; log:\n%s", d.log().c_str());
  const std::string ready = s.receive_with("READY=1", d.pid());
  cr_assert(!ready.empty(), "no READY=1 after the reload; log:\n%s", d.log().c_str());
  expect_well_formed(ready);
  return ready;
}

void expect_status_has(const std::string& message, const std::string& text) {
  cr_assert(notify_socket::value_of(message, "STATUS=").find(text) != std::string::npos, "no '%s' in the STATUS of:\n%s",
            text.c_str(), message.c_str());
}

}  // namespace

Test(integration_systemd, ready_once_every_worker_listens, .timeout = 60) {
  sluiced_process d;
  const uint16_t second = free_port();
  d.write_config(two_port_config(second));
  notify_socket s(d.dir() + "/notify");
  cr_assert(s.bound());
  d.set_env("NOTIFY_SOCKET", s.name());
  bool started = false;
  bool first_ok = false, second_ok = false;
  // Both bindings, on every worker, accept at the moment READY=1 arrives.
  notify_socket::message ready = start_and_receive(d, s, started, [&] {
    first_ok = accepts(d.port());
    second_ok = accepts(second);
  });
  cr_assert(started, "sluiced did not start: %s", d.log().c_str());
  cr_assert(!ready.text.empty(), "no notification within 15 s; log:\n%s", d.log().c_str());
  cr_assert_eq(ready.sender, d.pid(), "sent by pid %d, not the daemon's main process %d", ready.sender, d.pid());
  cr_assert(notify_socket::has_line(ready.text, "READY=1"), "%s", ready.text.c_str());
  expect_well_formed(ready.text);
  expect_status_has(ready.text, "2 workers");
  expect_status_has(ready.text, "queue 0 messages");
  cr_assert(first_ok && second_ok, "READY=1 before the listeners accept (%d, %d): %s", first_ok, second_ok,
            ready.text.c_str());
  d.stop();
}

Test(integration_systemd, sighup_reports_reloading_then_ready, .timeout = 60) {
  sluiced_process d;
  notify_socket s(d.dir() + "/notify");
  start_until_ready(d, s);

  // A valid change: a new accepted domain.
  d.write_config(sluiced_process::default_config() + "\n[[accepted_domain]]\nname = \"new.test\"\ntype = \"internal_relay\"\n");
  const uint64_t before = monotonic_usec();
  d.signal(SIGHUP);
  const std::string reloading = s.receive_with("RELOADING=1", d.pid());
  const uint64_t after = monotonic_usec();
  cr_assert(!reloading.empty(), "no RELOADING=1; log:\n%s", d.log().c_str());
  expect_well_formed(reloading);
  const std::string usec = notify_socket::value_of(reloading, "MONOTONIC_USEC=");
  cr_assert(!usec.empty() && usec.find_first_not_of("0123456789") == std::string::npos, "%s", reloading.c_str());
  const uint64_t when = std::stoull(usec);
  cr_assert(when >= before && when <= after, "MONOTONIC_USEC=%llu not between %llu and %llu",
            static_cast<unsigned long long>(when), static_cast<unsigned long long>(before),
            static_cast<unsigned long long>(after));

  const std::string done = s.receive_with("READY=1", d.pid());
  cr_assert(!done.empty(), "no READY=1 after the reload; log:\n%s", d.log().c_str());
  expect_well_formed(done);
  expect_status_has(done, "configuration reloaded");
  expect_status_has(done, "generation 2");
  d.stop();
}

// A reload refused either way leaves the daemon ready again, its status naming the errors:
// a file that does not load, then one that loads but whose generation cannot be built.
Test(integration_systemd, a_refused_reload_is_ready_again_with_the_error, .timeout = 60) {
  sluiced_process d;
  notify_socket s(d.dir() + "/notify");
  start_until_ready(d, s);

  // Two errors: the status must carry them on its one line, not as lines of their own.
  d.write_config(sluiced_process::default_config() +
                 "\n[[accepted_domain]]\nname = \"bad.test\"\ntype = \"nonsense\"\n"
                 "\n[[accepted_domain]]\nname = \"worse.test\"\ntype = \"authoritative\"\nmystery_key = 1\n");
  std::string refused = reload_until_ready(d, s);
  expect_status_has(refused, "reload refused, configuration unchanged: ");
  // It names the errors: the file, the bad value and the unknown key.
  for (const char* error : {"sluice.toml", "nonsense", "mystery_key"}) expect_status_has(refused, error);

  // A certificate file that holds no certificate: only building the generation finds out.
  d.write_file("broken.pem", "-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n");
  d.write_config(sluiced_process::default_config() + "\n[[receive_connector]]\nname = \"Tls\"\ntype = \"custom\"\n" +
                 "bindings = [\"127.0.0.1:" + std::to_string(free_port()) + "\"]\n" +
                 "tls = { certificate = \"broken.pem\", key = \"broken.pem\", starttls = \"offered\" }\n");
  refused = reload_until_ready(d, s);
  expect_status_has(refused, "reload refused, configuration unchanged: ");
  expect_status_has(refused, "broken.pem");

  // And the running configuration is still in force.
  smtp_client c(d.port());
  EXPECT_CODE(c.start_transaction(), 250);
  EXPECT_CODE(c.cmd("RCPT TO:<alice@sluice.test>"), 250);
  d.stop();
}

Test(integration_systemd, sigterm_reports_stopping, .timeout = 60) {
  sluiced_process d;
  notify_socket s(d.dir() + "/notify");
  start_until_ready(d, s);
  const pid_t pid = d.pid();
  d.signal(SIGTERM);
  const std::string stopping = s.receive_with("STOPPING=1", pid);
  cr_assert(!stopping.empty(), "no STOPPING=1; log:\n%s", d.log().c_str());
  expect_well_formed(stopping);
  d.stop();
}

Test(integration_systemd, an_abstract_socket_name_works, .timeout = 60) {
  sluiced_process d;
  notify_socket s(abstract_name());
  start_until_ready(d, s);
  d.signal(SIGTERM);
  cr_assert(!s.receive_with("STOPPING=1", d.pid()).empty());
  d.stop();
}

// A manager that is gone, or a NOTIFY_SOCKET the protocol does not define, costs nothing:
// the daemon starts, takes mail and reloads as without one.
Test(integration_systemd, a_socket_nobody_reads_never_stops_mail, .timeout = 60) {
  for (const std::string& name : {std::string("/nonexistent/sluice-notify"), std::string("relative/notify"),
                                  std::string("@"), std::string("vsock:2:1234")}) {
    sluiced_process d;
    d.set_env("NOTIFY_SOCKET", name);
    START(d);
    d.signal(SIGHUP);
    smtp_client c(d.port());
    EXPECT_CODE(c.start_transaction(), 250);
    EXPECT_CODE(c.cmd("RCPT TO:<alice@sluice.test>"), 250);
    EXPECT_CODE(c.cmd("DATA"), 354);
    EXPECT_CODE(c.cmd("Subject: t\r\n\r\nbody\r\n."), 250);
    c.cmd("QUIT");
    cr_assert(d.running());
    d.stop();
  }
}

// Whether `systemd-analyze security` rates `setting` as in force: its line starts with the
// check mark (or '+', systemd's ASCII fallback) and, if given, mentions `detail`.
bool rated_safe(const std::string& report, const std::string& setting, const std::string& detail = "") {
  std::istringstream in(report);
  for (std::string l; std::getline(in, l);) {
    for (const std::string mark : {"\xE2\x9C\x93 ", "+ "})
      if (l.rfind(mark + setting + " ", 0) == 0) return detail.empty() || l.find(detail) != std::string::npos;
  }
  return false;
}

// The shipped unit, with ExecStart pointing at the built daemon, passes systemd's own check;
// systemd's own security analysis finds each hardening setting the issue asks for in force,
// and its overall exposure score stays in the "OK" band.
Test(integration_systemd, the_unit_file_verifies, .timeout = 120) {
  const command_result which = run("command -v systemd-analyze");
  cr_assert(which.status == 0,
            "systemd-analyze is missing: install the Debian package 'systemd' (bash third_party/install.sh); "
            "this test cannot check etc/systemd/sluice.service without it");
  namespace fs = std::filesystem;
  char tmpl[] = "/tmp/sluice-unit-XXXXXX";
  const std::string dir = ::mkdtemp(tmpl);
  std::ifstream in(source_root() + "/etc/systemd/sluice.service");
  cr_assert(in.good(), "no etc/systemd/sluice.service");
  std::stringstream unit;
  unit << in.rdbuf();
  std::string text = unit.str();
  cr_assert(text.find("ExecStart=/usr/sbin/sluiced ") != std::string::npos, "%s", text.c_str());
  for (size_t pos; (pos = text.find("/usr/sbin/sluiced")) != std::string::npos;)
    text.replace(pos, std::strlen("/usr/sbin/sluiced"), sluiced_path());
  const std::string path = dir + "/sluice.service";
  std::ofstream(path) << text;

  const command_result verify = run("systemd-analyze verify " + path);
  const command_result security = run("systemd-analyze security --offline=true --threshold=25 " + path);
  std::error_code ec;
  fs::remove_all(dir, ec);
  // verify exits 0 on warnings too: any line about the unit is a defect.
  cr_assert(verify.status == 0 && verify.output.find("sluice.service") == std::string::npos,
            "systemd-analyze verify (status %d):\n%s", verify.status, verify.output.c_str());
  cr_assert(security.status == 0, "systemd-analyze security: exposure above 2.5 of 10 (status %d):\n%s", security.status,
            security.output.c_str());
  const std::pair<std::string, std::string> wanted[] = {
      {"NotifyAccess=", ""},
      {"NoNewPrivileges=", ""},
      {"ProtectSystem=", "strict"},
      {"ProtectHome=", ""},
      {"PrivateTmp=", ""},
      {"PrivateDevices=", ""},
      {"ProtectKernelTunables=", ""},
      {"ProtectKernelModules=", ""},
      {"ProtectKernelLogs=", ""},
      {"RestrictAddressFamilies=~AF_PACKET", ""},
      {"RestrictAddressFamilies=~AF_NETLINK", ""},
      {"CapabilityBoundingSet=~CAP_SYS_ADMIN", ""},
      {"CapabilityBoundingSet=~CAP_NET_ADMIN", ""},
  };
  for (const auto& [setting, detail] : wanted)
    cr_assert(rated_safe(security.output, setting, detail), "%s not in force:\n%s", setting.c_str(),
              security.output.c_str());
  for (const char* line : {"\nType=notify\n", "\nNotifyAccess=main\n", "\nExecReload=/bin/kill -HUP $MAINPID\n",
                           "\nRestart=on-failure\n", "\nStateDirectory=sluice\n", "\nLogsDirectory=sluice\n"})
    cr_assert(text.find(line) != std::string::npos, "no%s in the unit", line);
}
