// metrics_sources.cc: scrape-time samples from the store, the site registry and /proc/self.
// Untrusted input: hop keys read from the store (label values, escaped by exposition).
#include "main/metrics_sources.h"

#include <dirent.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "delivery/shaping.h"
#include "metrics/daemon.h"
#include "store/store.h"

namespace sluice::main {

namespace {

constexpr size_t max_queues = metrics::registry::default_max_series;

metrics::family_snapshot gauge(std::string name, std::string help) {
  metrics::family_snapshot f;
  f.name = std::move(name);
  f.help = std::move(help);
  f.type = metrics::metric_type::gauge;
  return f;
}

void add_value(metrics::family_snapshot& f, double v, std::vector<std::pair<std::string, std::string>> labels = {}) {
  metrics::sample s;
  s.labels = std::move(labels);
  s.value = v;
  f.samples.push_back(std::move(s));
}

int64_t unix_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

struct queue_sample {
  std::string key;
  uint64_t items = 0;
  int64_t oldest_ms = 0;  // 0: unknown
};

// Depth and oldest age per `label` value, the deepest max_queues by name, the rest as "other".
void add_queue_gauges(std::vector<queue_sample> queues, const std::string& prefix, const std::string& label,
                      const std::string& per, std::vector<metrics::family_snapshot>& out) {
  std::sort(queues.begin(), queues.end(), [](const queue_sample& a, const queue_sample& b) {
    return a.items != b.items ? a.items > b.items : a.key < b.key;
  });
  const int64_t now = unix_ms();
  auto age = [now](int64_t oldest) { return oldest > 0 && oldest < now ? static_cast<double>(now - oldest) / 1000.0 : 0.0; };
  auto depth = gauge(prefix + "_depth", "Delivery items queued per " + per + " (the deepest 50, the rest as \"other\")");
  auto oldest = gauge(prefix + "_oldest_age_seconds", "Age of the oldest message queued per " + per);
  uint64_t other_items = 0;
  double other_age = 0;
  for (size_t i = 0; i < queues.size(); ++i) {
    if (i < max_queues) {
      add_value(depth, static_cast<double>(queues[i].items), {{label, queues[i].key}});
      add_value(oldest, age(queues[i].oldest_ms), {{label, queues[i].key}});
    } else {
      other_items += queues[i].items;
      other_age = std::max(other_age, age(queues[i].oldest_ms));
    }
  }
  if (queues.size() > max_queues) {
    add_value(depth, static_cast<double>(other_items), {{label, "other"}});
    add_value(oldest, other_age, {{label, "other"}});
  }
  out.push_back(std::move(depth));
  out.push_back(std::move(oldest));
}

// Per next hop, from the store's hop records; and per site (MX rollup), those summed over
// the hops each site holds now (a hop not bound to a site yet counts as its own).
void sample_queues(const store::queue_store& queue, delivery::site_registry& sites,
                   std::vector<metrics::family_snapshot>& out) {
  std::vector<queue_sample> hops;
  std::string error;
  queue.for_each_hop(
      [&](const store::hop_entry& h) {
        if (h.record.items > 0) hops.push_back({h.record.key, h.record.items, h.record.oldest_ms});
        return true;
      },
      error);
  const auto hop_sites = sites.hop_sites();
  std::map<std::string, queue_sample> by_site;
  for (const auto& h : hops) {
    const auto bound = hop_sites.find(h.key);
    const std::string& site = bound == hop_sites.end() ? h.key : bound->second;
    auto& s = by_site[site];
    s.key = site;
    s.items += h.items;
    if (h.oldest_ms > 0 && (s.oldest_ms == 0 || h.oldest_ms < s.oldest_ms)) s.oldest_ms = h.oldest_ms;
  }
  std::vector<queue_sample> site_samples;
  for (auto& [key, s] : by_site) site_samples.push_back(std::move(s));
  add_queue_gauges(std::move(hops), "sluice_queue", "queue", "next hop", out);
  add_queue_gauges(std::move(site_samples), "sluice_site_queue", "site", "site (next hops with one MX set)", out);
}

}  // namespace

double resident_bytes() {
  std::FILE* f = std::fopen("/proc/self/statm", "r");
  if (!f) return -1;
  unsigned long long size = 0, resident = 0;
  const int n = std::fscanf(f, "%llu %llu", &size, &resident);
  std::fclose(f);
  if (n != 2) return -1;
  return static_cast<double>(resident) * static_cast<double>(sysconf(_SC_PAGESIZE));
}

double open_descriptors() {
  DIR* d = opendir("/proc/self/fd");
  if (!d) return -1;
  double n = 0;
  while (dirent* e = readdir(d))
    if (e->d_name[0] != '.') ++n;
  closedir(d);
  return n - 1;  // the directory's own descriptor
}

metrics::registry::collector_handle add_daemon_collectors(const store::queue_store& queue,
                                                           delivery::site_registry& sites) {
  const double started = static_cast<double>(unix_ms()) / 1000.0;
  return metrics::daemon().reg.add_collector([&queue, &sites, started](std::vector<metrics::family_snapshot>& out) {
    std::string error;
    if (auto s = queue.stats(error)) {
      auto messages = gauge("sluice_queue_messages", "Messages in the queue store");
      add_value(messages, static_cast<double>(s->messages));
      out.push_back(std::move(messages));
      auto submission = gauge("sluice_queue_submission_messages", "Messages accepted and not yet categorized");
      add_value(submission, static_cast<double>(s->submission_queued));
      out.push_back(std::move(submission));
    }
    sample_queues(queue, sites, out);
    auto outbound = gauge("sluice_outbound_connections_open", "Delivery connections open (every loop)");
    add_value(outbound, sites.connections().taken());
    out.push_back(std::move(outbound));
    auto rss = gauge("process_resident_memory_bytes", "Resident memory size in bytes");
    add_value(rss, resident_bytes());
    out.push_back(std::move(rss));
    auto fds = gauge("process_open_fds", "Number of open file descriptors");
    add_value(fds, open_descriptors());
    out.push_back(std::move(fds));
    auto start = gauge("process_start_time_seconds", "Start time of the process since the Unix epoch in seconds");
    add_value(start, started);
    out.push_back(std::move(start));
  });
}

}  // namespace sluice::main
