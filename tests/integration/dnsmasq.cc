// dnsmasq.cc: starts, probes and stops a private dnsmasq for DNS tests.
// Untrusted input: none (replies read by query() come from the test's own dnsmasq).
#include "dnsmasq.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "child.h"

namespace fs = std::filesystem;

namespace sluice_test {

namespace {

sockaddr_in loopback(uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return a;
}

std::string read_all(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace

uint16_t unused_udp_port() {
  // The kernel picks a port nobody holds; after close nothing answers on it.
  int fd = ::socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in a = loopback(0);
  socklen_t len = sizeof a;
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

servfail_server::servfail_server(uint16_t port) {
  // CLOEXEC: the daemons the test starts later must not inherit the port and keep it bound.
  fd_ = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_in a = loopback(port);
  if (fd_ < 0 || ::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    return;
  }
  thread_ = std::thread([this] {
    unsigned char buf[4096];
    while (!stop_.load()) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 50) != 1) continue;
      sockaddr_in from{};
      socklen_t len = sizeof from;
      const ssize_t n = ::recvfrom(fd_, buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&from), &len);
      if (n < 12) continue;
      // The query itself comes back as the reply: QR and RA set, RCODE 2, the question kept.
      buf[2] |= 0x80;
      buf[3] = static_cast<unsigned char>((buf[3] & 0x70) | 0x80 | 2);
      ::sendto(fd_, buf, static_cast<std::size_t>(n), 0, reinterpret_cast<sockaddr*>(&from), len);
    }
  });
}

servfail_server::~servfail_server() {
  stop_.store(true);
  if (thread_.joinable()) thread_.join();
  if (fd_ >= 0) ::close(fd_);
}

dnsmasq::dnsmasq(const std::string& config, const std::vector<std::string>& extra_args) : extra_args_(extra_args) {
  char tmpl[] = "/tmp/sluice-dnsmasq-XXXXXX";
  if (::mkdtemp(tmpl) == nullptr) {
    error_ = "mkdtemp failed";
    return;
  }
  dir_ = tmpl;
  std::ofstream(dir_ + "/dnsmasq.conf") << config << "\n";
  // Another process may take the port between our probe and dnsmasq's bind: try again.
  for (int attempt = 0; attempt < 5 && !start_once(0); ++attempt) {
  }
}

bool dnsmasq::restart(const std::string& config) {
  stop();
  if (!config.empty()) std::ofstream(dir_ + "/dnsmasq.conf") << config << "\n";
  // The port was ours a moment ago; a process that took it meanwhile would have to go.
  for (int attempt = 0; attempt < 5; ++attempt) {
    if (start_once(port_)) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return false;
}

void dnsmasq::pause() {
  if (pid_ > 0) ::kill(pid_, SIGSTOP);
}

void dnsmasq::resume() {
  if (pid_ > 0) ::kill(pid_, SIGCONT);
}

dnsmasq::reply_info dnsmasq::query(const std::string& name, int type, int timeout_ms) const {
  // Header: id 0x4242, RD, one question; then the name as labels, QTYPE, QCLASS IN.
  std::string q = {0x42, 0x42, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00};
  std::size_t start = 0;
  while (start < name.size()) {
    std::size_t dot = name.find('.', start);
    if (dot == std::string::npos) dot = name.size();
    q += static_cast<char>(dot - start);
    q += name.substr(start, dot - start);
    start = dot + 1;
  }
  q += '\0';
  q += {static_cast<char>(type >> 8), static_cast<char>(type & 0xff), 0x00, 0x01};
  reply_info r;
  int fd = ::socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in a = loopback(port_);
  if (::sendto(fd, q.data(), q.size(), 0, reinterpret_cast<sockaddr*>(&a), sizeof a) == static_cast<ssize_t>(q.size())) {
    pollfd p{fd, POLLIN, 0};
    unsigned char reply[65536];
    ssize_t n = ::poll(&p, 1, timeout_ms) == 1 ? ::recv(fd, reply, sizeof reply, 0) : -1;
    if (n >= 12 && reply[0] == 0x42 && reply[1] == 0x42) {
      r.truncated = (reply[2] & 0x02) != 0;
      r.rcode = reply[3] & 0x0f;
      r.answers = reply[6] << 8 | reply[7];
    }
  }
  ::close(fd);
  return r;
}

dnsmasq::~dnsmasq() {
  stop();
  if (!dir_.empty() && std::getenv("SLUICE_KEEP_TEST_DIRS") == nullptr) {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
}

std::string dnsmasq::log() const { return read_all(dir_ + "/dnsmasq.log"); }

bool dnsmasq::start_once(uint16_t port) {
  port_ = port != 0 ? port : unused_udp_port();
  // dnsmasq drops root for "nobody" unless told otherwise; as another user it cannot
  // switch at all. Naming the current user and group works both ways.
  const passwd* pw = ::getpwuid(::getuid());
  const group* gr = ::getgrgid(::getgid());
  std::vector<std::string> args = {
      "dnsmasq", "--keep-in-foreground", "--port=" + std::to_string(port_), "--listen-address=127.0.0.1",
      "--bind-interfaces", "--no-resolv", "--no-hosts", "--conf-file=" + dir_ + "/dnsmasq.conf",
      "--pid-file=" + dir_ + "/dnsmasq.pid", "--log-facility=" + dir_ + "/dnsmasq.log", "--log-queries",
      "--user=" + std::string(pw != nullptr ? pw->pw_name : "root"),
      "--group=" + std::string(gr != nullptr ? gr->gr_name : "root")};
  args.insert(args.end(), extra_args_.begin(), extra_args_.end());
  const std::string stderr_path = dir_ + "/dnsmasq.stderr";
  pid_ = spawn_peer(std::move(args), stderr_path);
  if (pid_ < 0) {
    error_ = "fork failed";
    return false;
  }
  int status = 0;
  if (wait_ready(pid_, [this] { return answers(); }, status)) return true;
  if (status >= 0) {
    pid_ = -1;
    error_ = "dnsmasq exited (status " + std::to_string(status) + "): " + read_all(stderr_path) + log();
    return false;
  }
  error_ = "dnsmasq did not answer within 10 s: " + read_all(stderr_path);
  stop();
  return false;
}

bool dnsmasq::answers() const {
  // A query for "probe." type A; any reply, even REFUSED, means dnsmasq is serving.
  static const unsigned char query[] = {0x12, 0x34, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
                                        5,    'p',  'r',  'o',  'b',  'e',  0,    0x00, 0x01, 0x00, 0x01};
  int fd = ::socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in a = loopback(port_);
  bool ok = false;
  if (::sendto(fd, query, sizeof query, 0, reinterpret_cast<sockaddr*>(&a), sizeof a) == sizeof query) {
    pollfd p{fd, POLLIN, 0};
    unsigned char reply[512];
    ok = ::poll(&p, 1, 100) == 1 && ::recv(fd, reply, sizeof reply, 0) >= 12 && reply[0] == 0x12 && reply[1] == 0x34;
  }
  ::close(fd);
  return ok;
}

void dnsmasq::stop() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGCONT);  // a paused dnsmasq takes its SIGTERM only once it runs
  ::kill(pid_, SIGTERM);
  int status = 0;
  ::waitpid(pid_, &status, 0);
  pid_ = -1;
}

}  // namespace sluice_test
