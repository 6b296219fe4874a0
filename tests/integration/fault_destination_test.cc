// fault_destination_test.cc: sluiced against destinations that misbehave (blaster sink's faults): every acknowledged message ends delivered, deferred or bounced to its sender, never lost.
// Untrusted input: none (the test's own peers; their records are parsed, not trusted).
#include <criterion/criterion.h>
#include <signal.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdlib>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "delivery_env.h"

using namespace sluice::testing;

namespace {

// a.test and b.test are the destinations that misbehave; bounce.test is the senders' own
// domain, a healthy sink where the DSNs arrive.
const char* zone = R"(mx-host=a.test,mx1.a.test,10
host-record=mx1.a.test,127.0.0.2
mx-host=b.test,mx1.b.test,10
host-record=mx1.b.test,127.0.0.3
mx-host=bounce.test,mx.bounce.test,10
host-record=mx.bounce.test,127.0.0.9
)";
const std::string dsn_host = "127.0.0.9";

// Connection failures are part of most faults here: the site is not suspended for them
// unless a test asks (the suspension has its own test).
const std::string no_suspension = "failures_before_suspend = 10000\n";

std::vector<std::string> tab_fields(const std::string& line) {
  std::vector<std::string> out;
  std::istringstream in(line);
  std::string f;
  while (std::getline(in, f, '\t')) out.push_back(f);
  return out;
}

std::vector<std::string> lines_of(const std::string& file) {
  std::vector<std::string> out;
  std::istringstream in(slurp_file(file));
  std::string line;
  while (std::getline(in, line))
    if (!line.empty()) out.push_back(line);
  return out;
}

// Where one acknowledged message stands.
struct fate {
  std::string queue_id, sender;
  int arrivals = 0;     // copies the destinations recorded
  int reports = 0;      // DSNs its sender received
  bool queued = false;  // still in the queue, deferred, with its next retry set
};

// Every message blaster acknowledged, accounted for across the destination sinks' records,
// the DSNs at bounce.test (a report goes to the message's own sender, who is unique per
// message) and the queue (sluicectl message show).
struct ledger {
  std::map<std::string, fate> by_id;  // blaster id
  long long messages = 0, arrived = 0, arrivals = 0, bounced = 0, reports = 0, queued = 0, lost = 0;

  std::string text() const {
    std::string t = "messages " + std::to_string(messages) + ", arrived " + std::to_string(arrived) + " (" +
                    std::to_string(arrivals) + " copies), bounced " + std::to_string(bounced) + " (" +
                    std::to_string(reports) + " DSNs), queued " + std::to_string(queued) + ", lost " +
                    std::to_string(lost);
    for (const auto& [id, f] : by_id)
      if (f.arrivals == 0 && f.reports == 0 && !f.queued) t += "\n  lost: " + id + " queue id " + f.queue_id;
    return t;
  }
};

// Whether the queue holds the message deferred with a next retry (one recipient each here).
bool deferred_in_queue(const delivery_env& env, const std::string& queue_id) {
  const auto r = env.daemon.ctl("message show " + queue_id + " --json");
  const auto at = r.output.find("\"next_attempt_ms\":");
  return r.status == 0 && r.output.find("\"status\":\"deferred\"") != std::string::npos && at != std::string::npos &&
         std::isdigit(static_cast<unsigned char>(r.output[at + 18]));
}

ledger account(const delivery_env& env, const std::vector<send_result>& sent) {
  ledger l;
  std::map<std::string, std::string> id_of_sender;
  for (const auto& s : sent)
    for (const auto& line : lines_of(s.record)) {
      const auto f = tab_fields(line);  // id, digest, queue id, from, rcpts
      if (f.size() < 5) continue;
      l.by_id[f[0]].queue_id = f[2];
      l.by_id[f[0]].sender = f[3];
      id_of_sender[f[3]] = f[0];
    }
  for (const auto& [address, sink] : env.sinks)
    for (const auto& line : lines_of(sink->record_file())) {
      const auto f = tab_fields(line);  // id, check, digest, from, rcpts
      if (f.size() < 5) continue;
      if (address != dsn_host) {
        if (auto it = l.by_id.find(f[0]); it != l.by_id.end()) ++it->second.arrivals;
      } else if (f[3] == "-") {  // from the null sender ("-" in records): a report, to the sender it is about
        if (auto it = id_of_sender.find(f[4]); it != id_of_sender.end()) ++l.by_id[it->second].reports;
      }
    }
  for (auto& [id, f] : l.by_id) {
    if (f.reports == 0) f.queued = deferred_in_queue(env, f.queue_id);
    ++l.messages;
    l.arrived += f.arrivals > 0;
    l.arrivals += f.arrivals;
    l.bounced += f.reports > 0;
    l.reports += f.reports;
    l.queued += f.queued;
    l.lost += f.arrivals == 0 && f.reports == 0 && !f.queued;
  }
  return l;
}

// Accounts every 300 ms (each look runs sluicectl per message) until `done` or the timeout.
template <class F>
ledger await(const delivery_env& env, const std::vector<send_result>& sent, F done, int timeout_ms) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  ledger l = account(env, sent);
  while (!done(l) && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    l = account(env, sent);
  }
  return l;
}

// `messages` messages to `domain`, each from its own sender at bounce.test.
send_result send_batch(delivery_env& env, const std::string& name, int messages, const std::string& domain = "a.test",
                       std::vector<std::string> extra = {}) {
  std::vector<std::string> args{"--domain", domain, "--run-id", name, "--from", name + "{n}@bounce.test"};
  args.insert(args.end(), extra.begin(), extra.end());
  auto sent = env.send(name, messages, args);
  cr_assert_eq(json_number(sent.json, "accepted"), messages, "%s", sent.json.c_str());
  return sent;
}

// The sluiced of these tests, with the DSN sink up; `connectors` and `delivery_keys` as for configure().
void start(delivery_env& env, const std::string& delivery_keys = no_suspension, const std::string& connectors = "") {
  cr_assert(env.dns.ok(), "%s", env.dns.error().c_str());
  env.sink(dsn_host);
  env.configure(connectors, delivery_keys);
  cr_assert(env.start(), "%s", env.daemon.log().c_str());
}

// For assertion messages: the first of some lines, or "" when there are none.
std::string first_of(const std::vector<std::string>& lines) { return lines.empty() ? "" : lines.front(); }

long long sum_of(const std::vector<std::string>& summaries, const char* key) {
  long long n = 0;
  for (const auto& s : summaries) n += std::max(0LL, json_number(s, key));
  return n;
}

// Stops sluiced and every sink; their summaries (the DSN sink's first).
std::vector<std::string> stop_all(delivery_env& env) {
  env.daemon.stop();
  std::vector<std::string> out{env.sinks.at(dsn_host)->stop()};
  for (auto& [address, s] : env.sinks)
    if (address != dsn_host) out.push_back(s->stop());
  return out;
}

// The destination misbehaves until the test tells it to recover (SIGUSR1). Meanwhile every
// acknowledged message is deferred (queued with its next retry; each DEFER says `status`),
// none is reported, none lost; once it behaves, every one arrives. Copies beyond the first
// are allowed only where the sink dropped the connection after recording the message (the
// 250 the sender never saw), one per such drop.
void fault_then_recover(delivery_env& env, sink_process& faulty, const send_result& sent, long long messages,
                        const char* status, bool copies_from_drops = false) {
  const std::vector<send_result> all{sent};
  ledger l = await(env, all, [&](const ledger& x) { return x.queued == messages; }, 20'000);
  cr_assert_eq(l.queued, messages, "every message deferred: %s\n%s", l.text().c_str(), env.daemon.log().c_str());
  cr_assert_eq(l.lost + l.bounced, 0, "%s", l.text().c_str());
  if (!copies_from_drops) cr_assert_eq(l.arrivals, 0, "%s", l.text().c_str());
  for (const auto& line : env.tracking("DEFER")) cr_assert(line.find(status) != std::string::npos, "%s", line.c_str());
  cr_assert_eq(env.tracking("FAIL").size(), 0u, "%s", first_of(env.tracking("FAIL")).c_str());

  ::kill(faulty.pid(), SIGUSR1);
  // The ledger's own queued count too: it is read before queued_items(), and an attempt may
  // commit in between, so without it the ledger returned could still count a deferral.
  l = await(env, all, [&](const ledger& x) { return x.arrived == messages && x.queued == 0 && env.queued_items() == 0; },
            30'000);
  cr_assert(l.arrived == messages && l.queued == 0, "recovered: %s\n%s", l.text().c_str(),
            env.daemon.ctl("queue list").output.c_str());
  const auto summaries = stop_all(env);
  l = account(env, all);
  cr_assert_eq(l.lost + l.bounced, 0, "%s", l.text().c_str());
  cr_assert_eq(l.arrived, messages, "%s", l.text().c_str());
  const long long copies = l.arrivals - l.arrived;
  cr_assert_eq(copies, copies_from_drops ? sum_of(summaries, "dropped") : 0, "%s\n%s", l.text().c_str(),
               summaries.back().c_str());
  cr_assert_eq(sum_of(summaries, "digest_bad"), 0);
}

// fault_then_recover() for ten messages to a.test, whose one MX host has the fault `sink_args`.
void one_fault(std::vector<std::string> sink_args, const std::string& batch, const char* status,
               bool copies_from_drops = false) {
  delivery_env env(zone);
  auto& faulty = env.sink("127.0.0.2", std::move(sink_args));
  start(env);
  fault_then_recover(env, faulty, send_batch(env, batch, 10), 10, status, copies_from_drops);
}

}  // namespace

Test(fault_destination, permanent_refusals_bounce_to_the_sender_and_the_rest_arrive, .timeout = 60) {
  delivery_env env(zone);
  env.sink("127.0.0.2", {"--fail-5xx", "0.5", "--fail-at", "data"});
  start(env);
  const std::vector<send_result> sent{send_batch(env, "r", 20)};
  ledger l = await(env, sent, [](const ledger& x) { return x.arrived + x.bounced == 20 && x.queued == 0; }, 20'000);
  const auto summaries = stop_all(env);
  l = account(env, sent);
  cr_assert(l.lost == 0 && l.queued == 0 && l.arrived + l.bounced == 20, "%s", l.text().c_str());
  // Each 554 is one bounced message with one report; nothing was both delivered and bounced.
  cr_assert_eq(l.bounced, sum_of(summaries, "refused_5xx"), "%s\n%s", l.text().c_str(), summaries.back().c_str());
  cr_assert_gt(l.bounced, 0, "%s", l.text().c_str());
  cr_assert_eq(l.reports, l.bounced, "%s", l.text().c_str());
  cr_assert_eq(l.arrivals, l.arrived, "%s", l.text().c_str());
  for (const auto& line : env.tracking("FAIL")) cr_assert(line.find("5.6.0") != std::string::npos, "%s", line.c_str());
}

Test(fault_destination, temporary_refusals_keep_the_mail_until_the_destination_recovers, .timeout = 60) {
  one_fault({"--fail-4xx", "1", "--fail-at", "rcpt"}, "t", "4.3.0");
}

Test(fault_destination, a_421_storm_defers_until_it_passes, .timeout = 60) { one_fault({"--greeting", "421"}, "g", "421"); }

Test(fault_destination, a_reply_stalled_past_its_timeout_defers, .timeout = 60) {
  one_fault({"--stall-at", "data"}, "st", "4.4.2");  // the 354 never comes
}

Test(fault_destination, a_connection_dropped_mid_data_defers, .timeout = 60) {
  one_fault({"--drop-at", "data"}, "dd", "4.4.2");
}

Test(fault_destination, a_connection_dropped_at_the_final_dot_defers, .timeout = 60) {
  one_fault({"--drop-at", "dot"}, "dot", "4.4.2");
}

Test(fault_destination, a_connection_dropped_after_the_dot_is_retried_and_the_copies_counted, .timeout = 60) {
  one_fault({"--drop-at", "after-dot"}, "ad", "4.4.2", true);
}

Test(fault_destination, slow_replies_within_the_timeouts_deliver_everything_once, .timeout = 60) {
  delivery_env env(zone);
  // Every reply 300 ms late, and the final one 1.5 s: slow, within every timeout.
  env.sink("127.0.0.2", {"--latency", "300", "--stall-at", "dot", "--stall-ms", "1500"});
  start(env);
  const std::vector<send_result> sent{send_batch(env, "slow", 10)};
  ledger l = await(env, sent, [](const ledger& x) { return x.arrived == 10 && x.queued == 0; }, 30'000);
  stop_all(env);
  l = account(env, sent);
  cr_assert(l.arrived == 10 && l.arrivals == 10 && l.bounced == 0 && l.lost == 0, "%s", l.text().c_str());
  cr_assert_eq(env.tracking("DEFER").size(), 0u, "%s", first_of(env.tracking("DEFER")).c_str());
}

Test(fault_destination, broken_tls_handshakes_defer_mandatory_and_fall_back_for_opportunistic, .timeout = 60) {
  delivery_env env(zone);
  auto& strict = env.sink("127.0.0.2", {"--tls-broken"});
  env.sink("127.0.0.3", {"--tls-broken"});
  const std::string port = std::to_string(env.sink_port);
  start(env, no_suspension,
        "[[send_connector]]\nname = \"Strict\"\naddress_spaces = [\"a.test\"]\ntls = \"mandatory\"\nport = " + port +
            "\n\n[[send_connector]]\nname = \"Internet\"\naddress_spaces = [\"*\"]\ntls = \"opportunistic\"\nport = " +
            port + "\n");
  // Opportunistic: the broken handshake is retried in plaintext at once, nothing waits.
  const std::vector<send_result> loose{send_batch(env, "o", 10, "b.test")};
  ledger l = await(env, loose, [](const ledger& x) { return x.arrived == 10 && x.queued == 0; }, 20'000);
  cr_assert(l.arrived == 10 && l.arrivals == 10 && l.lost == 0, "%s", l.text().c_str());
  cr_assert_eq(env.tracking("DEFER").size(), 0u, "%s", first_of(env.tracking("DEFER")).c_str());
  // Mandatory: never in plaintext; delivered over TLS once the handshake works.
  fault_then_recover(env, strict, send_batch(env, "m", 10), 10, "4.7.5");
  std::size_t over_tls = 0;
  for (const auto& line : env.tracking("DELIVER"))
    if (line.find("mx1.a.test") != std::string::npos) over_tls += line.find("TLS") != std::string::npos;
  cr_assert_eq(over_tls, 10u, "%s", slurp_file(env.daemon.dir() + "/log/tracking.csv").c_str());
}

Test(fault_destination, the_connection_limit_holds_while_the_destination_fails, .timeout = 90) {
  delivery_env env(zone);
  // The sink refuses (and counts) any session beyond the site's limit.
  env.sink("127.0.0.2", {"--max-sessions", "2", "--latency", "20", "--fail-4xx", "0.3", "--fail-at", "rcpt",
                         "--drop-at", "after-dot", "--drop-fraction", "0.2"});
  start(env, no_suspension + "max_connections = 2\n");
  const std::vector<send_result> sent{send_batch(env, "lim", 40, "a.test", {"--sessions", "8"})};
  // The queue, not the sinks, says when: a copy dropped after the dot has arrived while its
  // message waits for a retry.
  ledger l = await(env, sent, [&](const ledger& x) { return x.arrived == 40 && env.queued_items() == 0; }, 60'000);
  const auto summaries = stop_all(env);
  l = account(env, sent);
  cr_assert(l.arrived == 40 && l.queued == 0 && l.lost == 0 && l.bounced == 0, "%s", l.text().c_str());
  const std::string& s = summaries.back();
  cr_assert_eq(json_number(s, "refused_sessions"), 0, "%s", s.c_str());
  cr_assert_leq(json_number(s, "peak_sessions"), 2, "%s", s.c_str());
  cr_assert_gt(json_number(s, "injected_rcpt") + json_number(s, "dropped"), 0, "the faults happened: %s", s.c_str());
  cr_assert_eq(l.arrivals - l.arrived, json_number(s, "dropped"), "%s\n%s", l.text().c_str(), s.c_str());
}

Test(fault_destination, a_site_refusing_every_connection_is_suspended_and_left_alone, .timeout = 60) {
  delivery_env env(zone);
  const std::string connections = env.daemon.dir() + "/connections.log";
  auto& faulty = env.sink("127.0.0.2", {"--greeting", "421", "--connection-log", connections});
  // One connection at a time, so the streak is the sequence of connections the sink sees.
  start(env, "failures_before_suspend = 2\nsuspend = 3\nmax_connections = 1\n");
  const send_result sent = send_batch(env, "sus", 10);
  // Retries come every 1-2 s per message: without the suspension, dozens of connections.
  std::this_thread::sleep_for(std::chrono::milliseconds(7500));
  std::vector<long long> at;
  for (const auto& line : lines_of(connections)) {
    const auto f = tab_fields(line);
    if (f.size() == 2 && f[1] == "session") at.push_back(std::atoll(f[0].c_str()));
  }
  // The harness's readiness probe (wait_listening) came first, before sluiced started.
  cr_assert_geq(at.size(), 3u, "%s", slurp_file(connections).c_str());
  at.erase(at.begin());
  std::string seen;
  for (long long t : at) seen += std::to_string(t - at.front()) + " ms\n";
  // Two failures in a row suspend the site for 3 s; when it ends one connection tries again,
  // fails, and suspends it anew.
  cr_assert_geq(at.size(), 3u, "two failures, then a retry after the suspension:\n%s", seen.c_str());
  cr_assert_leq(at.size(), 5u, "at most 2 + one per suspension period:\n%s", seen.c_str());
  for (std::size_t i = 2; i < at.size(); ++i)
    cr_assert_geq(at[i] - at[i - 1], 2900, "a connection during the suspension:\n%s", seen.c_str());
  // Suspended is not failed: the mail is all there, and goes once the site answers.
  const std::vector<send_result> all{sent};
  ledger l = account(env, all);
  cr_assert(l.queued == 10 && l.lost == 0 && l.bounced == 0, "%s", l.text().c_str());
  ::kill(faulty.pid(), SIGUSR1);
  l = await(env, all, [](const ledger& x) { return x.arrived == 10 && x.queued == 0; }, 30'000);
  cr_assert(l.arrived == 10 && l.queued == 0 && l.lost == 0, "%s", l.text().c_str());
}

Test(fault_destination, a_mixed_destination_ends_with_everything_delivered_or_bounced, .timeout = 90) {
  delivery_env env(zone);
  env.sink("127.0.0.2", {"--fail-4xx", "0.2", "--fail-5xx", "0.1", "--fail-at", "data", "--drop-at", "after-dot",
                         "--drop-fraction", "0.15"});
  start(env);
  const std::vector<send_result> sent{send_batch(env, "mix", 40)};
  // Done when the queue is empty (a copy dropped after the dot arrived, and its message still
  // waits for a retry, so the sinks alone cannot tell), and nothing is lost on the way.
  ledger l = await(env, sent, [&](const ledger& x) { return x.lost == 0 && env.queued_items() == 0; }, 60'000);
  const auto summaries = stop_all(env);
  l = account(env, sent);
  cr_assert(l.lost == 0 && l.queued == 0, "%s", l.text().c_str());
  const std::string& s = summaries.back();
  // Every 554 bounced one message with one report (a message is refused for good once);
  // every copy beyond what the sender was told arrived is one drop after the dot.
  cr_assert_eq(l.bounced, json_number(s, "refused_5xx"), "%s\n%s", l.text().c_str(), s.c_str());
  cr_assert_eq(l.reports, l.bounced, "%s", l.text().c_str());
  long long delivered = 0;
  for (const auto& [id, f] : l.by_id) delivered += f.reports == 0;
  for (const auto& [id, f] : l.by_id) cr_assert(f.reports > 0 || f.arrivals > 0, "%s", id.c_str());
  cr_assert_eq(l.arrivals, delivered + json_number(s, "dropped"), "%s\n%s", l.text().c_str(), s.c_str());
  cr_assert_gt(json_number(s, "refused_4xx"), 0, "%s", s.c_str());
  cr_assert_geq(env.tracked_recipients("DEFER"), static_cast<std::size_t>(json_number(s, "refused_4xx")));
}
