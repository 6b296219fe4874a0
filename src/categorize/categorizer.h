// categorizer.h: a worker loop's categorizer shard and its next hops' in-memory delivery queues.
// Untrusted input: envelopes read back from the store (recipient addresses, routed as data).
#pragma once
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "base/queue_id.h"
#include "log/tracking_log.h"
#include "net/loop.h"
#include "route/route.h"
#include "rules/rules.h"
#include "categorize/categorize.h"
#include "delivery/hop_queues.h"
#include "ring/mesh.h"
#include "store/store.h"

namespace sluice::categorize {


// Every cross-loop path of the categorizer, shared by all worker loops. Created before the
// loops start and destroyed after they have all been joined.
struct links {
  explicit links(unsigned loops) : ids(loops), items(loops), stored_items(ids.loops()) {}
  links(const links&) = delete;
  links& operator=(const links&) = delete;
  unsigned loops() const { return ids.loops(); }

  // Receiving loop -> categorizer shard: ids of messages whose submission is durable.
  // 4096 per pair: a burst of one group commit (up to 1024 per lane) from every
  // session of one loop fits without spilling into the producer's overflow list.
  ring::ring_mesh<base::queue_id, 4096> ids;
  // Categorizer shard -> the loop owning the item's next hop.
  ring::ring_mesh<delivery::hop_item, 1024> items;
  // Any thread: loop `to` has something in its incoming rings. Set before the loops
  // start; the daemon wires it to the worker's uv_async (which coalesces wake-ups).
  std::function<void(unsigned to)> wake;
  // Loop threads: one line for the daemon's log (failed recipients, store errors), called
  // concurrently by different loops. Unset: standard error.
  std::function<void(const std::string& line)> log;
  // Before any loop starts: reads every stored delivery item and sorts it by owning
  // loop into stored_items, which each loop's recover() then takes. Done up front, in
  // one pass before anything is categorized, because a loop scanning the store itself
  // could also see items another loop has just written and is about to hand it.
  bool load_stored_items(const store::queue_store& store, std::string& error);
  std::vector<std::vector<delivery::hop_item>> stored_items;
};


struct categorizer_stats {
  uint64_t categorized = 0;        // messages whose categorize transaction committed
  uint64_t duplicates = 0;         // not_queued: someone categorized them first
  uint64_t items_sent = 0;         // delivery items handed to hop owners
  uint64_t failed_recipients = 0;  // recorded in failed lists
  uint64_t store_errors = 0;       // failed attempts (storage_full / failed / unreadable): retried later
  uint64_t given_up = 0;           // messages failed with 5.3.0 after repeated failures (retry_policy)
  uint64_t body_waits = 0;         // times the next message waited for the body budget
  std::size_t body_bytes = 0;      // edited bodies held by jobs in the store now
  std::size_t body_bytes_peak = 0; // the most body_bytes has been
};

// How a shard retries a message whose categorization failed. The delay doubles from
// first_ms at each failure of the same message, up to cap_ms, with one log line per
// failure, so a message that keeps failing costs a line every cap_ms, not every second.
// After give_up_after failures that were not storage_full, the message's recipients are
// failed with 5.3.0 (see categorizer.cc for why); storage_full is retried for ever, as the
// failed list needs the space the store lacks and a full disk is an operator's alarm, not
// the sender's problem.
struct retry_policy {
  uint64_t first_ms = 1000;
  uint64_t cap_ms = 300'000;
  unsigned give_up_after = 12;  // about 18 minutes of attempts with the defaults
};

// Body bytes one shard's jobs may hold at once (bodies read for header edits, kept until
// the store has written them). A message that would exceed it waits for completions,
// unless no body is held at all: one message larger than the budget still proceeds alone.
inline constexpr std::size_t default_body_budget = std::size_t{64} << 20;

// One per worker loop; every member function runs on that loop's thread only. The
// categorize requests it hands to the store are owned by this object and borrowed by the
// store's writer until take_categorized() returns them, so the object must not be
// destroyed while idle() is false (the worker waits for it when stopping).
class categorizer {
 public:
  categorizer(net::loop& loop, unsigned index, store::queue_store& store, links& l,
              std::shared_ptr<const route::table> routes);
  ~categorizer();
  categorizer(const categorizer&) = delete;
  categorizer& operator=(const categorizer&) = delete;

  // A message this loop received is durable: send its id to its shard (possibly this
  // one). Queued locally; flush() pushes it.
  void hand_off(base::queue_id id);
  // Pushes what hand_off and completions queued into the rings and wakes the loops that
  // got something. Anything a full ring refused is retried on a 1 ms timer.
  void flush();
  // Drains everything addressed to this loop: categorize completions, incoming ids
  // (starting their categorization), incoming items. Then flush(). Call when woken.
  void poll();
  // Once, on the loop, at start: messages still in the submission queue that belong to
  // this shard (acknowledged, not categorized when the daemon stopped) are categorized,
  // and the stored items of the hops this loop owns (links::load_stored_items) are
  // taken into its queues.
  void recover();
  // Stop starting categorizations; ids still queued stay in the submission queue.
  void shutdown();
  // No categorize request is in the store.
  bool idle() const { return in_flight_ == 0; }
  // The routing table and transport rules of a configuration generation (loop thread:
  // the worker hands them over with the rest of the generation); used from the next
  // message on. Null rules: none apply.
  void set_routes(std::shared_ptr<const route::table> routes, std::shared_ptr<const rules::rule_set> rules) {
    routes_ = std::move(routes);
    rules_ = std::move(rules);
  }
  // Message tracking: once a categorization is durable, one ROUTE event per delivery item
  // (its recipients, the next hop), one FAIL per failed recipient and one RULE per transport
  // rule that fired. Called on this loop; the record's views are valid during the call
  // only. Unset: only failures and rules go to links::log.
  using tracker = std::function<void(const log::tracking_record&)>;
  void set_tracker(tracker fn) { tracker_ = std::move(fn); }

  // Before recover() and the first poll().
  void set_body_budget(std::size_t bytes) { body_budget_ = bytes; }
  void set_retry_policy(retry_policy p) { retry_policy_ = p; }

  // A delivery item written by this loop (the delivery engine re-routing queued mail) goes
  // to the loop that owns its next hop, through the same rings as new items.
  void forward(delivery::hop_item&& item) {
    out_items_[owner_of(item.hop_key, links_.loops())].push_back(std::move(item));
    flush();
  }
  // Where delivery items for this loop's next hops go (new ones from any shard, and the
  // stored ones at recover()): the loop's delivery engine. Unset: they collect in queues().
  using item_sink = std::function<void(delivery::hop_item&&)>;
  void set_item_sink(item_sink fn) { item_sink_ = std::move(fn); }
  // Told the id of a message categorized with failed recipients (report entries to turn
  // into a DSN): the loop's reporter.
  using report_notifier = std::function<void(base::queue_id)>;
  void set_report_notifier(report_notifier fn) { notify_reports_ = std::move(fn); }
  const delivery::hop_queues& queues() const { return queues_; }
  const categorizer_stats& stats() const { return stats_; }
  std::size_t backlog() const { return todo_.size() - todo_head_; }
  // Heap bytes held by the job pool's buffers (capacities, idle jobs included): what the
  // pool keeps between messages, for tests and diagnostics. Walks the pool: not per message.
  std::size_t job_bytes() const;
  // Messages waiting for a retry after a failed categorization.
  std::size_t retrying() const { return retry_due_.size(); }

 private:
  struct job;
  // Per message whose categorization failed, until it succeeds or is given up.
  struct failure {
    unsigned attempts = 0;       // failures in a row, any kind
    unsigned hard_attempts = 0;  // of those, not storage_full
    bool give_up = false;        // next attempt fails every recipient with 5.3.0
    std::string last_error;
  };
  void start_some();
  void complete(job& j);
  job* take_job();
  void release(job& j);
  void log(const std::string& line);
  void arm_flush();
  void track(const job& j);
  void take_item(delivery::hop_item&& item);
  void arm_retry();
  void retry_due();
  // `transient`: the store's condition (storage_full, a failed read), not this message's,
  // so it does not count towards giving up. `quiet`: the caller logged it for a batch.
  void note_failure(base::queue_id id, const std::string& error, bool transient, bool quiet);
  // Fills j.req for one message; false (j to be released) when its body would overrun
  // the body budget.
  bool route_one(job& j, const route::table& routes, base::queue_id id, const smtp::envelope& env,
                 const store::message_metadata& meta);
  void fill_given_up(job& j, base::queue_id id, const smtp::envelope& env, const store::message_metadata& meta,
                     const failure& f);

  net::loop& loop_;
  unsigned index_;
  store::queue_store& store_;
  links& links_;
  std::shared_ptr<const route::table> routes_;
  std::shared_ptr<const rules::rule_set> rules_;
  message_router router_;
  std::string header_block_;  // scratch for rules with header conditions
  tracker tracker_;
  delivery::hop_queues queues_;
  item_sink item_sink_;
  report_notifier notify_reports_;
  categorizer_stats stats_;

  std::vector<base::queue_id> todo_;  // ids to categorize; consumed from todo_head_
  std::size_t todo_head_ = 0;
  // Failed messages by due time (loop ms); failures_ holds their counts by queue id value.
  std::multimap<uint64_t, base::queue_id> retry_due_;
  std::unordered_map<uint64_t, failure> failures_;
  retry_policy retry_policy_;
  std::size_t body_budget_ = default_body_budget;
  std::vector<std::vector<base::queue_id>> out_ids_;  // per target shard, not yet pushed
  std::vector<std::vector<delivery::hop_item>> out_items_;      // per owner loop, not yet pushed
  std::vector<std::unique_ptr<job>> jobs_;            // every job ever made (the pool)
  std::vector<job*> free_jobs_;
  std::size_t in_flight_ = 0;
  bool stopping_ = false;
  net::timer flush_timer_;
  net::timer retry_timer_;
  // The timers get their callbacks once (in the constructor's first arm) and are re-armed
  // with again(): start() would replace the std::function while it may be running.
  bool flush_armed_ = false;
  bool retry_armed_ = false;
  bool flush_started_ = false;
  bool retry_started_ = false;
};

}  // namespace sluice::categorize
