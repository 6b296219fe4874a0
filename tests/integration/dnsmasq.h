// dnsmasq.h: test fixture that runs a real dnsmasq on a loopback port with a configuration the test writes.
// Untrusted input: none (dnsmasq's log and pid file are read back only for diagnostics).
#pragma once
#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

namespace sluice_test {

// Starts `dnsmasq -k` on 127.0.0.1:<free port> with --no-resolv --no-hosts and `config`
// (dnsmasq.conf lines: mx-host=, host-record=, local=, server=, ...) in a private temp
// directory, and waits until it answers a query. dnsmasq dies with the test's thread
// (PR_SET_PDEATHSIG) and is killed by the destructor, which also removes the directory.
class dnsmasq {
 public:
  explicit dnsmasq(const std::string& config, const std::vector<std::string>& extra_args = {});
  ~dnsmasq();
  dnsmasq(const dnsmasq&) = delete;
  dnsmasq& operator=(const dnsmasq&) = delete;

  bool ok() const { return pid_ > 0; }
  // The server goes away (SIGTERM, waited for): queries get ICMP port unreachable.
  void stop();
  // Starts again on the same port (after stop(), or stopping it first), with `config` in
  // place of the old one unless it is empty: a zone that changes, or a server that comes back.
  bool restart(const std::string& config = "");
  // SIGSTOP / SIGCONT: the socket stays bound and queries pile up unanswered (a server that
  // times out); resumed, dnsmasq answers what is still in its socket buffer.
  void pause();
  void resume();
  // One UDP query of `type` (1 A, 15 MX, ...) for `name`, as a resolver without EDNS sends
  // it: the reply's RCODE and TC bit and how many answers it carried; rcode -1 on no reply.
  struct reply_info {
    int rcode = -1;
    bool truncated = false;
    int answers = 0;
  };
  reply_info query(const std::string& name, int type, int timeout_ms = 2000) const;
  const std::string& error() const { return error_; }  // why it did not start, with dnsmasq's own words
  uint16_t port() const { return port_; }
  std::string server() const { return "127.0.0.1:" + std::to_string(port_); }  // for resolver_settings
  const std::string& dir() const { return dir_; }
  std::string log() const;  // the query log so far (--log-queries)

 private:
  bool start_once(uint16_t port);  // 0: a free port
  bool answers() const;  // a UDP query gets any reply

  std::string dir_, error_;
  std::vector<std::string> extra_args_;
  uint16_t port_ = 0;
  pid_t pid_ = -1;
};

// A name server that answers every UDP query with SERVFAIL, on 127.0.0.1:`port` (e.g. a
// stopped dnsmasq's, so that dnsmasq can take the port back with restart()): a domain's
// broken authoritative server, for a dnsmasq that forwards to it (server=/domain/...).
// dnsmasq itself never says SERVFAIL for an upstream that is down; it lets the query time out.
// A thread of the test answers until the destructor, which closes the socket.
class servfail_server {
 public:
  explicit servfail_server(uint16_t port);
  ~servfail_server();
  servfail_server(const servfail_server&) = delete;
  servfail_server& operator=(const servfail_server&) = delete;
  bool ok() const { return fd_ >= 0; }

 private:
  int fd_ = -1;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// A free UDP port on 127.0.0.1 with nothing listening: a DNS server that never answers.
uint16_t unused_udp_port();

}  // namespace sluice_test
