// options_test.cc: blaster command-line parsing accepts valid invocations and rejects invalid ones.
#include <criterion/criterion.h>

#include <string>
#include <vector>

#include "options.h"

using namespace sluice::blaster;

namespace {
parsed_args parse(std::vector<std::string> args) {
  args.insert(args.begin(), "blaster");
  std::vector<const char*> argv;
  for (auto& a : args) argv.push_back(a.c_str());
  return parse_args(int(argv.size()), argv.data());
}
}  // namespace

Test(blaster_options, send_full_set) {
  auto a = parse({"send", "--target", "127.0.0.1:2525", "--sessions", "50", "--messages", "1000", "--size", "1k-4k",
                  "--rcpts", "3", "--from", "s{n}@a.test", "--to", "u{n}.{r}@{domain}", "--domain", "x.test:3,y.test",
                  "--pipelining", "off", "--one-per-connection", "--auth", "user:pa:ss", "--rate", "500",
                  "--threads", "4", "--record", "/tmp/sent.log", "--json"});
  cr_assert_eq(a.exit_code, -1, "%s", a.message.c_str());
  cr_assert(a.cmd == parsed_args::command::send);
  const auto& o = a.send;
  cr_assert_eq(o.sessions, 50u);
  cr_assert_eq(o.messages, 1000u);
  cr_assert_eq(o.spec.size_min, 1024u);
  cr_assert_eq(o.spec.size_max, 4096u);
  cr_assert_eq(o.spec.rcpts, 3u);
  cr_assert_eq(o.spec.domains.size(), 2u);
  cr_assert_eq(o.spec.domains[0].weight, 3u);
  cr_assert_eq(o.spec.domains[1].weight, 1u);
  std::string d1 = o.spec.domains[1].name;
  cr_assert_str_eq(d1.c_str(), "y.test");
  cr_assert(!o.pipelining);
  cr_assert(!o.reuse);
  std::string pass = o.auth_password;
  cr_assert_str_eq(pass.c_str(), "pa:ss");
  cr_assert_eq(o.rate, 500.0);
  cr_assert_eq(o.threads, 4u);
  cr_assert(o.json);
}

Test(blaster_options, send_duration_and_defaults) {
  auto a = parse({"send", "--target", "[::1]:25", "--duration", "2m"});
  cr_assert_eq(a.exit_code, -1, "%s", a.message.c_str());
  cr_assert_eq(a.send.duration_s, 120.0);
  cr_assert_eq(a.send.messages, 0u);
  cr_assert(a.send.pipelining && a.send.reuse);
  cr_assert_eq(a.send.spec.size_min, 1024u);
  cr_assert_eq(a.send.rate, 0.0);
}

Test(blaster_options, send_rejects_bad_input) {
  const std::vector<std::vector<std::string>> bad = {
      {"send", "--messages", "10"},                                              // no target
      {"send", "--target", "127.0.0.1", "--messages", "10"},                     // no port
      {"send", "--target", "127.0.0.1:99999", "--messages", "10"},               // port range
      {"send", "--target", "127.0.0.1:25"},                                      // neither count nor time
      {"send", "--target", "127.0.0.1:25", "--messages", "1", "--duration", "5s"},
      {"send", "--target", "127.0.0.1:25", "--messages", "1", "--size", "4k-1k"},
      {"send", "--target", "127.0.0.1:25", "--messages", "1", "--size", "big"},
      {"send", "--target", "127.0.0.1:25", "--duration", "5 parsecs"},
      {"send", "--target", "127.0.0.1:25", "--messages", "1", "--pipelining", "maybe"},
      {"send", "--target", "127.0.0.1:25", "--messages", "1", "--auth", "nocolon"},
      {"send", "--target", "127.0.0.1:25", "--messages", "1", "--reuse", "--one-per-connection"},
      {"send", "--target", "127.0.0.1:25", "--messages", "1", "--sessions", "0"},
      {"send", "--target", "127.0.0.1:25", "--messages", "1", "--rate", "-5"},
      {"send", "--target", "127.0.0.1:25", "--messages", "1", "--domain", "a.test:0"},
      {"send", "--target", "127.0.0.1:25", "--messages", "1", "--bogus"},
      {},
  };
  for (const auto& args : bad) {
    auto a = parse(args);
    std::string joined;
    for (const auto& s : args) joined += s + " ";
    cr_assert_gt(a.exit_code, 0, "accepted: %s", joined.c_str());
    cr_assert(!a.message.empty());
  }
}

Test(blaster_options, sink_and_verify) {
  auto a = parse({"sink", "--listen", "127.0.0.1:0", "--lmtp", "--fail-4xx", "0.1", "--fail-5xx", "0.05",
                  "--fail-at", "rcpt", "--latency", "2", "--record", "/tmp/r.log"});
  cr_assert_eq(a.exit_code, -1, "%s", a.message.c_str());
  cr_assert(a.cmd == parsed_args::command::sink);
  cr_assert(a.sink.lmtp);
  cr_assert_eq(a.sink.fail4, 0.1);
  std::string at = a.sink.inject_at;
  cr_assert_str_eq(at.c_str(), "rcpt");
  cr_assert_gt(parse({"sink", "--listen", "127.0.0.1:1", "--fail-4xx", "0.7", "--fail-5xx", "0.7"}).exit_code, 0);
  cr_assert_gt(parse({"sink", "--listen", "127.0.0.1:1", "--fail-4xx", "2"}).exit_code, 0);
  cr_assert_gt(parse({"sink", "--listen", "127.0.0.1:1", "--fail-at", "quit"}).exit_code, 0);
  cr_assert_gt(parse({"sink"}).exit_code, 0);

  auto v = parse({"verify", "--sent", "s.log", "--received", "r1.log", "r2.log"});
  cr_assert_eq(v.exit_code, -1, "%s", v.message.c_str());
  cr_assert_eq(v.verify.received.size(), 2u);
  cr_assert_gt(parse({"verify", "--sent", "s.log"}).exit_code, 0);
}

Test(blaster_options, helpers) {
  double s = 0;
  cr_assert(parse_duration("500ms", s) && s == 0.5);
  cr_assert(parse_duration("1h", s) && s == 3600);
  cr_assert(!parse_duration("", s));
  cr_assert(!parse_duration("10x", s));
  size_t lo = 0, hi = 0;
  cr_assert(parse_size_range("2M", lo, hi) && lo == 2u << 20 && hi == lo);
  cr_assert(!parse_size_range("-5", lo, hi));
  std::string host;
  uint16_t port = 0;
  cr_assert(parse_host_port("[::1]:2525", host, port) && host == "::1" && port == 2525);
  cr_assert(!parse_host_port(":25", host, port));
}

Test(blaster_options, sink_fault_options) {
  auto a = parse({"sink", "--listen", "127.0.0.1:2526", "--greeting", "421", "--stall-at", "rcpt", "--stall-ms", "250",
                  "--drop-at", "after-dot", "--reject-rcpt", "a*@x", "--reject-rcpt", "b@y", "--defer-rcpt", "c?@z",
                  "--fail-for-ms", "1500", "--tls-cert-name", "mx.test", "--no-8bitmime", "--no-smtputf8",
                  "--no-pipelining", "--size", "2M", "--dsn", "--max-sessions", "7", "--drop-fraction", "0.25",
                  "--connection-log", "c.log"});
  cr_assert_eq(a.exit_code, -1, "%s", a.message.c_str());
  const auto& o = a.sink;
  cr_assert_eq(o.greeting, 421u);
  cr_assert(o.stall_at == "rcpt" && o.stall_ms == 250);
  cr_assert(o.drop_at == "after-dot");
  cr_assert(o.reject_rcpt.size() == 2 && o.reject_rcpt[1] == "b@y" && o.defer_rcpt.size() == 1);
  cr_assert_eq(o.fail_for_ms, 1500);
  cr_assert(o.tls_cert_name == "mx.test" && o.starttls, "a certificate name means STARTTLS is offered");
  cr_assert(!o.eightbitmime && !o.smtputf8 && !o.pipelining && o.dsn);
  cr_assert_eq(o.max_size, 2u << 20);
  cr_assert_eq(o.max_sessions, 7u);
  cr_assert(o.drop_fraction == 0.25 && o.connection_log == "c.log");
  auto d = parse({"sink", "--listen", "127.0.0.1:2526"});
  cr_assert(d.sink.greeting == 220 && d.sink.stall_at.empty() && d.sink.stall_ms < 0 && d.sink.drop_at.empty());
  cr_assert(d.sink.eightbitmime && d.sink.smtputf8 && d.sink.pipelining && !d.sink.dsn && !d.sink.starttls);
  cr_assert_eq(d.sink.max_sessions, 0u);
  cr_assert(d.sink.drop_fraction == 1 && d.sink.connection_log.empty());
}

Test(blaster_options, sink_fault_option_errors) {
  auto bad = [](std::vector<std::string> extra) {
    std::vector<std::string> args = {"sink", "--listen", "127.0.0.1:2526"};
    args.insert(args.end(), extra.begin(), extra.end());
    return parse(args).exit_code != -1;
  };
  cr_assert(bad({"--greeting", "250"}));
  cr_assert(bad({"--greeting", "99"}));
  cr_assert(bad({"--stall-at", "quit"}));
  cr_assert(bad({"--stall-ms", "100"}), "--stall-ms needs --stall-at");
  cr_assert(bad({"--stall-at", "mail", "--stall-ms", "soon"}));
  cr_assert(bad({"--drop-at", "ehlo"}));
  cr_assert(bad({"--fail-for-ms", "x"}));
  cr_assert(bad({"--tls-cert", "c.pem"}), "--tls-cert needs --tls-key");
  cr_assert(bad({"--tls-cert", "c.pem", "--tls-key", "k.pem", "--tls-cert-name", "x"}));
  cr_assert(bad({"--tls-broken", "--tls-cert-name", "x"}));
  cr_assert(bad({"--size", "0"}));
  cr_assert(bad({"--size", "big"}));
  cr_assert(bad({"--max-sessions", "0"}));
  cr_assert(bad({"--drop-fraction", "0.5"}), "--drop-fraction needs --drop-at");
  cr_assert(bad({"--drop-at", "dot", "--drop-fraction", "1.5"}));
  cr_assert(!bad({"--tls-broken"}));
}

Test(blaster_options, glob_match) {
  cr_assert(glob_match("*", ""));
  cr_assert(glob_match("*@example.test", "User@Example.TEST"));
  cr_assert(glob_match("a?c", "abc"));
  cr_assert(!glob_match("a?c", "ac"));
  cr_assert(glob_match("a*b*c", "aXXbYYc"));
  cr_assert(!glob_match("a*b*c", "aXXbYY"));
  cr_assert(glob_match("**x", "yyx"));
  cr_assert(!glob_match("abc", "abcd"));
  cr_assert(!glob_match("", "a"));
  cr_assert(glob_match("*a*a*a*", "baaab"));
}
