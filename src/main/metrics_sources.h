// metrics_sources.h: the numbers sluiced samples at scrape time (queue depths, outbound connections, process).
// Untrusted input: none (next-hop keys in the store name remote domains; they are label values only).
#pragma once
#include <string>

#include "metrics/registry.h"

namespace sluice::store {
class queue_store;
}
namespace sluice::delivery {
class site_registry;
}

namespace sluice::main {

// Adds to metrics::daemon().reg a collector reading `queue` (short read transactions on the
// collecting thread), `sites` and /proc/self; both must outlive the returned handle.
//   sluice_queue_messages                    messages in the store
//   sluice_queue_submission_messages         accepted, not yet categorized
//   sluice_queue_depth{queue}                delivery items per next hop (the 50 deepest, then "other")
//   sluice_queue_oldest_age_seconds{queue}   age of each next hop's oldest message
//   sluice_outbound_connections_open         delivery connections open, every loop
//   process_resident_memory_bytes, process_open_fds, process_start_time_seconds
metrics::registry::collector_handle add_daemon_collectors(const store::queue_store& queue,
                                                           delivery::site_registry& sites);

// Resident set size in bytes (/proc/self/statm) and open descriptors (/proc/self/fd); -1 if unreadable.
double resident_bytes();
double open_descriptors();

}  // namespace sluice::main
