// options.h: the command line of blaster send, sink and verify.
// Untrusted input: command-line arguments (validated here, errors reported, never trusted).
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "message.h"

namespace sluice::blaster {

struct send_options {
  std::string target = "127.0.0.1:2525";   // HOST:PORT, literal address or "localhost"
  unsigned sessions = 10;                  // concurrent connections
  uint64_t messages = 0;                   // total; 0 means run for `duration_s`
  double duration_s = 0;
  message_spec spec;                       // size, recipients, patterns, domains
  bool pipelining = true;
  bool bdat = false;                       // BDAT when offered (smtp::client_settings::chunking); else DATA
  bool reuse = true;                       // many messages per connection
  bool starttls = false;
  std::string auth_user, auth_password;
  double rate = 0;                         // msg/s, open loop; 0 = closed loop
  unsigned threads = 1;                    // loops
  bool lmtp = false;
  std::string helo = "blaster.test";
  bool json = false;
  int progress = -1;                       // -1: when stderr is a terminal
  std::string record;                      // sent log
  double timeout_s = 60;                   // per reply
  double warmup_s = 0;                     // latencies in the first seconds are dropped
  double interval_s = 0;                   // >0: per-interval CSV lines to `series`
  std::string series;
};

struct sink_options {
  std::string listen = "127.0.0.1:2525";
  bool lmtp = false;
  unsigned threads = 1;
  double latency_ms = 0;        // delay before every reply batch
  double data_latency_ms = 0;   // extra delay before the end-of-data reply
  double fail4 = 0;             // fraction of messages refused with 451 4.3.0
  double fail5 = 0;             // fraction refused with 554 5.6.0
  std::string inject_at = "data";  // mail | rcpt | data
  bool starttls = false;
  std::string record;
  bool json = false;
  double duration_s = 0;        // 0: until SIGINT/SIGTERM
  uint64_t max_size = 64u << 20;  // --size: announced with SIZE; larger messages get 552
  std::string hostname = "blaster-sink";
  // Faults of a destination, for testing a sender's delivery logic against them.
  unsigned greeting = 220;         // other than 220: greet with this code, then close (busy server)
  std::string stall_at;            // "" | greeting | ehlo | mail | rcpt | data | dot: hold that reply ...
  double stall_ms = -1;            // ... this long; < 0 = until the client gives up
  std::string drop_at;             // "" | mail | rcpt | data | dot | after-dot: close the connection there
  double drop_fraction = 1;        // ... at this fraction of the times that point comes (drawn each time)
  std::vector<std::string> reject_rcpt;  // globs: 550 5.1.1
  std::vector<std::string> defer_rcpt;   // globs: 451 4.2.1
  double fail_for_ms = 0;          // every MAIL gets 451 4.3.2 for this long after start
  std::string tls_cert_name;       // name of the generated certificate; "" = hostname (+ localhost)
  std::string tls_cert, tls_key;   // PEM files instead of a generated certificate
  bool tls_broken = false;         // STARTTLS answered 220, then garbage instead of a ServerHello
  bool eightbitmime = true, smtputf8 = true, pipelining = true;
  // Offer CHUNKING and BINARYMIME (RFC 3030 BDAT). Off by default: --stall-at/--drop-at name
  // DATA's replies, and a relay offered CHUNKING would send BDAT instead.
  bool chunking = false;
  bool dsn = false;                // offer DSN; record MAIL/RCPT DSN parameters as a sixth column
  unsigned max_sessions = 0;       // > 0: connections beyond this many at once get 421
  std::string connection_log;      // one line per accepted connection: unix ms, session | refused
};

struct verify_options {
  std::vector<std::string> sent;
  std::vector<std::string> received;
  bool json = false;
};

struct parsed_args {
  enum class command { none, send, sink, verify } cmd = command::none;
  send_options send;
  sink_options sink;
  verify_options verify;
  int exit_code = -1;     // >= 0: exit now with this code (help, or an error)
  std::string message;    // help text or error to print
};

parsed_args parse_args(int argc, const char* const* argv);

// Helpers exposed for tests.
bool parse_duration(const std::string& text, double& seconds);      // "30", "30s", "500ms", "5m", "1h"
bool parse_size_range(const std::string& text, size_t& lo, size_t& hi);  // "1024", "1k-64k", "2M"
bool parse_domains(const std::vector<std::string>& items, std::vector<weighted_domain>& out);  // "a.test:3"
bool parse_host_port(const std::string& text, std::string& host, uint16_t& port);
// '*' any run, '?' one character, ASCII case ignored: the sink's --reject-rcpt/--defer-rcpt.
bool glob_match(std::string_view pattern, std::string_view text);

}  // namespace sluice::blaster
