// dovecot.cc: writes the configuration of, starts, probes and stops a private Dovecot LMTP server for delivery tests.
// Untrusted input: none.
#include "dovecot.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>
#include <tuple>

#include "child.h"

namespace fs = std::filesystem;

namespace sluice_test {

namespace {

// Dovecot will not write mail as root; as root the mailboxes belong to this uid and gid,
// which need no passwd entry (Dovecot only setuid()s to them).
constexpr unsigned root_mail_id = 64123;

std::string read_all(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

uint16_t free_tcp_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

bool tcp_accepts(uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  ::close(fd);
  return ok;
}

bool unix_accepts(const std::string& path) {
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  if (path.size() >= sizeof a.sun_path) return false;
  std::memcpy(a.sun_path, path.data(), path.size());
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  ::close(fd);
  return ok;
}

// Waits for `pid` up to `ms`; true if it was reaped.
bool reap(pid_t pid, int ms) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
  do {
    int status = 0;
    pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid || (r < 0 && errno == ECHILD)) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  } while (std::chrono::steady_clock::now() < deadline);
  return false;
}

// Maildir names start "<seconds>.M<microseconds>P<pid>...": delivery order.
std::tuple<long long, long long, std::string> delivery_order(const std::string& name) {
  char* end = nullptr;
  long long sec = std::strtoll(name.c_str(), &end, 10);
  long long usec = 0;
  if (end != nullptr && end[0] == '.' && end[1] == 'M') usec = std::strtoll(end + 2, nullptr, 10);
  return {sec, usec, name};
}

}  // namespace

dovecot::dovecot(const std::vector<std::string>& users) {
  char tmpl[] = "/tmp/sluice-dovecot-XXXXXX";
  if (::mkdtemp(tmpl) == nullptr) {
    error_ = "mkdtemp failed";
    return;
  }
  dir_ = tmpl;
  // Another process may take the port between our probe and Dovecot's bind: try again.
  for (int attempt = 0; attempt < 5 && !start_once(users); ++attempt) {
  }
  if (!ok()) std::fprintf(stderr, "dovecot fixture: %s\n", error_.c_str());
}

dovecot::~dovecot() {
  stop();
  if (!dir_.empty() && std::getenv("SLUICE_KEEP_TEST_DIRS") == nullptr) {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
}

std::string dovecot::log() const { return read_all(dir_ + "/dovecot.log"); }

std::string dovecot::maildir(const std::string& user) const { return dir_ + "/home/" + user + "/Maildir"; }

std::vector<std::string> dovecot::messages(const std::string& user) const {
  std::vector<std::tuple<long long, long long, std::string>> names;
  std::vector<std::string> paths;
  for (const char* sub : {"/new", "/cur"}) {
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(maildir(user) + sub, ec))
      if (e.is_regular_file()) names.push_back(delivery_order(e.path().filename().string()));
  }
  std::sort(names.begin(), names.end());
  std::vector<std::string> out;
  for (const auto& [sec, usec, name] : names) {
    std::string path = maildir(user) + "/new/" + name;
    if (!fs::exists(path)) path = maildir(user) + "/cur/" + name;
    out.push_back(read_all(path));
  }
  return out;
}

bool dovecot::start_once(const std::vector<std::string>& users) {
  port_ = free_tcp_port();
  const bool root = ::geteuid() == 0;
  const passwd* pw = ::getpwuid(::geteuid());
  const group* gr = ::getgrgid(::getegid());
  const std::string internal_user = pw != nullptr ? pw->pw_name : "root";
  const std::string internal_group = gr != nullptr ? gr->gr_name : "root";
  const unsigned mail_uid = root ? root_mail_id : ::geteuid(), mail_gid = root ? root_mail_id : ::getegid();

  std::error_code ec;
  // mkdtemp's 0700 would keep the mail uid out of the homes below.
  if (root) ::chmod(dir_.c_str(), 0711);
  fs::create_directories(dir_ + "/home", ec);
  std::ofstream passwd_file(dir_ + "/users");
  for (const auto& u : users) {
    const std::string home = dir_ + "/home/" + u;
    fs::create_directories(home, ec);
    if (root) ::chown(home.c_str(), mail_uid, mail_gid);
    // name:password:uid:gid:gecos:home:shell: the uid and gid come from mail_uid/mail_gid.
    passwd_file << u << ":::::" << home << "::\n";
  }
  passwd_file.close();
  if (root) ::chown((dir_ + "/home").c_str(), mail_uid, mail_gid);

  std::ofstream conf(dir_ + "/dovecot.conf");
  conf << "# A private LMTP server for one sluice test; nothing outside " << dir_ << " is used.\n"
       << "instance_name = sluice-test-" << fs::path(dir_).filename().string() << "\n"
       << "base_dir = " << dir_ << "/run\n"
       << "state_dir = " << dir_ << "/state\n"
       << "log_path = " << dir_ << "/dovecot.log\n"
       << "protocols = lmtp\n"
       << "listen = 127.0.0.1\n"
       << "ssl = no\n"
       // Its own processes run as whoever runs the test (root in CI): no dovecot/dovenull users.
       << "default_internal_user = " << internal_user << "\n"
       << "default_internal_group = " << internal_group << "\n"
       << "default_login_user = " << internal_user << "\n"
       << "first_valid_uid = " << std::min(mail_uid, ::geteuid()) << "\n"
       << "first_valid_gid = " << std::min(mail_gid, ::getegid()) << "\n"
       << "mail_uid = " << mail_uid << "\n"
       << "mail_gid = " << mail_gid << "\n"
       << "mail_location = maildir:~/Maildir\n"
       // The tests compare the stored message with what was sent: Dovecot adds only Return-Path.
       << "lmtp_add_received_header = no\n"
       << "passdb {\n  driver = passwd-file\n  args = username_format=%n " << dir_ << "/users\n}\n"
       << "userdb {\n  driver = passwd-file\n  args = username_format=%n " << dir_ << "/users\n}\n"
       << "service lmtp {\n"
       << "  inet_listener lmtp {\n    address = 127.0.0.1\n    port = " << port_ << "\n  }\n"
       << "  unix_listener " << lmtp_socket() << " {\n    mode = 0600\n  }\n"
       << "}\n";
  conf.close();

  const std::string conf_path = dir_ + "/dovecot.conf", stderr_path = dir_ + "/dovecot.stderr";
  // Its own process group: Dovecot's children join it, so stop() ends them all.
  pid_ = spawn_peer({"dovecot", "-F", "-c", conf_path}, stderr_path, true);
  if (pid_ < 0) {
    error_ = "fork failed";
    return false;
  }
  int status = 0;
  if (wait_ready(pid_, [&] { return tcp_accepts(port_) && unix_accepts(lmtp_socket()); }, status)) return true;
  if (status >= 0) {
    pid_ = -1;
    error_ = "dovecot exited (status " + std::to_string(status) + "): " + read_all(stderr_path) + log();
    return false;
  }
  error_ = "dovecot did not accept on 127.0.0.1:" + std::to_string(port_) + " and " + lmtp_socket() +
           " within 10 s: " + read_all(stderr_path) + log();
  stop();
  return false;
}

void dovecot::stop() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGTERM);
  if (!reap(pid_, 5000)) {
    ::kill(pid_, SIGKILL);
    reap(pid_, 5000);
  }
  // Children that outlived their master (they normally follow it within moments).
  ::kill(-pid_, SIGKILL);
  pid_ = -1;
}

void dovecot::kill() {
  if (pid_ <= 0) return;
  ::kill(-pid_, SIGKILL);
  reap(pid_, 5000);
  pid_ = -1;
}

}  // namespace sluice_test
