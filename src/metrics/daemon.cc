// daemon.cc: names, help texts, labels and buckets of sluiced's metrics.
// Untrusted input: none.
#include "metrics/daemon.h"

namespace sluice::metrics {

namespace {

// Delivery outcomes: by send connector and site, sites beyond the bound counted as "other".
counter_family& by_site(registry& r, std::string name, std::string help) {
  return r.add_counter(std::move(name), std::move(help), {"connector", "site"}, registry::default_max_series, "site");
}

}  // namespace

daemon_metrics::daemon_metrics()
    : sessions(reg.add_counter("sluice_sessions_total", "SMTP sessions accepted, by receive connector", {"connector"})),
      connections_open(reg.add_gauge("sluice_connections_open", "Inbound connections open, by receive connector", {"connector"})),
      messages_received(reg.add_counter("sluice_messages_received_total",
                                        "Messages accepted and queued (250 sent), by receive connector", {"connector"})),
      messages_delivered(by_site(reg, "sluice_messages_delivered_total", "Messages delivered to a next hop, by send connector and site")),
      messages_deferred(by_site(reg, "sluice_messages_deferred_total",
                                "Delivery attempts that left recipients for a retry, by send connector and site")),
      messages_failed(by_site(reg, "sluice_messages_failed_total",
                              "Delivery attempts that failed recipients permanently, by send connector and site")),
      messages_bounced(by_site(reg, "sluice_messages_bounced_total",
                               "Delivery attempts the remote server refused with a 5xx reply, by send connector and site")),
      messages_expired(by_site(reg, "sluice_messages_expired_total",
                               "Messages whose recipients expired in the queue, by send connector and site")),
      commit_batch_size(reg.add_histogram("sluice_store_commit_batch_size",
                                          "Write requests carried by one group-commit transaction",
                                          exponential_buckets(1, 2, 13))),
      commit_duration(reg.add_histogram("sluice_store_commit_duration_seconds",
                                        "Time to write and fsync one group-commit transaction",
                                        exponential_buckets(0.0001, 2, 16))),
      dns_lookups(reg.add_counter("sluice_dns_lookups_total", "DNS lookups (the answer cache consulted)")),
      dns_cache_hits(reg.add_counter("sluice_dns_cache_hits_total", "DNS lookups answered from the cache")),
      tls_handshakes(reg.add_counter("sluice_tls_handshakes_total", "TLS handshakes, by protocol version and outcome",
                                     {"version", "outcome"}, registry::default_max_series, "version")),
      dsns_generated(reg.add_counter("sluice_dsns_generated_total", "Delivery status notifications queued")) {}

daemon_metrics& daemon() {
  // Created on first use (whichever thread bumps a metric first), so no module depends on
  // static initialisation order; sluiced joins every thread before exit destroys it.
  static daemon_metrics m;
  return m;
}

}  // namespace sluice::metrics
