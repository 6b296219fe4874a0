// receiver.h: the receive connectors of one worker loop: listeners, sessions and recipient policy.
// Untrusted input: inbound connections and the addresses clients give at RCPT.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "auth/limiter.h"
#include "route/route.h"
#include "base/queue_id.h"
#include "config/config.h"
#include "log/protocol_log.h"
#include "log/tracking_batch.h"
#include "net/connection.h"
#include "net/loop.h"
#include "smtpd/connection_limits.h"
#include "smtpd/session.h"

namespace sluice::smtpd {

class receiver final : public session_host {
 public:
  // `submit_fn` forwards a request to the store on this loop's producer slot. RECEIVE
  // events go to `tracking`, the loop's batch, which must outlive the receiver. Nothing
  // is listened on, and no connection accepted, before the first install(). `budget`
  // (shared by every loop's receiver, outliving them) bounds the message bytes all
  // sessions hold in memory; null means no bound. `auth_limiters` is the daemon's,
  // shared by every loop (null: this receiver keeps its own).
  receiver(net::loop& loop, unsigned worker_index, log::tracking_batch& tracking,
           std::function<bool(store::submit_request*)> submit_fn, in_flight_budget* budget = nullptr,
           std::shared_ptr<auth::limiter_registry> auth_limiters = nullptr);
  ~receiver() override;

  // Takes the receive policies of a configuration generation (loop thread): the first
  // at start, the next on each reload. New sessions use them; running
  // sessions keep the policy and certificates they started with. Bindings present in
  // both keep their sockets, new ones are opened, dropped ones closed. Returns "" or
  // the first error (the bindings that failed are not listened on).
  std::string install(std::shared_ptr<const connector_policies> next);
  // SIGTERM: stop accepting; sessions with a transaction under way may finish it (its
  // reply, then 421), the others get 421 now.
  void drain();
  // Stop accepting and reading commands: 421 to every session, after the reply to a
  // message that is already in the store (the drain's deadline, or no drain at all).
  void shutdown();
  // Writes the protocol log batches gathered since the last call (called on a timer;
  // tracking events are the worker's, in its tracking_batch).
  void flush_logs();
  size_t session_count() const { return sessions_.size(); }

  // session_host
  net::loop& event_loop() override { return loop_; }
  base::queue_id next_queue_id() override { return ids_.next(); }
  bool submit(store::submit_request* request) override { return submit_fn_(request); }
  smtp::reply check_recipient(const connector_policy& policy, bool authenticated, const smtp::recipient& rcpt,
                              uint64_t declared_size) override;
  void log_protocol(const connector_policy& policy, uint64_t session, uint32_t sequence, std::string_view local,
                    std::string_view remote, log::event kind, std::string_view data) override;
  auth::failure_limiter& auth_limiter(const connector_policy& policy) override;
  void track(const log::tracking_record& record) override;
  void retire(session* s) override;
  in_flight_budget* content_budget() override { return budget_; }
  std::string postmaster_address() override;

 private:
  struct session_slot {
    std::unique_ptr<session> owner;
    std::shared_ptr<const connector_policies> admitted_by;  // the generation it was admitted by
  };
  void accept(std::unique_ptr<net::connection> conn);
  void reap();
  // Listens on every binding of every connector. Returns "" or the first error.
  std::string listen();
  // Closes every listener, then calls `each` on every session (a copy of the set: the
  // call may retire the session).
  void stop_accepting(void (session::*each)());

  net::loop& loop_;
  unsigned worker_index_;
  log::tracking_batch& tracking_;
  std::shared_ptr<const connector_policies> policies_;
  std::function<bool(store::submit_request*)> submit_fn_;
  in_flight_budget* budget_;
  base::queue_id_generator ids_;
  // Lines not yet written, per log file; flush_logs() hands them to the threadpool.
  std::unordered_map<const log::append_file*, std::pair<std::shared_ptr<const log::append_file>, std::string>>
      pending_logs_;
  std::unordered_map<std::string, std::unique_ptr<net::listener>> listeners_;  // by binding text
  std::unordered_map<session*, session_slot> sessions_;
  std::vector<session*> retired_;
  std::shared_ptr<auth::limiter_registry> auth_limiters_;
  // This generation's lookups into auth_limiters_, so AUTH takes the registry lock once.
  std::unordered_map<const connector_policy*, std::shared_ptr<auth::failure_limiter>> limiters_;
  net::async_signal reaper_;  // frees retired sessions after the callback that retired them
  uint64_t next_session_id_;
  bool shutting_down_ = false;
};

}  // namespace sluice::smtpd
