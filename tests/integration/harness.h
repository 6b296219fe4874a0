// harness.h: starts the built sluiced on loopback ports in a private directory and talks SMTP to it.
#pragma once
#include <sys/types.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace sluice::testing {

std::string build_root();
std::string source_root();
std::string sluiced_path();
std::string sluicectl_path();

// A free TCP port on 127.0.0.1 (bound once with port 0, then released).
uint16_t free_port();

// A port where every loopback address refuses connections for as long as this lives: bound on
// 0.0.0.0 without SO_REUSEADDR and never listening, so no other test's listener can take it
// (a port from free_port() may be reused by a parallel test, which would then answer).
class refusing_port {
 public:
  refusing_port();
  ~refusing_port();
  refusing_port(const refusing_port&) = delete;
  refusing_port& operator=(const refusing_port&) = delete;
  uint16_t port() const { return port_; }

 private:
  int fd_ = -1;
  uint16_t port_ = 0;
};

struct command_result {
  int status = -1;      // exit status, or 128+signal
  std::string output;   // stdout and stderr together
};
command_result run(const std::string& shell_command);

// A daemon in its own temporary directory (queue, logs, pickup, config).
class sluiced_process {
 public:
  sluiced_process();
  ~sluiced_process();  // stops the daemon and removes the directory
  sluiced_process(const sluiced_process&) = delete;
  sluiced_process& operator=(const sluiced_process&) = delete;

  // The config's [server] keys and connectors use these placeholders:
  //   @DIR@  the private directory, @PORT@  the port chosen for this daemon.
  // A config without a [dns] table gets one pointing at a loopback port where nothing
  // answers, so no test's daemon ever queries the machine's resolvers.
  // default_config() is a working file: one internet connector for everyone, a
  // relay connector for 127.0.0.2 only, authoritative domain sluice.test with
  // alice/bob/postmaster, external relay domain relay.test.
  static std::string default_config();
  void write_config(const std::string& text);
  void write_file(const std::string& relative, const std::string& content);
  // Starts sluiced and waits until the port accepts connections. False on failure
  // (the daemon's stderr is in log()).
  bool start();
  void stop();          // SIGTERM, wait
  void kill9();         // SIGKILL, wait
  void signal(int sig);  // e.g. SIGHUP: reload
  // NAME=VALUE in the environment of the daemons start() runs from now on, not the test's
  // (LD_PRELOAD of a test shim, allocator options).
  void set_env(std::string name, std::string value);
  bool running() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }
  long rss_kib() const;  // the daemon's resident memory, from /proc
  std::string log() const;  // the daemon's stderr so far

  const std::string& dir() const { return dir_; }
  uint16_t port() const { return port_; }
  std::string queue_dir() const { return dir_ + "/queue"; }
  // sluicectl with --queue-dir of this daemon
  command_result ctl(const std::string& args) const;

 private:
  std::string dir_;
  uint16_t port_;
  pid_t pid_ = -1;
  std::vector<std::pair<std::string, std::string>> env_;
};

// A blocking line-oriented SMTP client for transcripts (a test's telnet).
class smtp_client {
 public:
  // Connects to 127.0.0.1:port, optionally from a given local address (127.0.0.2 ...).
  explicit smtp_client(uint16_t port, const std::string& source = "");
  ~smtp_client();
  bool connected() const { return fd_ >= 0; }
  void send_raw(const std::string& bytes);
  void send(const std::string& line) { send_raw(line + "\r\n"); }
  // One complete (possibly multi-line) reply; "" on timeout or close.
  std::string reply(int timeout_ms = 5000);
  // send + reply
  std::string cmd(const std::string& line) {
    send(line);
    return reply();
  }
  // Reads the greeting, sends EHLO and MAIL FROM; returns the MAIL reply.
  std::string start_transaction(const std::string& from = "sender@example.org");
  // True if the server closed the connection (read returns 0) within timeout.
  bool closed_by_peer(int timeout_ms = 3000);
  // Sends without blocking; returns how many bytes the kernel took.
  size_t send_nonblocking(const std::string& bytes);

 private:
  int fd_ = -1;
  std::string buffer_;
};

// The reply code of a reply text, or 0.
int code_of(const std::string& reply);
// The queue id in "250 2.6.0 <ID> Queued mail for delivery", or "".
std::string queue_id_of(const std::string& reply);

}  // namespace sluice::testing
