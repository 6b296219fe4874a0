// reload_delivery_test.cc: reloads under blaster load fail no transaction; DNS servers and delivery limits change on reload.
#include <criterion/criterion.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include "assertions.h"
#include "delivery_env.h"

using namespace sluice::testing;

namespace {

const char* one_mx = R"(mx-host=a.test,mx.a.test,10
host-record=mx.a.test,127.0.0.2
)";

std::string config_text(const sluiced_process& d) {
  std::ifstream in(d.dir() + "/sluice.toml");
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string replaced(std::string text, const std::string& from, const std::string& to) {
  const auto at = text.find(from);
  cr_assert(at != std::string::npos, "no '%s' in:\n%s", from.c_str(), text.c_str());
  return text.replace(at, from.size(), to);
}

bool drained(const delivery_env& env) {
  return eventually([&] { return env.queued_items() == 0; }, 30'000);
}

std::string reload(const delivery_env& env) {
  const auto r = env.daemon.ctl("reload");
  cr_assert_eq(r.status, 0, "%s", r.output.c_str());
  cr_assert(r.output.find("configuration reloaded") != std::string::npos, "%s", r.output.c_str());
  return r.output;
}

}  // namespace

// The administrator reloads again and again while mail flows in and out; each reload also
// changes the DNS settings (a new resolver per loop) and a delivery limit. No client sees
// a refused or failed transaction, and every message arrives once.
Test(reload_delivery, reloads_under_load_fail_no_transaction, .timeout = 120) {
  delivery_env env(one_mx);
  cr_assert(env.dns.ok(), "%s", env.dns.error().c_str());
  env.sink("127.0.0.2");
  env.configure("", "max_messages_per_connection = 50\n");
  cr_assert(env.start(), "%s", env.daemon.log().c_str());
  const std::string original = config_text(env.daemon);

  constexpr int messages = 2000;
  std::atomic<bool> sending{true};
  send_result sent;
  // Open loop at 400 msg/s: the run lasts about five seconds, whatever the machine.
  std::thread sender([&] {
    sent = env.send("load", messages, {"--domain", "a.test", "--rate", "400", "--sessions", "8"});
    sending = false;
  });
  int reloads = 0;
  while (sending) {
    const bool odd = reloads % 2 == 1;
    std::string next = replaced(original, "timeout_ms = 500", odd ? "timeout_ms = 500" : "timeout_ms = 700");
    next = replaced(next, "max_messages_per_connection = 50", odd ? "max_messages_per_connection = 50"
                                                                  : "max_messages_per_connection = 7");
    env.daemon.write_file("sluice.toml", next);
    reload(env);
    ++reloads;
    usleep(150'000);
  }
  sender.join();
  cr_assert_geq(reloads, 3, "only %d reloads during the run", reloads);
  cr_assert_eq(sent.status, 0, "blaster send: %s", sent.json.c_str());
  cr_assert_eq(json_number(sent.json, "accepted"), messages, "%s", sent.json.c_str());
  cr_assert_eq(json_number(sent.json, "refused"), 0, "%s", sent.json.c_str());
  cr_assert_eq(json_number(sent.json, "failed"), 0, "%s", sent.json.c_str());
  cr_assert_eq(json_number(sent.json, "connect_errors"), 0, "%s", sent.json.c_str());
  cr_assert(drained(env), "not drained: %s\n%s", env.daemon.ctl("queue list").output.c_str(), env.daemon.log().c_str());
  const auto v = env.verify(sent);
  cr_assert_eq(v.delivered, messages, "%s", v.json.c_str());
  cr_assert_eq(v.lost, 0, "%s", v.json.c_str());
  cr_assert_eq(v.duplicated, 0, "%s", v.json.c_str());
  cr_assert_eq(v.corrupted, 0, "%s", v.json.c_str());
  cr_assert_eq(env.tracking("DEFER").size(), 0u, "deferred during reloads:\n%s", env.tracking("DEFER")[0].c_str());
}

// [dns] servers changed by a reload: the next lookup asks the new server (no restart, and
// nothing the old server said is kept).
Test(reload_delivery, dns_servers_apply_to_the_next_lookup, .timeout = 60) {
  delivery_env env(one_mx);
  sluice_test::dnsmasq moved("local=/test/\nmx-host=a.test,mx.a.test,10\nhost-record=mx.a.test,127.0.0.3\n");
  cr_assert(env.dns.ok() && moved.ok(), "%s %s", env.dns.error().c_str(), moved.error().c_str());
  auto& old_mx = env.sink("127.0.0.2");
  auto& new_mx = env.sink("127.0.0.3");
  env.configure();
  cr_assert(env.start(), "%s", env.daemon.log().c_str());

  const auto first = env.send("before", 5, {"--domain", "a.test"});
  cr_assert_eq(json_number(first.json, "accepted"), 5, "%s", first.json.c_str());
  cr_assert(eventually([&] { return old_mx.received() == 5; }, 20'000), "%zu", old_mx.received());

  env.daemon.write_file("sluice.toml", replaced(config_text(env.daemon), env.dns.server(), moved.server()));
  reload(env);
  const auto second = env.send("after", 5, {"--domain", "a.test"});
  cr_assert_eq(json_number(second.json, "accepted"), 5, "%s", second.json.c_str());
  cr_assert(eventually([&] { return new_mx.received() == 5; }, 20'000), "%zu at the new MX\n%s", new_mx.received(),
            env.daemon.log().c_str());
  cr_assert_eq(old_mx.received(), 5u);
  cr_assert(moved.log().find("a.test") != std::string::npos, "%s", moved.log().c_str());
}

// A delivery limit changed by a reload (here recipients per transaction, set for one
// domain) applies to the next attempt.
Test(reload_delivery, delivery_limits_apply_to_the_next_attempt, .timeout = 60) {
  delivery_env env(one_mx);
  cr_assert(env.dns.ok(), "%s", env.dns.error().c_str());
  auto& mx = env.sink("127.0.0.2");
  env.configure();
  cr_assert(env.start(), "%s", env.daemon.log().c_str());

  const auto first = env.send("before", 1, {"--domain", "a.test", "--rcpts", "4"});
  cr_assert_eq(json_number(first.json, "accepted"), 1, "%s", first.json.c_str());
  cr_assert(eventually([&] { return mx.received() == 1; }, 20'000), "%zu", mx.received());

  env.daemon.write_file("sluice.toml", config_text(env.daemon) + "\n[[delivery.domain]]\nname = \"a.test\"\n"
                                                                 "max_recipients_per_message = 1\n");
  reload(env);
  const auto second = env.send("after", 1, {"--domain", "a.test", "--rcpts", "4"});
  cr_assert_eq(json_number(second.json, "accepted"), 1, "%s", second.json.c_str());
  // One transaction of four recipients before; four of one after.
  cr_assert(eventually([&] { return mx.received() == 5; }, 20'000), "%zu transactions\n%s", mx.received(),
            env.daemon.log().c_str());
  cr_assert(drained(env));
}
