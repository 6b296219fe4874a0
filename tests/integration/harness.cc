// harness.cc: process control, temporary directories and a raw SMTP client for integration tests.
#include "child.h"
#include "harness.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

namespace sluice::testing {

namespace fs = std::filesystem;

std::string build_root() { return SLUICE_BUILD_ROOT; }
std::string source_root() { return SLUICE_SOURCE_ROOT; }
std::string sluiced_path() { return build_root() + "/src/main/sluiced"; }
std::string sluicectl_path() { return build_root() + "/tools/sluicectl/sluicectl"; }

uint16_t free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

refusing_port::refusing_port() : fd_(::socket(AF_INET, SOCK_STREAM, 0)) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_ANY);
  socklen_t len = sizeof a;
  if (fd_ >= 0 && ::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
      ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len) == 0)
    port_ = ntohs(a.sin_port);
}

refusing_port::~refusing_port() {
  if (fd_ >= 0) ::close(fd_);
}

command_result run(const std::string& shell_command) {
  command_result r;
  std::string cmd = shell_command + " 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  if (p == nullptr) return r;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) r.output.append(buf, n);
  int status = ::pclose(p);
  r.status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return r;
}

sluiced_process::sluiced_process() : port_(free_port()) {
  char tmpl[] = "/tmp/sluice-test-XXXXXX";
  dir_ = ::mkdtemp(tmpl);
}

sluiced_process::~sluiced_process() {
  if (pid_ > 0) kill9();
  if (std::getenv("SLUICE_KEEP_TEST_DIRS") == nullptr) {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
}

std::string sluiced_process::default_config() {
  return R"([server]
hostname = "mx.sluice.test"
workers = 2
queue_dir = "@DIR@/queue"
log_dir = "@DIR@/log"
pickup_dir = "@DIR@/pickup"
pickup_interval_ms = 100
max_message_size = "1M"
map_size = "256M"

[[accepted_domain]]
name = "sluice.test"
type = "authoritative"
recipients = "recipients.txt"

[[accepted_domain]]
name = "relay.test"
type = "external_relay"

[[receive_connector]]
name = "Internet"
type = "internet"
bindings = ["127.0.0.1:@PORT@"]
max_recipients = 5
protocol_log = true
timeouts = { command_s = 30, data_s = 30, connection_s = 60 }

[[receive_connector]]
name = "Relay"
type = "enterprise"
bindings = ["127.0.0.1:@PORT@"]
remote_ranges = ["127.0.0.2"]
permissions = { anonymous = true, relay = true }
protocol_log = true
)";
}

void sluiced_process::write_file(const std::string& relative, const std::string& content) {
  fs::path p = fs::path(dir_) / relative;
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary) << content;
}

void sluiced_process::write_config(const std::string& text) {
  std::string t = text;
  for (auto [from, to] : {std::pair<std::string, std::string>{"@DIR@", dir_}, {"@PORT@", std::to_string(port_)}}) {
    for (size_t pos; (pos = t.find(from)) != std::string::npos;) t.replace(pos, from.size(), to);
  }
  // A daemon under test never asks the machine's resolvers (tests talk to loopback only):
  // without a [dns] table of the test's own, lookups go to a loopback port where nothing
  // answers, so remote next hops defer and their mail stays queued.
  if (t.find("\n[dns]") == std::string::npos && t.rfind("[dns]", 0) != 0)
    t += "\n[dns]\nservers = [\"127.0.0.1:9\"]\ntimeout_ms = 200\ntries = 1\n";
  // Daemons run in parallel: none takes the default metrics port unless its test asks.
  if (t.find("\n[metrics]") == std::string::npos && t.rfind("[metrics]", 0) != 0) t += "\n[metrics]\nlisten = \"\"\n";
  write_file("sluice.toml", t);
  if (!fs::exists(dir_ + "/recipients.txt"))
    write_file("recipients.txt", "alice@sluice.test\nbob@sluice.test\npostmaster@sluice.test\n");
}

bool sluiced_process::start() {
  if (!fs::exists(dir_ + "/sluice.toml")) write_config(default_config());
  const pid_t parent = ::getpid();
  pid_ = ::fork();
  if (pid_ == 0) {
    sluice_test::end_with_parent(parent);
    int out = ::open((dir_ + "/sluiced.log").c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    ::dup2(out, 1);
    ::dup2(out, 2);
    ::chdir(dir_.c_str());
    for (const auto& [name, value] : env_) ::setenv(name.c_str(), value.c_str(), 1);
    // Test daemons run as whoever runs the tests (root in CI): their files live in a
    // private directory only that user may enter. A config naming its user tests the drop.
    ::execl(sluiced_path().c_str(), "sluiced", "--config", (dir_ + "/sluice.toml").c_str(), "--allow-root", nullptr);
    std::_Exit(127);
  }
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(15);
  while (std::chrono::steady_clock::now() < deadline) {
    int status;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return false;
    }
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port_);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    ::close(fd);
    if (ok) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

void sluiced_process::stop() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGTERM);
  int status;
  ::waitpid(pid_, &status, 0);
  pid_ = -1;
}

void sluiced_process::kill9() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  int status;
  ::waitpid(pid_, &status, 0);
  pid_ = -1;
}

long sluiced_process::rss_kib() const {
  std::ifstream in("/proc/" + std::to_string(pid_) + "/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::atol(line.c_str() + 6);
  return -1;
}

void sluiced_process::set_env(std::string name, std::string value) {
  env_.emplace_back(std::move(name), std::move(value));
}

void sluiced_process::signal(int sig) {
  if (pid_ > 0) ::kill(pid_, sig);
}

std::string sluiced_process::log() const {
  std::ifstream in(dir_ + "/sluiced.log");
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

command_result sluiced_process::ctl(const std::string& args) const {
  return run(sluicectl_path() + " " + args + " --queue-dir " + queue_dir());
}

smtp_client::smtp_client(uint16_t port, const std::string& source) {
  fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
  if (!source.empty()) {
    sockaddr_in local{};
    local.sin_family = AF_INET;
    ::inet_pton(AF_INET, source.c_str(), &local.sin_addr);
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&local), sizeof local) != 0) {
      ::close(fd_);
      fd_ = -1;
      return;
    }
  }
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd_);
    fd_ = -1;
  }
}

smtp_client::~smtp_client() {
  if (fd_ >= 0) ::close(fd_);
}

void smtp_client::send_raw(const std::string& bytes) {
  size_t off = 0;
  while (fd_ >= 0 && off < bytes.size()) {
    ssize_t n = ::send(fd_, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
    if (n <= 0) return;
    off += static_cast<size_t>(n);
  }
}

size_t smtp_client::send_nonblocking(const std::string& bytes) {
  size_t off = 0;
  while (fd_ >= 0 && off < bytes.size()) {
    ssize_t n = ::send(fd_, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n <= 0) break;
    off += static_cast<size_t>(n);
  }
  return off;
}

std::string smtp_client::reply(int timeout_ms) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    // A complete reply ends with a line "ddd " (or "ddd" alone) followed by CRLF.
    size_t start = 0;
    for (;;) {
      size_t eol = buffer_.find("\r\n", start);
      if (eol == std::string::npos) break;
      if (eol - start >= 3 && (eol - start == 3 || buffer_[start + 3] == ' ')) {
        std::string r = buffer_.substr(0, eol + 2);
        buffer_.erase(0, eol + 2);
        return r;
      }
      start = eol + 2;
    }
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0 || fd_ < 0) return "";
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) return "";
    char buf[8192];
    ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    if (n <= 0) return "";
    buffer_.append(buf, static_cast<size_t>(n));
  }
}

std::string smtp_client::start_transaction(const std::string& from) {
  reply();
  cmd("EHLO client.example");
  return cmd("MAIL FROM:<" + from + ">");
}

bool smtp_client::closed_by_peer(int timeout_ms) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (fd_ >= 0) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) return false;
    char buf[4096];
    ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    if (n == 0) return true;
    if (n < 0) return true;
    buffer_.append(buf, static_cast<size_t>(n));
  }
  return true;
}

int code_of(const std::string& reply) {
  if (reply.size() < 3) return 0;
  return std::atoi(reply.substr(0, 3).c_str());
}

std::string queue_id_of(const std::string& reply) {
  auto lt = reply.find("2.6.0 <");
  if (lt == std::string::npos) return "";
  lt += 7;
  auto gt = reply.find('>', lt);
  return gt == std::string::npos ? "" : reply.substr(lt, gt - lt);
}

}  // namespace sluice::testing
