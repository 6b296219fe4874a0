// stats_cmd.cc: `sluicectl stats [--watch]`: the daemon's metrics as a summary, refreshed in place with rates.
// Untrusted input: the daemon's metrics (label values name remote sites; printed as terminal-safe text).
#include <fmt/format.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "admin/client.h"
#include "admin/protocol.h"
#include "common.h"
#include "metrics/exposition.h"

namespace sluice::ctl {

namespace {

struct stats_options {
  std::string socket;
  bool watch = false;
  double interval_s = 2;
  unsigned count = 0;  // refreshes with --watch; 0 = until interrupted
};

std::vector<std::string> ask(const std::string& path, std::vector<std::string> words) {
  admin::call_result r = admin::call(path, words);
  if (r.status != admin::call_status::ok) throw command_error{r.error};
  if (!r.reply.ok) throw command_error{terminal_text(r.reply.error)};
  return r.reply.lines;
}

// One scrape, keyed for lookups: name -> label text -> value.
struct scrape {
  std::chrono::steady_clock::time_point at;
  std::map<std::string, std::map<std::vector<std::pair<std::string, std::string>>, double>> series;

  double get(const std::string& name, const std::vector<std::pair<std::string, std::string>>& labels = {}) const {
    auto f = series.find(name);
    if (f == series.end()) return 0;
    auto s = f->second.find(labels);
    return s == f->second.end() ? 0 : s->second;
  }
  const std::map<std::vector<std::pair<std::string, std::string>>, double>* family(const std::string& name) const {
    auto f = series.find(name);
    return f == series.end() ? nullptr : &f->second;
  }
};

scrape take(const std::string& path) {
  std::string text;
  for (auto& l : ask(path, {"metrics"})) text += l + "\n";
  metrics::parsed_text p = metrics::parse_text(text);
  if (!p.error.empty()) throw command_error{"the daemon's metrics do not parse: " + p.error};
  scrape s;
  s.at = std::chrono::steady_clock::now();
  for (auto& smp : p.samples) s.series[smp.name][smp.labels] = smp.value;
  return s;
}

// Messages per second between two scrapes; "-" without an earlier one.
std::string rate(const scrape& now, const scrape* before, const std::string& name,
                 const std::vector<std::pair<std::string, std::string>>& labels) {
  if (!before) return "-";
  const double dt = std::chrono::duration<double>(now.at - before->at).count();
  if (dt <= 0) return "-";
  return fmt::format("{:.1f}", (now.get(name, labels) - before->get(name, labels)) / dt);
}

std::string count(double v) { return fmt::format("{:.0f}", v); }

void print_summary(const scrape& s, const scrape* before) {
  fmt::print("{:<32} {:>9} {:>6} {:>10} {:>8}\n", "receive connector", "sessions", "open", "received", "msg/s");
  if (auto* f = s.family("sluice_sessions_total"))
    for (const auto& [labels, v] : *f)
      fmt::print("{:<32} {:>9} {:>6} {:>10} {:>8}\n", terminal_text(labels.at(0).second), count(v),
                 count(s.get("sluice_connections_open", labels)), count(s.get("sluice_messages_received_total", labels)),
                 rate(s, before, "sluice_messages_received_total", labels));
  fmt::print("\n{:<40} {:>9} {:>8} {:>6} {:>7} {:>7} {:>8}\n", "send connector / site", "delivered", "deferred", "failed",
             "bounced", "expired", "msg/s");
  // Every site seen under any outcome.
  std::map<std::vector<std::pair<std::string, std::string>>, bool> sites;
  for (const char* n : {"sluice_messages_delivered_total", "sluice_messages_deferred_total", "sluice_messages_failed_total",
                        "sluice_messages_expired_total"})
    if (auto* f = s.family(n))
      for (const auto& [labels, v] : *f) sites[labels] = true;
  for (const auto& [labels, _] : sites) {
    std::string name;
    for (const auto& [k, v] : labels) name += (name.empty() ? "" : " ") + terminal_text(v);
    fmt::print("{:<40} {:>9} {:>8} {:>6} {:>7} {:>7} {:>8}\n", name, count(s.get("sluice_messages_delivered_total", labels)),
               count(s.get("sluice_messages_deferred_total", labels)), count(s.get("sluice_messages_failed_total", labels)),
               count(s.get("sluice_messages_bounced_total", labels)), count(s.get("sluice_messages_expired_total", labels)),
               rate(s, before, "sluice_messages_delivered_total", labels));
  }
  fmt::print("\n{:<48} {:>8} {:>8}\n", "next hop queue", "queued", "oldest");
  if (auto* f = s.family("sluice_queue_depth"))
    for (const auto& [labels, v] : *f)
      fmt::print("{:<48} {:>8} {:>8}\n", terminal_text(labels.at(0).second), count(v),
                 format_age(static_cast<int64_t>(s.get("sluice_queue_oldest_age_seconds", labels))));
  const double commits = s.get("sluice_store_commit_batch_size_count");
  const double requests = s.get("sluice_store_commit_batch_size_sum");
  const double seconds = s.get("sluice_store_commit_duration_seconds_sum");
  std::string batch = "-";
  if (before) {
    const double dc = commits - before->get("sluice_store_commit_batch_size_count");
    if (dc > 0) batch = fmt::format("{:.1f}", (requests - before->get("sluice_store_commit_batch_size_sum")) / dc);
  }
  fmt::print("\nstore: {} messages, {} to categorize; {} commits, batch size {:.1f} mean ({} now), commit {:.2f} ms mean\n",
             count(s.get("sluice_queue_messages")), count(s.get("sluice_queue_submission_messages")), count(commits),
             commits > 0 ? requests / commits : 0.0, batch, commits > 0 ? seconds / commits * 1000 : 0.0);
  fmt::print("dns: {} lookups, {} cache hits; DSNs: {}; outbound connections: {}; rss {}, {} descriptors\n",
             count(s.get("sluice_dns_lookups_total")), count(s.get("sluice_dns_cache_hits_total")),
             count(s.get("sluice_dsns_generated_total")), count(s.get("sluice_outbound_connections_open")),
             format_bytes(static_cast<uint64_t>(s.get("process_resident_memory_bytes"))), count(s.get("process_open_fds")));
}

void stats(const global_options& g, const stats_options& o) {
  const std::string path = o.socket.empty() ? admin::socket_path_for(resolve_queue_dir(g)) : o.socket;
  if (g.json && !o.watch) {
    for (auto& l : ask(path, {"metrics", "--json"})) fmt::print("{}\n", l);
    return;
  }
  std::unique_ptr<scrape> before;
  const bool tty = isatty(STDOUT_FILENO);
  for (unsigned n = 1;; ++n) {
    if (g.json) {
      for (auto& l : ask(path, {"metrics", "--json"})) fmt::print("{}\n", l);
    } else {
      scrape s = take(path);
      // Refreshing in place: home the cursor and clear, so the view does not scroll.
      if (o.watch && tty) fmt::print("\x1b[H\x1b[2J");
      if (o.watch) fmt::print("sluicectl stats: every {:g} s, rates over the last interval (Ctrl-C ends)\n\n", o.interval_s);
      print_summary(s, before.get());
      before = std::make_unique<scrape>(std::move(s));
    }
    std::fflush(stdout);
    if (!o.watch || (o.count != 0 && n >= o.count)) return;
    std::this_thread::sleep_for(std::chrono::duration<double>(o.interval_s));
  }
}

}  // namespace

void add_stats_command(CLI::App& app, global_options& g) {
  auto o = std::make_shared<stats_options>();
  auto* cmd = app.add_subcommand(
      "stats", "the running daemon's counters: per receive connector, per send connector and site, queues and commits "
               "(--json: the raw metrics as JSON)");
  cmd->add_option("--socket", o->socket, "admin socket (default: admin.sock beside the queue directory)");
  cmd->add_flag("--watch", o->watch, "refresh in place, with rates computed from successive samples");
  cmd->add_option("--interval", o->interval_s, "seconds between refreshes with --watch (default 2)")
      ->check(CLI::Range(0.1, 3600.0));
  cmd->add_option("--count", o->count, "with --watch: stop after this many refreshes (default: never)");
  cmd->callback([&g, o] { stats(g, *o); });
}

}  // namespace sluice::ctl
