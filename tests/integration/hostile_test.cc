// hostile_test.cc: the built sluiced against clients that misbehave on purpose (smuggling, stalled readers).
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <dirent.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "assertions.h"
#include "harness.h"

using namespace sluice::testing;
using namespace std::literals;

namespace {

// `sluicectl queue list` opens with "<n> message(s) queued": the store's own count.
void expect_queued(const sluiced_process& d, const char* count) {
  auto r = d.ctl("queue list");
  cr_assert(r.output.starts_with(std::string(count) + " queued"), "want %s queued:\n%s", count, r.output.c_str());
}

// The socket inodes among the daemon's open descriptors.
std::set<unsigned long> socket_inodes(pid_t pid) {
  std::set<unsigned long> out;
  std::string dir = "/proc/" + std::to_string(pid) + "/fd";
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return out;
  while (dirent* e = ::readdir(d)) {
    char target[64];
    ssize_t n = ::readlink((dir + "/" + e->d_name).c_str(), target, sizeof target - 1);
    if (n <= 0) continue;
    target[n] = '\0';
    unsigned long inode;
    if (std::sscanf(target, "socket:[%lu]", &inode) == 1) out.insert(inode);
  }
  ::closedir(d);
  return out;
}

size_t open_descriptors(pid_t pid) {
  size_t n = 0;
  std::string dir = "/proc/" + std::to_string(pid) + "/fd";
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return 0;
  while (dirent* e = ::readdir(d)) n += e->d_name[0] != '.';
  ::closedir(d);
  return n;
}

// Descriptors the daemon holds for TCP connections whose remote address is `ip`.
size_t sockets_from(pid_t pid, const char* ip) {
  in_addr want{};
  ::inet_pton(AF_INET, ip, &want);
  char hex[9];
  std::snprintf(hex, sizeof hex, "%08X", want.s_addr);  // /proc shows the address as a host-order word
  std::set<unsigned long> mine = socket_inodes(pid);
  std::ifstream tcp("/proc/" + std::to_string(pid) + "/net/tcp");
  std::string line;
  std::getline(tcp, line);
  size_t count = 0;
  while (std::getline(tcp, line)) {
    std::istringstream in(line);
    std::string slot, local, remote, state, queues, timer, retr, uid, timeout;
    unsigned long inode = 0;
    in >> slot >> local >> remote >> state >> queues >> timer >> retr >> uid >> timeout >> inode;
    if (remote.compare(0, 8, hex) == 0 && mine.count(inode)) ++count;
  }
  return count;
}

// A client from `source` with a tiny receive window that pipelines NOOPs and never
// reads a reply: the daemon's replies pile up behind a zero window.
int stalled_noop_client(uint16_t port, const char* source, size_t noops) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  int tiny = 1024;
  ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &tiny, sizeof tiny);
  // A small MSS keeps the daemon's send buffer from autotuning to megabytes on
  // loopback, so a modest flood already leaves replies queued in the daemon itself.
  int small_segments = 536;
  ::setsockopt(fd, IPPROTO_TCP, TCP_MAXSEG, &small_segments, sizeof small_segments);
  timeval send_limit{0, 500 * 1000};
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &send_limit, sizeof send_limit);
  sockaddr_in local{};
  local.sin_family = AF_INET;
  ::inet_pton(AF_INET, source, &local.sin_addr);
  ::bind(fd, reinterpret_cast<sockaddr*>(&local), sizeof local);
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(port);
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof to) != 0) {
    ::close(fd);
    return -1;
  }
  std::string flood = "EHLO stalled.example\r\n";
  for (size_t i = 0; i < noops; ++i) flood += "NOOP\r\n";
  for (size_t off = 0; off < flood.size();) {
    ssize_t n = ::send(fd, flood.data() + off, flood.size() - off, MSG_NOSIGNAL);
    if (n <= 0) break;  // refused (421) or the send limit: enough is queued either way
    off += size_t(n);
  }
  return fd;
}

}  // namespace

// A NUL before the real end of data is a forged end for a hop that reads C strings:
// refused, nothing queued, and the same session can still send a clean message.
Test(integration_hostile, nul_in_data_refused_nothing_queued) {
  sluiced_process d;
  START(d);
  smtp_client c(d.port());
  EXPECT_CODE(c.start_transaction(), 250);
  for (std::string forged : {"\0."s, ".\0"s}) {
    EXPECT_CODE(c.cmd("RCPT TO:<alice@sluice.test>"), 250);
    EXPECT_CODE(c.cmd("DATA"), 354);
    std::string r = c.cmd("Subject: x\r\n\r\nbody\r\n" + forged +
                          "\r\nMAIL FROM:<evil@example.org>\r\nRCPT TO:<bob@sluice.test>\r\nDATA\r\nspoof\r\n.");
    cr_assert(r.starts_with("550 5.6.0 "), "reply: %s", r.c_str());
    EXPECT_CODE(c.cmd("MAIL FROM:<sender@example.org>"), 250);
  }
  expect_queued(d, "0 messages");
  EXPECT_CODE(c.cmd("RCPT TO:<alice@sluice.test>"), 250);
  EXPECT_CODE(c.cmd("DATA"), 354);
  EXPECT_CODE(c.cmd("Subject: clean\r\n\r\nbody\r\n."), 250);
  EXPECT_CODE(c.cmd("QUIT"), 221);
  expect_queued(d, "1 message");
}

// BDAT carries NUL only for BODY=BINARYMIME.
Test(integration_hostile, nul_in_bdat_only_with_binarymime) {
  sluiced_process d;
  START(d);
  smtp_client c(d.port());
  EXPECT_CODE(c.start_transaction(), 250);
  EXPECT_CODE(c.cmd("RCPT TO:<alice@sluice.test>"), 250);
  std::string chunk = "Subject: x\r\n\r\na\0.\r\n"s;
  c.send_raw("BDAT " + std::to_string(chunk.size()) + " LAST\r\n" + chunk);
  std::string r = c.reply();
  cr_assert(r.starts_with("550 5.6.0 "), "reply: %s", r.c_str());
  expect_queued(d, "0 messages");
  EXPECT_CODE(c.cmd("MAIL FROM:<sender@example.org> BODY=BINARYMIME"), 250);
  EXPECT_CODE(c.cmd("RCPT TO:<alice@sluice.test>"), 250);
  c.send_raw("BDAT " + std::to_string(chunk.size()) + " LAST\r\n" + chunk);
  EXPECT_CODE(c.reply(), 250);
  EXPECT_CODE(c.cmd("QUIT"), 221);
  expect_queued(d, "1 message");
}

// Clients that pipeline NOOPs and never read, from one address, some staying connected,
// some half-closing, some closing: every socket the daemon gives up must really close
// within the command timeout plus the close deadline, and the daemon must never hold
// more of that address's sockets than max_connections_per_ip.
Test(integration_hostile, stalled_readers_cannot_exhaust_descriptors, .timeout = 90) {
  constexpr size_t per_ip_limit = 100;
  constexpr const char* attacker = "127.0.0.3";
  sluiced_process d;
  std::string cfg = sluiced_process::default_config();
  cfg.replace(cfg.find("timeouts = { command_s = 30"), std::string("timeouts = { command_s = 30").size(),
              "max_connections_per_ip = 100\ntimeouts = { command_s = 2");
  d.write_config(cfg);
  START(d);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  const size_t baseline = open_descriptors(d.pid());
  size_t peak = 0;
  auto sample = [&] { peak = std::max(peak, sockets_from(d.pid(), attacker)); };

  std::vector<int> staying;
  for (int i = 0; i < 300; ++i) {
    int fd = stalled_noop_client(d.port(), attacker, 12000);
    if (fd >= 0) {
      switch (i % 3) {
        case 0: staying.push_back(fd); break;
        case 1: ::shutdown(fd, SHUT_WR); staying.push_back(fd); break;
        default: ::close(fd); break;
      }
    }
    if (i % 10 == 0) sample();
  }
  // Sessions time out after 2 s; a close then waits at most the 5 s deadline.
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  size_t now = open_descriptors(d.pid());
  while (now > baseline && std::chrono::steady_clock::now() < until) {
    sample();
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    now = open_descriptors(d.pid());
  }
  sample();
  size_t left = sockets_from(d.pid(), attacker);
  for (int fd : staying) ::close(fd);
  // A connection refused for the limit (421 Too many connections) is closed at once, but
  // a sample can catch it between accept and close on each of the two worker loops.
  cr_assert_leq(peak, per_ip_limit + 2, "the daemon held %zu sockets from one address", peak);
  cr_assert_eq(left, 0u, "%zu sockets from the stalled clients still open", left);
  cr_assert_leq(now, baseline, "descriptors: %zu, baseline %zu", now, baseline);
  // The address's slots were all given back: a well-behaved client from it is served.
  smtp_client c(d.port(), attacker);
  EXPECT_CODE(c.reply(), 220);
  EXPECT_CODE(c.cmd("QUIT"), 221);
}

// A message that carries terminal escape sequences (ESC, C1 CSI, invalid UTF-8) in its
// HELO and body: `sluicectl queue show` prints them as visible escapes, never raw.
Test(integration_hostile, queue_show_does_not_drive_the_terminal) {
  sluiced_process d;
  START(d);
  smtp_client c(d.port());
  c.reply();
  EXPECT_CODE(c.cmd("EHLO \x1b]0;owned\x07host.example"), 250);
  EXPECT_CODE(c.cmd("MAIL FROM:<sender@example.org>"), 250);
  EXPECT_CODE(c.cmd("RCPT TO:<alice@sluice.test>"), 250);
  EXPECT_CODE(c.cmd("DATA"), 354);
  std::string r = c.cmd("Subject: \x1b[2J\x1b[31mred\r\n\r\ncaf\xC3\xA9 \xC2\x9B" "6n \xFF\xFE end\tx\r\n.");
  EXPECT_CODE(r, 250);
  std::string id = queue_id_of(r);
  auto shown = d.ctl("queue show " + id);
  cr_assert_eq(shown.status, 0, "%s", shown.output.c_str());
  for (char bad : {'\x1b', '\x07'})
    cr_assert(shown.output.find(bad) == std::string::npos, "raw 0x%02x in:\n%s", bad, shown.output.c_str());
  for (const char* raw : {"\xC2\x9B", "\xFF", "\xFE"})
    cr_assert(shown.output.find(raw) == std::string::npos, "raw %s in output", raw);
  EXPECT_HAS(shown, "HELO \\x1B]0;owned\\x07host.example");
  EXPECT_HAS(shown, "Subject: \\x1B[2J\\x1B[31mred\r\n\r\ncaf\xC3\xA9 \\xC2\\x9B6n \\xFF\\xFE end\tx\r\n");
  auto json = d.ctl("queue show --json " + id);
  cr_assert_eq(json.status, 0, "%s", json.output.c_str());
  cr_assert(json.output.find('\x1b') == std::string::npos && json.output.find("\xC2\x9B") == std::string::npos &&
                json.output.find('\xFF') == std::string::npos,
            "%s", json.output.c_str());
  EXPECT_HAS(json, "\\u001b[2J");
  EXPECT_HAS(json, "\\u009b6n \\u00ff\\u00fe");
  auto list = d.ctl("queue list");
  cr_assert(list.output.find('\x1b') == std::string::npos, "%s", list.output.c_str());
}
