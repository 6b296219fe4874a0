// harness.h: shared by the blaster tests: the built binary as a child process, free ports,
// JSON fields of its summaries, and a blocking SMTP client for hand-made exchanges.
// Untrusted input: none (the tests' own input; what the sink sends back is checked, not trusted).
#pragma once
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "../integration/child.h"

namespace blaster_test {

inline std::string blaster_bin() { return std::string(SLUICE_BUILD_ROOT) + "/tools/blaster/blaster"; }

inline std::string temp_dir() {
  char tmpl[] = "/tmp/blaster-test-XXXXXX";
  cr_assert_not_null(mkdtemp(tmpl));
  return tmpl;
}

// Removes a test's directory when the test passes; a failed assertion leaves the
// test early (longjmp) and so keeps the logs for a look.
struct scratch {
  std::string path = temp_dir();
  ~scratch() { std::filesystem::remove_all(path); }
};

inline int free_port() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  close(fd);
  return ntohs(a.sin_port);
}

// Runs `bin` with `args`, stdout to out_file and stderr to out_file + ".err".
inline pid_t spawn_bin(const std::string& bin, const std::vector<std::string>& args, const std::string& out_file,
                const std::string& cwd = "") {
  struct stat st{};
  cr_assert_eq(stat(bin.c_str(), &st), 0, "build %s first", bin.c_str());
  std::string path = bin;
  std::vector<std::string> copy = args;
  std::vector<char*> argv;
  argv.push_back(path.data());
  for (auto& a : copy) argv.push_back(a.data());
  argv.push_back(nullptr);
  const std::string err_file = out_file + ".err";
  const pid_t parent = getpid();
  pid_t pid = fork();
  cr_assert_geq(pid, 0, "fork failed");
  if (pid == 0) {
    // fork + exec rather than posix_spawn: only a forked child can be tied to this test.
    sluice_test::end_with_parent(parent);
    int out = open(out_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int err = open(err_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (out < 0 || err < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0) std::_Exit(126);
    if (!cwd.empty() && chdir(cwd.c_str()) != 0) std::_Exit(126);
    execv(path.c_str(), argv.data());
    std::_Exit(127);
  }
  return pid;
}

inline pid_t spawn(const std::vector<std::string>& args, const std::string& out_file) {
  return spawn_bin(blaster_bin(), args, out_file);
}

inline int wait_exit(pid_t pid) {
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

inline int run(const std::vector<std::string>& args, const std::string& out_file) { return wait_exit(spawn(args, out_file)); }

inline std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline long long json_num(const std::string& json, const std::string& key) {
  size_t at = json.find("\"" + key + "\":");
  cr_assert_neq(at, std::string::npos, "no %s in %s", key.c_str(), json.c_str());
  return std::atoll(json.c_str() + at + key.size() + 3);
}

inline void wait_port(int port) {
  for (int i = 0; i < 500; ++i) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(uint16_t(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bool ok = connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    close(fd);
    if (ok) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  cr_assert_fail("nothing listens on port %d", port);
}

struct sink_proc {
  pid_t pid;
  std::string out;
  std::string stop() {
    kill(pid, SIGTERM);
    int rc = wait_exit(pid);
    cr_assert_eq(rc, 0, "sink exit %d: %s", rc, slurp(out + ".err").c_str());
    return slurp(out);
  }
};

inline sink_proc start_sink(const std::string& dir, int port, std::vector<std::string> extra) {
  std::vector<std::string> args = {"sink", "--listen", "127.0.0.1:" + std::to_string(port), "--json"};
  args.insert(args.end(), extra.begin(), extra.end());
  sink_proc s{spawn(args, dir + "/sink.json"), dir + "/sink.json"};
  wait_port(port);
  return s;
}

// Reads until needle has arrived (up to about 5 s).
inline bool read_until(int fd, std::string& buf, const std::string& needle) {
  for (int i = 0; i < 500 && buf.find(needle) == std::string::npos; ++i) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 10) <= 0) continue;
    char tmp[4096];
    ssize_t n = read(fd, tmp, sizeof tmp);
    if (n <= 0) break;
    buf.append(tmp, size_t(n));
  }
  return buf.find(needle) != std::string::npos;
}


inline int connect_loopback(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(uint16_t(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

// A blocking SMTP client on one connection, for the exchanges blaster send never makes
// (stopping mid-transaction, timing one reply, talking to a sink that misbehaves).
class smtp_peer {
 public:
  explicit smtp_peer(int port) : fd_(connect_loopback(port)) { cr_assert_geq(fd_, 0, "connect to %d", port); }
  ~smtp_peer() { close(fd_); }
  smtp_peer(const smtp_peer&) = delete;
  smtp_peer& operator=(const smtp_peer&) = delete;

  // The next complete reply, every line of it with CRLFs; "" if none came in time or
  // the connection ended first (then closed() is true).
  std::string reply(int timeout_ms = 5000) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    for (;;) {
      size_t line = 0;
      for (size_t nl; (nl = buf_.find("\r\n", line)) != std::string::npos; line = nl + 2) {
        if (nl - line >= 4 && buf_[line + 3] == ' ') {
          std::string r = buf_.substr(0, nl + 2);
          buf_.erase(0, nl + 2);
          return r;
        }
        if (nl - line == 3) {  // "250" alone ends a reply too
          std::string r = buf_.substr(0, nl + 2);
          buf_.erase(0, nl + 2);
          return r;
        }
      }
      if (eof_ || !fill(deadline)) return "";
    }
  }
  void send(const std::string& bytes) {
    cr_assert_eq(write(fd_, bytes.data(), bytes.size()), ssize_t(bytes.size()));
  }
  std::string command(const std::string& line, int timeout_ms = 5000) {
    send(line + "\r\n");
    return reply(timeout_ms);
  }
  // Waits for the end of the connection; bytes that arrive meanwhile are returned in `got`.
  bool wait_closed(int timeout_ms = 5000, std::string* got = nullptr) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    while (!eof_ && fill(deadline)) {
    }
    if (got != nullptr) *got = buf_;
    return eof_;
  }
  bool closed() const { return eof_; }
  const std::string& unread() const { return buf_; }

 private:
  // One read before the deadline: false on timeout or end of stream.
  bool fill(std::chrono::steady_clock::time_point deadline) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    pollfd p{fd_, POLLIN, 0};
    if (poll(&p, 1, int(left.count())) <= 0) return false;
    char tmp[4096];
    ssize_t n = read(fd_, tmp, sizeof tmp);
    if (n <= 0) {
      eof_ = true;
      return false;
    }
    buf_.append(tmp, size_t(n));
    return true;
  }

  int fd_;
  std::string buf_;
  bool eof_ = false;
};

}  // namespace blaster_test
