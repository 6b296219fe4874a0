// reporter.h: a worker loop's DSN generator: pending report entries in the store become RFC 3464 reports in the queue.
// Untrusted input: the original messages' envelopes, headers and remote replies (composed into reports by src/dsn).
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "base/queue_id.h"
#include "config/config.h"
#include "log/tracking_log.h"
#include "store/store.h"

namespace sluice::delivery {

struct reporter_stats {
  uint64_t reports_queued = 0;     // DSNs enqueued
  uint64_t entries_dropped = 0;    // entries nobody gets a report for (NOTIFY=NEVER, the null sender)
  uint64_t stale = 0;              // requests that found their entries taken by another loop first
  uint64_t store_retries = 0;
};

// The delivery engine and the categorizer record what should be reported (a failure, a
// delay, a success) as pending entries in the same transaction as the outcome itself
// (store `reports`). This turns them into reports: it reads a message's entries, composes
// one report per kind of event (failures, delays, successes) and hands the store one
// `report` request per report, which enqueues the DSN and removes exactly the entries it
// covers in one transaction. A crash before that commit leaves the entries, so the report is
// made after the restart; a request whose entries are gone (another loop got there first)
// is refused whole as stale, so no report is sent twice.
//
// Loop thread only. Its report requests are its own, borrowed by the store writer until
// take_reported() hands them back; the reporter must outlive that (idle()).
class reporter {
 public:
  // `next_id` issues queue ids on this loop (the receiver's generator: one per loop and
  // issuer, so ids never collide). `producer` is this loop's store lane.
  using id_source = std::function<base::queue_id()>;
  reporter(unsigned producer, store::queue_store& store, id_source next_id);
  ~reporter();
  reporter(const reporter&) = delete;
  reporter& operator=(const reporter&) = delete;

  void set_config(std::shared_ptr<const config::config> cfg) { cfg_ = std::move(cfg); }
  // A DSN is durable in the submission queue: the categorizer takes it from here.
  using handoff = std::function<void(base::queue_id)>;
  void set_handoff(handoff fn) { handoff_ = std::move(fn); }
  using tracker = std::function<void(const log::tracking_record&)>;
  void set_tracker(tracker fn) { tracker_ = std::move(fn); }

  // The message may have pending entries now (an outcome naming some just committed).
  void notify(base::queue_id original);
  // Every message with pending entries, in queue order, except those whose entries are all
  // younger than `min_age_ms` (their notify() is on its way). At start with 0: the entries a
  // crash or a stop left behind.
  void sweep(int64_t min_age_ms);
  // Takes the store's report completions (call when the store notifies this producer), and
  // hands in again what a full lane or a failed commit left waiting once it is due.
  void poll();
  void shutdown() { stopping_ = true; }
  bool idle() const { return in_store_ == 0 && (waiting_.empty() || stopping_); }
  const reporter_stats& stats() const { return stats_; }

 private:
  struct pending_report;
  void process(base::queue_id id);
  void submit(std::unique_ptr<pending_report> req);
  void completed(store::report_request& req);
  int64_t now_ms() const;

  unsigned producer_;
  store::queue_store& store_;
  id_source next_id_;
  std::shared_ptr<const config::config> cfg_;
  handoff handoff_;
  tracker tracker_;
  // Requests in the store per original message: it is read again only when they are back.
  std::unordered_map<uint64_t, uint32_t> busy_;
  // Messages notified while busy: processed again once their requests are back.
  std::unordered_set<uint64_t> again_;
  std::vector<std::unique_ptr<pending_report>> waiting_;  // a full lane or a failed commit
  std::size_t in_store_ = 0;
  bool stopping_ = false;
  reporter_stats stats_;
};

}  // namespace sluice::delivery
