// metrics_test.cc: sluiced's Prometheus endpoint read by prometheus_client's parser after a real blaster run.
// Untrusted input: none (the test plays the slow and the oversized client itself).
#include <criterion/criterion.h>
#include <unistd.h>

#include <chrono>
#include <map>
#include <sstream>
#include <string>

#include "assertions.h"
#include "delivery_env.h"
#include "../metrics/loopback_client.h"

using namespace sluice::testing;
using namespace metrics_test;

namespace {

const char* sink_zone = R"(mx-host=a.test,mx1.a.test,10
host-record=mx1.a.test,127.0.0.2
)";

// What prometheus_scrape.py printed: kind ("type", "text", "json", "file") -> "name labels" -> value.
struct scrape {
  int status = -1;
  std::string output;
  std::map<std::string, std::string> types;  // family -> type, as prometheus_client names them
  std::map<std::string, std::map<std::string, double>> values;

  // The sum over every series of `name` in `kind`.
  double total(const std::string& kind, const std::string& name) const {
    double t = 0;
    auto k = values.find(kind);
    if (k == values.end()) return -1;
    for (const auto& [key, v] : k->second)
      if (key.substr(0, key.find(' ')) == name) t += v;
    return t;
  }
  bool has(const std::string& kind, const std::string& name) const {
    auto k = values.find(kind);
    if (k == values.end()) return false;
    for (const auto& [key, v] : k->second)
      if (key.substr(0, key.find(' ')) == name) return true;
    return false;
  }
};

// Debian's python3 (the parser is Debian's python3-prometheus-client; check_peers.sh).
std::string debian_python() { return access("/usr/bin/python3", X_OK) == 0 ? "/usr/bin/python3" : "python3"; }

scrape run_scrape(uint16_t port, const std::string& json_file = "") {
  scrape s;
  auto r = run(debian_python() + " " + source_root() + "/tests/integration/clients/prometheus_scrape.py http://127.0.0.1:" +
               std::to_string(port) + (json_file.empty() ? "" : " --json-file " + json_file));
  s.status = r.status;
  s.output = r.output;
  std::istringstream lines(r.output);
  for (std::string line; std::getline(lines, line);) {
    std::istringstream in(line);
    std::string kind, name, labels, value;
    if (!(in >> kind >> name >> labels)) continue;
    if (kind == "type") s.types[name] = labels;
    else if (in >> value) s.values[kind][name + " " + labels] = std::strtod(value.c_str(), nullptr);
  }
  return s;
}

}  // namespace

Test(integration_metrics, counters_match_what_blaster_sent, .timeout = 120) {
  constexpr int messages = 60;
  delivery_env env(sink_zone);
  cr_assert(env.dns.ok(), "%s", env.dns.error().c_str());
  env.sink("127.0.0.2");
  const uint16_t port = free_port();
  env.configure("", "", "[metrics]\nlisten = \"127.0.0.1:" + std::to_string(port) + "\"\n");
  cr_assert(env.start(), "%s", env.daemon.log().c_str());
  const auto sent = env.send("m", messages, {"--domain", "a.test"});
  cr_assert_eq(sent.status, 0, "blaster send: %s", sent.json.c_str());
  cr_assert_eq(json_number(sent.json, "accepted"), messages, "%s", sent.json.c_str());

  // Delivery outcomes are counted when they are recorded; wait until all are.
  scrape s;
  const bool done = eventually(
      [&] {
        s = run_scrape(port);
        return s.status == 0 && s.total("text", "sluice_messages_delivered_total") == messages &&
               s.total("text", "sluice_queue_depth") == 0;
      },
      30'000);
  cr_assert(done, "scrape (status %d):\n%s\n%s", s.status, s.output.c_str(), env.daemon.log().c_str());
  cr_assert_eq(s.total("text", "sluice_messages_received_total"), messages, "%s", s.output.c_str());
  cr_assert_eq(s.values["text"]["sluice_messages_received_total connector=\"Relay\""], messages, "%s", s.output.c_str());
  cr_assert_eq(s.values["text"]["sluice_messages_delivered_total connector=\"Internet\",site=\"mx:mx1.a.test\""], messages,
               "%s", s.output.c_str());
  cr_assert_eq(s.total("text", "sluice_messages_failed_total"), 0);
  cr_assert_eq(s.total("text", "sluice_messages_deferred_total"), 0);
  cr_assert_geq(s.total("text", "sluice_sessions_total"), 4, "blaster used 4 sessions: %s", s.output.c_str());
  // Types as Prometheus reads them (counter families lose their _total suffix there).
  cr_assert_eq(s.types["sluice_messages_delivered"], "counter", "%s", s.output.c_str());
  cr_assert_eq(s.types["sluice_messages_received"], "counter");
  cr_assert_eq(s.types["sluice_store_commit_duration_seconds"], "histogram");
  cr_assert_eq(s.types["sluice_store_commit_batch_size"], "histogram");
  cr_assert_eq(s.types["sluice_queue_depth"], "gauge");
  cr_assert_eq(s.types["sluice_connections_open"], "gauge");
  cr_assert_eq(s.types["process_resident_memory_bytes"], "gauge");
  // Every accepted message and every outcome went through the group commit.
  cr_assert_geq(s.total("text", "sluice_store_commit_batch_size_sum"), 2 * messages, "%s", s.output.c_str());
  cr_assert_gt(s.total("text", "sluice_dns_lookups_total"), 0);
  cr_assert_gt(s.total("text", "process_resident_memory_bytes"), 1 << 20);
  cr_assert_gt(s.total("text", "process_open_fds"), 5);

  // The JSON variant says the same.
  cr_assert_eq(s.total("json", "sluice_messages_delivered_total"), messages, "%s", s.output.c_str());
  cr_assert_eq(s.total("json", "sluice_messages_received_total"), messages);
  cr_assert_eq(s.total("json", "sluice_store_commit_batch_size_count"), s.total("text", "sluice_store_commit_batch_size_count"));

  // sluicectl stats --json: the same numbers over the admin socket.
  const std::string json_file = env.daemon.dir() + "/stats.json";
  auto ctl = env.daemon.ctl("stats --json > " + json_file);
  cr_assert_eq(ctl.status, 0, "%s", ctl.output.c_str());
  s = run_scrape(port, json_file);
  cr_assert_eq(s.status, 0, "%s", s.output.c_str());
  cr_assert_eq(s.total("file", "sluice_messages_delivered_total"), messages, "%s", s.output.c_str());
  cr_assert_eq(s.total("file", "sluice_messages_received_total"), messages);
  // And the readable summary names the connector, the site and the count.
  auto summary = env.daemon.ctl("stats");
  cr_assert_eq(summary.status, 0, "%s", summary.output.c_str());
  EXPECT_HAS(summary, "Relay");
  EXPECT_HAS(summary, "Internet mx:mx1.a.test");
  EXPECT_HAS(summary, std::to_string(messages));
  auto watch = env.daemon.ctl("stats --watch --interval 0.2 --count 2");
  cr_assert_eq(watch.status, 0, "%s", watch.output.c_str());
  EXPECT_HAS(watch, "msg/s");
}

Test(integration_metrics, slow_and_oversized_clients_do_not_block_others, .timeout = 60) {
  sluiced_process d;
  const uint16_t port = free_port();
  d.write_config(sluiced_process::default_config() + "\n[metrics]\nlisten = \"127.0.0.1:" + std::to_string(port) + "\"\n");
  START(d);
  // One connection that sends nothing, one that sends half a request line.
  int silent = connect_to(port);
  int slow = connect_to(port);
  cr_assert(silent >= 0 && slow >= 0);
  send_all(slow, "GET /metr");
  const auto before = std::chrono::steady_clock::now();
  scrape s = run_scrape(port);
  cr_assert_eq(s.status, 0, "%s", s.output.c_str());
  cr_assert(s.types.count("sluice_messages_received"), "%s", s.output.c_str());
  // Answered while both are still open (the endpoint's read timeout is 10 s).
  cr_assert_lt(std::chrono::steady_clock::now() - before, std::chrono::seconds(8));
  cr_assert(still_waiting(silent), "the silent connection is still open, unanswered");
  cr_assert(still_waiting(slow), "so is the slow one");

  // A huge request header is refused, and the endpoint goes on serving.
  int huge = connect_to(port);
  const std::string req = "GET /metrics HTTP/1.1\r\nX-Filler: " + std::string(32 * 1024, 'x') + "\r\n\r\n";
  send_all(huge, req);
  const std::string reply = read_all(huge);
  cr_assert(reply.starts_with("HTTP/1.1 431 ") || reply.starts_with("HTTP/1.1 400 "), "%.200s", reply.c_str());
  ::close(huge);
  s = run_scrape(port);
  cr_assert_eq(s.status, 0, "%s", s.output.c_str());
  ::close(silent);
  ::close(slow);
}

Test(integration_metrics, off_unless_configured, .timeout = 30) {
  // The harness writes listen = "" for daemons of other tests; the default port stays free
  // of them, and the loader refuses a bad address.
  sluiced_process d;
  d.write_config(sluiced_process::default_config() + "\n[metrics]\nlisten = \"localhost:99999\"\n");
  auto r = run(sluiced_path() + " --config " + d.dir() + "/sluice.toml --check-config");
  cr_assert_neq(r.status, 0, "%s", r.output.c_str());
  EXPECT_HAS(r, "metrics.listen");
}

// MX rollup in the queue gauges: two domains with one MX host are two next hops and one
// site; deferred mail for both is counted per next hop and summed per site.
Test(integration_metrics, queue_depth_per_next_hop_and_per_site, .timeout = 60) {
  delivery_env env("mx-host=a.test,mx1.a.test,10\nmx-host=c.test,mx1.a.test,10\nhost-record=mx1.a.test,127.0.0.2\n");
  cr_assert(env.dns.ok(), "%s", env.dns.error().c_str());
  env.sink("127.0.0.2", {"--fail-4xx", "1", "--fail-at", "rcpt"});
  const uint16_t port = free_port();
  env.configure("", "", "[metrics]\nlisten = \"127.0.0.1:" + std::to_string(port) + "\"\n");
  cr_assert(env.start(), "%s", env.daemon.log().c_str());
  cr_assert_eq(json_number(env.send("a", 3, {"--domain", "a.test"}).json, "accepted"), 3);
  cr_assert_eq(json_number(env.send("c", 2, {"--domain", "c.test"}).json, "accepted"), 2);

  const std::string site = "sluice_site_queue_depth site=\"Internet|mx:mx1.a.test\"";
  scrape s;
  const bool bound = eventually(
      [&] {
        s = run_scrape(port);
        return s.status == 0 && s.values["text"][site] == 5;
      },
      20'000);
  cr_assert(bound, "%s\n%s", s.output.c_str(), env.daemon.log().c_str());
  cr_assert_eq(s.values["text"]["sluice_queue_depth queue=\"dns:Internet:a.test\""], 3, "%s", s.output.c_str());
  cr_assert_eq(s.values["text"]["sluice_queue_depth queue=\"dns:Internet:c.test\""], 2, "%s", s.output.c_str());
  cr_assert_eq(s.total("text", "sluice_site_queue_depth"), 5, "%s", s.output.c_str());
  cr_assert_eq(s.types["sluice_site_queue_oldest_age_seconds"], "gauge");
  cr_assert_gt(s.total("text", "sluice_messages_deferred_total"), 0);
}
