// engine.h: a worker loop's delivery engine: next hops, sites (MX rollup), outbound connections, retries, outcomes.
// Untrusted input: DNS answers (via dns::resolver) and remote SMTP replies (via smtp_connection), both carried
// as data into the store and the tracking log.
#pragma once
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "base/queue_id.h"
#include "config/config.h"
#include "delivery/attempt.h"
#include "delivery/hop_queues.h"
#include "delivery/maildir.h"
#include "delivery/send_tls.h"
#include "delivery/shaping.h"
#include "delivery/smtp_connection.h"
#include "dns/resolver.h"
#include "log/tracking_log.h"
#include "net/loop.h"
#include "retry/retry.h"
#include "route/hop_key.h"
#include "route/route.h"
#include "store/store.h"

namespace sluice::delivery {

struct engine_stats {
  uint64_t messages_delivered = 0;    // attempts that delivered at least one recipient
  uint64_t recipients_delivered = 0, recipients_deferred = 0, recipients_failed = 0, recipients_expired = 0;
  uint64_t connections_opened = 0;    // TCP connects started
  uint64_t connections_failed = 0;    // ended before a usable session
  uint64_t connections_reused = 0;    // messages sent on a connection that had carried one before
  uint64_t suspensions = 0;           // sites suspended after a failure streak
  uint64_t body_bytes_borrowed = 0;   // body bytes written straight from the store's map
  uint64_t store_retries = 0;         // deliver transactions that failed and were tried again
  uint64_t maildir_deliveries = 0;    // Maildir attempts made (one per item, any outcome)
  uint32_t connections_open = 0, connections_peak = 0;
  uint32_t sites = 0;
  uint64_t hops = 0;                  // next hops held in memory (dropped when their last item is done)
};

// One per worker loop; every member function runs on that loop's thread. It owns the
// delivery items of the next hops this loop owns (categorize::owner_of), the sites they
// roll up into, and every outbound connection it opens. Deliver requests it hands to the
// store are its own, borrowed by the writer until take_delivered() returns them, so the
// engine must not be destroyed before idle() (the worker waits for it).
class engine {
 public:
  // `producer` is this loop's lane in the store. `resolver` is this loop's and outlives it.
  // `registry` is the daemon's (shared by every loop, outliving them): it holds each site's
  // connection count and rate buckets, so limits hold across loops.
  engine(net::loop& loop, unsigned producer, store::queue_store& store, dns::resolver& resolver,
         site_registry& registry);
  ~engine();
  engine(const engine&) = delete;
  engine& operator=(const engine&) = delete;

  // A configuration generation: connectors, limits, retry policy, TLS contexts. Applies
  // to the next attempt of every item (a retry re-reads its connector's settings);
  // connections already open finish with the settings they were opened with.
  void set_config(std::shared_ptr<const config::config> cfg, std::shared_ptr<const send_tls> tls,
                  std::shared_ptr<const route::table> routes);
  // Where items this engine re-routes to other next hops go (the categorizer's rings to
  // their owning loops, this one included). Unset: re-routing is not done.
  using forwarder = std::function<void(hop_item&&)>;
  void set_forwarder(forwarder fn) { forward_ = std::move(fn); }
  // A reload changed the DNS settings: lookups from now on go to `r` (this loop's, outliving
  // the engine or replaced again). Lookups already asked of the old one still answer, and
  // are asked again here because the reload also changed the configuration epoch.
  void set_resolver(dns::resolver& r) { resolver_ = &r; }
  // A delivery item for a hop this loop owns: new from a categorizer, or recovered.
  void add(hop_item&& item);
  // Takes the store's deliver completions (call when the store notifies this producer).
  void poll();
  // Told the id of a message whose outcome just committed with report entries (failures,
  // delays, successes to report): the loop's reporter.
  using report_notifier = std::function<void(base::queue_id)>;
  void set_report_notifier(report_notifier fn) { notify_reports_ = std::move(fn); }
  // Message tracking: DELIVER, DEFER, FAIL and EXPIRE per attempt. Views valid during the call.
  using tracker = std::function<void(const log::tracking_record&)>;
  void set_tracker(tracker fn) { tracker_ = std::move(fn); }
  // Stop starting deliveries; messages on the wire finish (or are cut off after
  // `deadline_ms`, then recorded as deferred); idle connections are closed.
  void shutdown(uint32_t deadline_ms = 10'000);
  // Nothing in flight: no connection open, no deliver request in the store.
  bool idle() const;

  // ---- The administrator's actions (actions.cc), each on this loop's thread ----
  struct action_outcome {
    std::string error;       // "" = done
    bool found = true;       // false: nothing to act on (no such message or hop)
    uint64_t items = 0;      // items moved, or changed in the store
    uint64_t recipients = 0; // in those items (stored actions)
  };
  using action_done = std::function<void(const action_outcome&)>;
  // At start, before the first add(): the hops the administrator suspended (the store's hop
  // records), so what is recovered or arrives for them waits.
  void load_suspensions();
  // Items of next hop `hop_key` waiting for their retry time become ready now, and the
  // failure-streak suspension of its site is lifted. In memory only; how many items moved.
  uint64_t retry_hop(std::string_view hop_key);
  // The same for the items of one message this loop holds.
  uint64_t retry_message(base::queue_id id);
  // One durable control operation (store::control_request) on this loop's lane, then its
  // effect on this loop's memory: a suspended hop's ready work is parked (and what becomes
  // ready later too) until it is resumed or `until_ms` passes; a released message's held
  // items go back to work; a removed message's items are forgotten. Held items are parked
  // when an attempt would open them (the stored item says held), so hold needs no memory
  // change. `done` runs on this loop once the operation has committed (or failed).
  void control(store::control_action action, base::queue_id id, std::string hop_key, int64_t until_ms, action_done done);
  // In memory only: this loop's parked held items of `id` go back to work (another loop
  // committed the release); how many.
  uint64_t unpark(base::queue_id id);
  // In memory only: this loop forgets its items of `id` that are not on the wire (another
  // loop committed the removal) and ends its part of the removal (settle_removal); how many.
  uint64_t drop_message(base::queue_id id);
  // `message remove`, with or without --dsn, first step on every loop: from now on no attempt
  // of `id` starts on this loop (an item that comes up is parked until the removal ends), and
  // `done` runs on this loop, once, when no attempt of it is in progress here any more (at once
  // when none is), with the recipients those attempts delivered. An attempt is in progress
  // from the moment its item is opened until its outcome has committed, so what it delivered
  // is known and durable before anything is removed. While the removal is pending, an
  // attempt's deferrals are not tracked as DEFER (the removal tracks those recipients) and,
  // without --dsn, its outcome does not wake the reporter (the removal deletes the entries).
  // An attempt ends within its timeouts, so `done` does too.
  // An attempt that has not ended after removal_wait_ms (a destination stalling its final
  // reply for minutes) is not waited for any longer: `done` is told it is still unfinished,
  // and what it delivers later is tracked as DELIVER (its outcome then finds the item gone).
  void settle_removal(base::queue_id id, bool dsn, std::function<void(uint64_t delivered, bool unfinished)> done);
  static constexpr int64_t removal_wait_ms = 45'000;
  // The removal was refused by the store: the items parked for it go back to work.
  void end_removal(base::queue_id id);
  // `message remove` without a DSN, after settle_removal on every loop: the control operation
  // that deletes the message and everything of it (then this loop's memory), and once it has
  // committed a REMOVE tracking event naming `uid` for the recipients it still had queued
  // (all of them when it was not yet categorized and no attempt delivered any).
  void remove_message(base::queue_id id, int64_t uid, uint64_t delivered, action_done done);
  // `message remove --dsn`, after settle_removal on every loop: every recipient of `id` this
  // loop holds fails with removed_reply(), recorded as an attempt's outcome is (so the
  // reporter sends the sender one failure DSN), with a REMOVE tracking event naming `uid`,
  // and this loop's part of the removal ends. An item a connection had already taken (it was
  // not in a queue) fails when it comes up. How many items failed now.
  uint64_t fail_message(base::queue_id id, int64_t uid);
  // 5.0.0: RFC 3463 3.1, X.0.0 is for a failure none of the subject codes describes; an
  // administrator's removal is neither the destination's (X.3.x), the mailbox's nor the
  // network's doing, and 550 is the reply a next hop would give for a permanent refusal.
  static smtp::reply removed_reply();
  // `message bounce --domain D`: every recipient for `domain` this loop holds (an item of a
  // DNS hop for it whole; in other hops the recipients whose domain it is) fails as with
  // fail_message, with a BOUNCE tracking event naming `uid`. With `until_ms` ahead, the rule
  // stays (in memory here; the store has it for restarts) and mail for the domain fails at
  // its first attempt until then. How many items failed now.
  uint64_t bounce_domain(const std::string& domain, int64_t until_ms, int64_t uid);
  void cancel_bounce(const std::string& domain);

  const engine_stats& stats() const { return stats_; }
  // Items this loop holds (ready, waiting for a retry, or on the wire).
  uint64_t items() const { return items_; }

  class outbound;  // one outbound connection and the attempt it carries (engine.cc)
  struct site;
  struct hop;
  struct work {
    uint64_t hop_id = 0;
    base::queue_id id;
    uint32_t recipients = 0;
    int64_t received_at_ms = 0;
    uint32_t attempts = 0;
  };

 private:
  friend class outbound;
  int64_t now_ms() const;
  void tick();
  // Mail from the null sender (DSNs) expires sooner ([dsn] expire_after).
  const retry::policy& policy_for(const smtp::envelope& env) const { return env.mail_from.empty() ? dsn_retry_ : retry_; }
  // Local next hops (local.cc): the accepted domain's mailbox, if it has one.
  const config::accepted_domain* mailbox_domain(std::string_view name) const;
  void pump_local(hop& h);
  void start_maildir(hop& h, work&& w, const config::accepted_domain& ad);
  site& lmtp_site(const config::accepted_domain& ad);
  hop& hop_for(uint64_t hop_id, const std::string& key);
  void make_ready(hop& h, work&& w);
  // An item is finished (delivered, failed, or gone from the store): the hop may go too.
  void forget(const work& w);
  void bind(hop& h);
  void resolved(uint64_t hop_id, dns::destination&& d, uint64_t config_epoch);
  site& site_for(const std::string& key, const config::send_connector& sc, std::string_view domain);
  void set_limits(site& s, const config::delivery_limits& limits);
  void enqueue(site& s, hop& h);
  // The site failed failures_before_suspend connections in a row: what it has ready is
  // deferred now (and whatever becomes ready while it stays suspended), not tried one by one.
  void suspend(site& s, const std::string& why);
  smtp::reply suspended_reply(const site& s) const;
  void pump(site& s);
  void close_idle();  // QUIT every idle connection of every site
  void pump_site(site& s, int64_t now);
  bool next_work(site& s, work& out);
  void open_connection(site& s, work&& first);
  // Every recipient of `w` gets `r` (deferred for 4xx, failed for 5xx): DNS failures, attempts
  // that found no usable connection, a connector that is gone.
  void settle_all(const work& w, const smtp::reply& r, std::string_view remote_mta);
  void settle_all(const work& w, const store::message_view& view, const smtp::reply& r, std::string_view remote_mta);
  // For an item found expired before its next attempt: the reason its last attempt gave
  // (what the sender's report should say), or that it was never tried.
  static smtp::reply expired_reply(const store::message_view& view);
  // The item's view, or nullptr when it is gone (then forgotten; a read error is logged).
  std::unique_ptr<store::message_view> open_item(const work& w);
  // The hop's send connector is gone or disabled: the current route table decides where
  // the item's recipients go now (moved durably, then forwarded); without a new route
  // they defer with `r`.
  void reroute(const work& w, const smtp::reply& r);
  void rerouted(store::reroute_request& req);
  // Records one attempt's outcome durably; the item is rescheduled or forgotten when it commits.
  void record(const work& w, const store::message_view& view, attempt_result&& result);
  // The report entries an outcome makes besides failures: successes asked for with
  // NOTIFY=SUCCESS, and one delay report per item once it has waited [dsn] delay_after.
  void add_reports(const store::message_view& view, const attempt_result& result, bool expired,
                   store::deliver_request& req) const;
  // The engine's own requests: a store request plus what the engine needs back with it.
  // Held by their own type, so they are destroyed as what they are.
  struct pending_deliver;
  struct pending_reroute;
  void submit(std::unique_ptr<pending_deliver> req);
  void submit(std::unique_ptr<pending_reroute> req);
  // Hands in what a full lane or a failed commit left waiting, once it is due.
  template <class Pending>
  void resubmit(std::vector<std::unique_ptr<Pending>>& waiting, int64_t now);
  std::string_view hop_key_of(uint64_t hop_id) const;
  void completed(store::deliver_request& req);
  // actions.cc
  struct pending_control;
  void controlled(store::control_request& req);
  bool suspended(const hop& h, int64_t now) const;
  void park_hop(hop& h);
  void unpark_hop(const std::string& key);
  // Suspensions that ended, removals no attempt is left to finish for.
  void tick_actions(int64_t now);
  // Every item of `id` this loop holds that is not on the wire, taken out of where it waits.
  std::vector<work> take_message(base::queue_id id);
  template <class Pred>
  uint64_t wake_waiting(Pred pred);
  void make_ready_all(std::vector<work>& ws);
  void closed(outbound& o);
  void track(log::tracking_event ev, const store::message_view& view, const std::vector<uint32_t>& rcpts,
             std::string_view hop_key, std::string_view detail);
  connection_settings settings_for(const site& s, const std::string& host_name) const;
  const config::send_connector* connector(std::string_view name) const;
  config::delivery_limits limits_for(const config::send_connector& sc, std::string_view domain) const;

  net::loop& loop_;
  unsigned producer_;
  site_registry& registry_;
  store::queue_store& store_;
  dns::resolver* resolver_;
  std::shared_ptr<const config::config> cfg_;
  std::shared_ptr<const send_tls> tls_;
  std::shared_ptr<const route::table> routes_;
  forwarder forward_;
  uint64_t config_epoch_ = 0;  // bumped per set_config: stale hop-to-site bindings re-resolve
  retry::policy retry_, dsn_retry_;
  tracker tracker_;
  report_notifier notify_reports_;
  std::mt19937_64 rng_;

  std::unordered_map<uint64_t, std::unique_ptr<hop>> hops_;
  std::unordered_map<std::string, std::unique_ptr<site>> sites_;
  // Items waiting for their retry time, by due time (unix ms).
  std::multimap<int64_t, work> waiting_;
  std::vector<std::unique_ptr<outbound>> outbounds_;
  std::vector<std::unique_ptr<outbound>> dead_;     // closed, destroyed on the next tick
  // Opportunistic TLS: hosts whose handshake failed, tried in plaintext until then.
  std::unordered_map<std::string, int64_t> broken_tls_;
  // Addresses that refused or timed out a connect, skipped until then (RFC 5321 4.5.4.1).
  std::unordered_map<std::string, int64_t> unreachable_;
  // Refused by a full lane, or failed in the store and due again at their retry_at_ms.
  std::vector<std::unique_ptr<pending_deliver>> unsent_;
  std::vector<std::unique_ptr<pending_reroute>> unsent_reroutes_;
  // The administrator's: suspended hops by key, until when (unix ms; INT64_MAX = until
  // resumed), the ready work of suspended hops by hop id, and held items by (queue id, hop id).
  std::unordered_map<std::string, int64_t> suspended_;
  std::unordered_map<uint64_t, std::deque<work>> parked_;
  std::map<std::pair<uint64_t, uint64_t>, work> held_;
  // Messages being removed with a DSN while an item was on the wire: the admin's uid and
  // until when the entry is kept (an attempt ends within its timeouts).
  struct failing {
    int64_t uid = -1;
    int64_t until_ms = 0;
  };
  std::unordered_map<uint64_t, failing> failing_;
  void fail_item(const work& w, int64_t uid);
  // Items with an attempt in progress on this loop, by (queue id, hop id): from open_item
  // until the outcome has committed (completed) or the item was moved (rerouted).
  std::set<std::pair<uint64_t, uint64_t>> attempting_;
  bool attempting(uint64_t id) const;
  // The item's attempt has ended (outcome committed): a removal waiting for it may go on.
  void attempt_ended(const work& w, uint64_t delivered);
  // Messages being removed (settle_removal), by queue id, until drop_message,
  // fail_message or end_removal.
  struct removal {
    bool dsn = false;
    uint64_t delivered = 0;  // by the attempts that were in progress
    int64_t wait_until_ms = 0;
    std::vector<std::function<void(uint64_t, bool)>> waiting;
  };
  std::unordered_map<uint64_t, removal> removing_;
  // Bounce rules by lower-case domain, until when (unix ms).
  std::unordered_map<std::string, int64_t> bounces_;
  // The recipients of an item about to be attempted that a bounce rule fails: failed now
  // (true: the attempt is not made).
  bool bounce_at_attempt(const work& w, const store::message_view& view);
  // Some recipients of `w` fail with `r` as an attempt's outcome, tracked as `ev`.
  void fail_recipients(const work& w, const store::message_view& view, const std::vector<uint32_t>& rcpts,
                       const smtp::reply& r, log::tracking_event ev, const std::string& detail);
  std::vector<uint32_t> bounced_recipients(const hop& h, const store::message_view& view, std::string_view domain) const;
  template <class Pred>
  std::vector<work> take_if(Pred pred);
  std::size_t in_store_ = 0;
  uint32_t maildir_jobs_ = 0;  // Maildir deliveries on the thread pool
  uint64_t items_ = 0;
  uint32_t open_total_ = 0;
  bool stopping_ = false;
  int64_t stop_deadline_ms_ = 0;
  engine_stats stats_;
  net::timer tick_;
};

}  // namespace sluice::delivery
