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
