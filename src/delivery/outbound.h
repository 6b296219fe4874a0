// outbound.h: the engine's parts shared by engine.cc and outbound.cc: hops, sites and one outbound connection's attempt.
// Untrusted input: remote SMTP replies (through smtp_connection), carried as data into attempt results.
#pragma once
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "delivery/engine.h"

namespace sluice::delivery {

// A store failure to record an outcome is retried after this (the outcome is kept).
inline constexpr int64_t store_retry_ms = 1000;
// How long an address that refused a connect is skipped by new attempts.
inline constexpr int64_t unreachable_ms = 60'000;

// One host a site's connections may go to, with its addresses in try order.
struct site_host {
  std::string name;
  uint16_t preference = 0;
  uint16_t port = 25;
  std::vector<std::string> addresses;
  std::string unix_path;  // an LMTP server's Unix socket (then no addresses); "" = TCP
};

// One next hop (one delivery queue): its items ready to go, and the site it rolls up into
// while that binding is fresh (the DNS answer's TTL, or until the next configuration).
struct engine::hop {
  uint64_t id = 0;
  std::string key;
  route::hop_key_kind kind = route::hop_key_kind::invalid;
  std::string connector;  // send connector name (smart_host, dns); the accepted domain (local)
  std::string domain;     // dns: the recipient domain
  std::deque<work> ready;
  uint32_t jobs = 0;      // local: Maildir deliveries of this hop on the thread pool
  uint64_t items = 0;     // this hop's items the engine holds (ready, waiting, on the wire, in the store)
  site* bound = nullptr;
  uint64_t epoch = 0;
  int64_t bound_until_ms = 0;
  bool resolving = false;
  bool in_site = false;   // listed in bound->hops
};

// A site: every next hop of one send connector whose MX host set is the same (MX rollup),
// or one smart-host connector. One queue of ready work (round robin over its hops, so a
// big domain does not starve a small one), one set of limits, one idle pool.
struct engine::site {
  std::string key;        // "<connector>|mx:a.example,b.example" or "<connector>|smarthost"
  std::string connector;
  bool smart_host = false;
  bool lmtp = false;               // a mailbox server's LMTP service (local delivery)
  config::delivery_limits limits;
  std::vector<site_host> hosts;    // the latest answer, preference order
  std::deque<hop*> hops;           // hops with ready work
  std::vector<outbound*> idle;     // connections waiting for work
  uint32_t open = 0;               // this loop's connections open or opening
  std::shared_ptr<shared_site> shared;  // the daemon-wide connection count and rate buckets
  failure_streak streak;
  std::string last_failure;        // why the streak last suspended the site
  bool pumping = false;            // inside engine::pump for this site
};

// The engine's own store requests: a store request plus what the engine needs back with it.
struct engine::pending_deliver final : store::deliver_request {
  work next;                // the item as it will be if recipients remain
  int64_t retry_at_ms = 0;  // store failure: when to hand it in again
};

struct engine::pending_reroute final : store::reroute_request {
  work old;                 // the item being moved
  int64_t retry_at_ms = 0;
};

// Where one connection attempt goes.
struct target {
  std::string host;       // MX or smart host name (for TLS names, logs, broken-TLS memory)
  std::string address;
  uint16_t port = 25;
  bool skip_tls = false;
  std::string unix_path;  // LMTP over a Unix socket instead of address:port
};

// One outbound connection, from the first connect through failover to the last message.
// It is opened for one item (`bound_`) and tries the site's addresses in order until a
// session is usable or the attempt's budget (max_addresses, max_sessions, the reconnect
// policy) is spent; then it carries that item and whatever else the site has ready, up to
// max_messages_per_connection. The engine owns it; it destroys itself only through
// engine::closed().
class engine::outbound final : public smtp_connection::handler {
 public:
  outbound(engine& e, site& s, work first, std::vector<target> targets);
  ~outbound() override;
  void start();
  // Idle and handed work by the engine's pump: false when the site had none to give.
  bool wake();
  void quit();
  void abort();
  site& owner() { return *site_; }
  bool is_idle() const { return idle_; }
  int64_t idle_since_ms() const { return idle_since_ms_; }

  // smtp_connection::handler
  void on_ready(smtp_connection& c) override;
  void on_message_done(smtp_connection& c, std::vector<smtp::reply>&& replies) override;
  void on_closed(smtp_connection& c, const connection_failure& f) override;

 private:
  void connect_current();
  void next_step();
  bool begin(work w);
  void send_batch();
  void finish_message();
  void abandon_message(const smtp::reply& why);
  void go_idle();
  bool failover(const connection_failure& f);
  smtp::reply give_up_reply() const;

  engine& e_;
  site* site_;
  std::vector<target> targets_;
  std::size_t next_ = 0;         // index of the target being tried
  uint32_t addresses_tried_ = 0;
  uint32_t sessions_used_ = 0;   // targets that greeted us
  std::unique_ptr<smtp_connection> conn_;
  std::optional<work> bound_;
  bool ever_ready_ = false;
  bool ready_pending_ = false;
  bool awaiting_reply_ = false;  // a batch of current_ is sent and not yet answered  // on_ready came before the final reply of current_
  bool idle_ = false;
  bool closing_ = false;
  int64_t idle_since_ms_ = 0;
  uint32_t messages_ = 0;
  uint64_t last_borrowed_ = 0;  // conn_->body_bytes_borrowed() already counted in the engine's stats
  std::string last_error_;
  std::string last_enhanced_ = "4.4.1";

  // The message on the wire.
  std::optional<work> current_;
  std::unique_ptr<store::message_view> view_;
  std::vector<uint32_t> indices_;     // the item's recipients (envelope indices)
  std::size_t batch_begin_ = 0, batch_end_ = 0;
  outbound_message msg_;
  attempt_result result_;
};

}  // namespace sluice::delivery
