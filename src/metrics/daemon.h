// daemon.h: the metrics sluiced exports, one process-wide set that every module bumps where the event happens.
// Untrusted input: none here (label values are passed through to the registry as data).
#pragma once
#include "metrics/registry.h"

namespace sluice::metrics {

// Families are created once, with the process; a module keeps the series reference it
// gets from with() where it can (a per-message lookup scans at most a few dozen keys and
// takes no lock). Numbers that other structures already hold (queue depths, process
// size) are sampled by collectors that sluiced adds to `registry` at start.
struct daemon_metrics {
  daemon_metrics();
  registry reg;
  // Receive side, by receive connector name.
  counter_family& sessions;           // sluice_sessions_total{connector}
  gauge_family& connections_open;     // sluice_connections_open{connector}
  counter_family& messages_received;  // sluice_messages_received_total{connector}
  // Delivery side, by send connector (or "local") and site (the MX rollup key, or the
  // next hop for local mailboxes). One per message and attempt with that outcome.
  counter_family& messages_delivered;  // sluice_messages_delivered_total{connector,site}
  counter_family& messages_deferred;
  counter_family& messages_failed;     // permanent failures, ours or the remote's
  counter_family& messages_bounced;    // of those, refused by the remote server with 5xx
  counter_family& messages_expired;
  // The store's group commit: requests per transaction, and how long each took.
  histogram_family& commit_batch_size;     // sluice_store_commit_batch_size
  histogram_family& commit_duration;       // sluice_store_commit_duration_seconds
  counter_family& dns_lookups;             // sluice_dns_lookups_total (cache consulted)
  counter_family& dns_cache_hits;          // sluice_dns_cache_hits_total
  counter_family& tls_handshakes;          // sluice_tls_handshakes_total{version,outcome}
  counter_family& dsns_generated;          // sluice_dsns_generated_total
};

daemon_metrics& daemon();

}  // namespace sluice::metrics
