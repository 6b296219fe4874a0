// queue_actions_test.cc: `sluicectl queue retry|suspend|resume` and `message retry` against a running sluiced and a real sink.
// Untrusted input: none.
#include <criterion/criterion.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "actions_env.h"

using namespace sluice::testing;

namespace {

const char* zone = "mx-host=a.test,mx1.a.test,10\nmx-host=b.test,mx1.a.test,10\nhost-record=mx1.a.test,127.0.0.2\n";

std::string submit(uint16_t port, const std::vector<std::string>& rcpts, std::string& why) {
  return submit_to(port, "sender@client.test", rcpts, "Subject: queue actions\r\n\r\nhello\r\n", why);
}

// The delivery env's [delivery] retry times, made long: an attempt well before them is the
// administrator's doing.
void slow_retries(delivery_env& env) {
  const std::string path = env.daemon.dir() + "/sluice.toml";
  std::string config = slurp_file(path);
  const std::string from = "retry_first = 1\nretry_max = 2\n";
  const auto at = config.find(from);
  cr_assert(at != std::string::npos, "%s", config.c_str());
  config.replace(at, from.size(), "retry_first = 600\nretry_max = 600\n");
  env.daemon.write_file("sluice.toml", config);
}

// The hop's entry in `queue list --json`.
std::string hop_json(const delivery_env& env, const std::string& key) {
  const std::string out = ctl_ok(env, "queue list --json").output;
  const auto at = out.find("\"next_hop\":\"" + key + "\"");
  if (at == std::string::npos) return "";
  return out.substr(at, out.find('}', at) - at);
}

}  // namespace

Test(queue_actions, message_retry_and_queue_retry_make_the_next_attempt_now, .timeout = 90) {
  delivery_env env(zone);
  start_relay(env, {"--defer-rcpt", "slow@*"}, slow_retries);
  std::string why;
  const std::string id = submit(env.daemon.port(), {"slow@a.test"}, why);
  cr_assert(!id.empty(), "%s", why.c_str());
  cr_assert(eventually([&] { return lines_about(env, "DEFER", id) == 1; }, 20'000), "%s", env.daemon.log().c_str());
  std::this_thread::sleep_for(std::chrono::seconds(2));
  cr_assert_eq(lines_about(env, "DEFER", id), 1u, "the next attempt is 10 minutes away");

  const auto retried = ctl_ok(env, "message retry " + id + " --json");
  cr_assert_eq(json_number(retried.output, "items"), 1, "%s", retried.output.c_str());
  cr_assert(eventually([&] { return lines_about(env, "DEFER", id) == 2; }, 10'000), "%s",
            slurp_file(env.daemon.dir() + "/log/tracking.csv").c_str());

  // By next hop, as queue list names it, or by domain.
  const auto by_hop = ctl_ok(env, "queue retry dns:Internet:a.test");
  cr_assert(has(by_hop.output, "items: 1"), "%s", by_hop.output.c_str());
  cr_assert(eventually([&] { return lines_about(env, "DEFER", id) == 3; }, 10'000));
  cr_assert(has(ctl_ok(env, "queue retry a.test").output, "items: 1"));
  cr_assert(eventually([&] { return lines_about(env, "DEFER", id) == 4; }, 10'000));
  // Nothing waits on a hop with nothing queued; a bad id is refused before anything happens.
  cr_assert(has(ctl_ok(env, "queue retry b.test").output, "items: 0"));
  cr_assert_neq(env.daemon.ctl("message retry nothex").status, 0);
}

Test(queue_actions, suspend_holds_new_arrivals_across_a_restart_and_resume_delivers, .timeout = 120) {
  delivery_env env(zone);
  auto& sink = start_relay(env);
  const auto s = ctl_ok(env, "queue suspend a.test --json");
  cr_assert(has(s.output, "\"ok\":true") && has(s.output, "dns:Internet:a.test"), "%s", s.output.c_str());
  std::string why;
  const std::string first = submit(env.daemon.port(), {"x@a.test"}, why);
  cr_assert(!first.empty(), "%s", why.c_str());
  // Mail for another domain on the same sink goes on.
  const std::string other = submit(env.daemon.port(), {"y@b.test"}, why);
  cr_assert(eventually([&] { return lines_about(env, "DELIVER", other) == 1; }, 20'000), "%s", env.daemon.log().c_str());
  std::this_thread::sleep_for(std::chrono::seconds(2));
  cr_assert_eq(lines_about(env, "DELIVER", first), 0u, "suspended: %s", env.daemon.log().c_str());
  std::string hop = hop_json(env, "dns:Internet:a.test");
  cr_assert(has(hop, "\"status\":\"suspended\"") && has(hop, "\"suspended\":true") && has(hop, "\"items\":1"), "%s",
            hop.c_str());
  cr_assert(has(ctl_ok(env, "queue list").output, "resumed"), "the table says until when");

  // Still suspended after a restart, and an arrival after it waits too.
  env.daemon.stop();
  START(env.daemon);
  const std::string second = submit(env.daemon.port(), {"z@a.test"}, why);
  cr_assert(!second.empty(), "%s", why.c_str());
  std::this_thread::sleep_for(std::chrono::seconds(3));
  cr_assert_eq(lines_about(env, "DELIVER", first) + lines_about(env, "DELIVER", second), 0u, "%s",
               env.daemon.log().c_str());
  cr_assert(has(hop_json(env, "dns:Internet:a.test"), "\"items\":2"));

  const auto r = ctl_ok(env, "queue resume dns:Internet:a.test");
  cr_assert(has(r.output, "resumed"), "%s", r.output.c_str());
  cr_assert(eventually([&] { return lines_about(env, "DELIVER", first) == 1 && lines_about(env, "DELIVER", second) == 1; },
                       20'000),
            "%s", env.daemon.log().c_str());
  hop = hop_json(env, "dns:Internet:a.test");
  cr_assert(has(hop, "\"suspended\":false"), "%s", hop.c_str());
  cr_assert(eventually([&] { return sink.received() == 3; }, 5000), "%zu", sink.received());
  cr_assert_neq(env.daemon.ctl("queue resume dns:Internet:never.test").status, 0, "a hop never seen");
}

Test(queue_actions, a_suspension_for_a_time_ends_by_itself, .timeout = 90) {
  delivery_env env(zone);
  start_relay(env);
  const auto s = ctl_ok(env, "queue suspend a.test --for 3s --json");
  cr_assert_gt(json_number(s.output, "until"), 0, "%s", s.output.c_str());
  cr_assert_neq(env.daemon.ctl("queue suspend a.test --for soon").status, 0, "not a duration");
  std::string why;
  const std::string id = submit(env.daemon.port(), {"x@a.test"}, why);
  cr_assert(!id.empty(), "%s", why.c_str());
  const auto sent = std::chrono::steady_clock::now();
  cr_assert(eventually([&] { return lines_about(env, "DELIVER", id) == 1; }, 20'000), "%s", env.daemon.log().c_str());
  cr_assert_geq(std::chrono::steady_clock::now() - sent, std::chrono::milliseconds(1500),
                "delivered while the suspension held");
  cr_assert(has(hop_json(env, "dns:Internet:a.test"), "\"suspended\":false"));
}
