// dnsmasq.h: test fixture that runs a real dnsmasq on a loopback port with a configuration the test writes.
// Untrusted input: none (dnsmasq's log and pid file are read back only for diagnostics).
#pragma once
#include <sys/types.h>

#include <cstdint>
#include <string>
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
  const std::string& error() const { return error_; }  // why it did not start, with dnsmasq's own words
  uint16_t port() const { return port_; }
  std::string server() const { return "127.0.0.1:" + std::to_string(port_); }  // for resolver_settings
  const std::string& dir() const { return dir_; }
  std::string log() const;  // the query log so far (--log-queries)

 private:
  bool start_once(const std::vector<std::string>& extra_args);
  bool answers() const;  // a UDP query gets any reply
  void stop();

  std::string dir_, error_;
  uint16_t port_ = 0;
  pid_t pid_ = -1;
};

// A free UDP port on 127.0.0.1 with nothing listening: a DNS server that never answers.
uint16_t unused_udp_port();

}  // namespace sluice_test
