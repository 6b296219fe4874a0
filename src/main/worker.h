// worker.h: one worker thread and its libuv loop: receive connectors, store completions, pickup, categorizer shard.
#pragma once
#include <atomic>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "admin/server.h"
#include "categorize/categorizer.h"
#include "delivery/shaping.h"
#include "generation/generation.h"
#include "main/mailbox.h"
#include "metrics/http_endpoint.h"

namespace sluice::store {
class queue_store;
}

namespace sluice::smtpd {
class in_flight_budget;
}

namespace sluice::main {

class worker {
 public:
  // `links` is shared by every worker and must outlive the worker. `first` is the
  // configuration generation the loop starts with; it takes it the way it takes a reload.
  // `budget` is the daemon's limit on message bytes in memory, shared by every worker
  // and outliving them. `auth_limiters` is the daemon's, shared with every other worker.
  // `sites` is the daemon's delivery site registry, shared by every worker and outliving them.
  worker(unsigned index, store::queue_store& store, categorize::links& links,
         std::shared_ptr<const generation::generation> first, smtpd::in_flight_budget& budget,
         std::shared_ptr<auth::limiter_registry> auth_limiters, delivery::site_registry& sites);
  ~worker();
  worker(const worker&) = delete;
  worker& operator=(const worker&) = delete;

  // Before start(): this worker also serves the admin socket (worker 0 does).
  void serve_admin(admin::server_settings s) { admin_ = std::move(s); }
  // Before start(): this worker also serves the metrics endpoint (worker 0 does).
  void serve_metrics(metrics::http_settings s) { metrics_ = std::move(s); }
  // Starts the thread; returns "" once it listens on every binding, or the error. The
  // loop does not run (connections wait in the kernel's backlog) until serve(): main
  // drops privileges in between, so nothing is done as root that need not be.
  std::string start();
  void serve();
  // Any thread: the store has completions for this worker's producer slot, or another
  // loop has pushed ids or delivery items into this worker's rings.
  void notify_completions();
  // Any thread: hand the loop the next configuration generation (reload). On the loop
  // thread, the receiver, the categorizer, the tracking batch and the admin server all
  // switch to it at once; a later call before then replaces an earlier one.
  void reload(std::shared_ptr<const generation::generation> next);
  // Any thread: runs `task` soon on this loop with its delivery engine's actions (how the
  // admin commands reach a loop: admin::daemon_info::run_on_loop). False, task dropped,
  // when the loop is not running or is stopping.
  bool run_admin_task(admin::loop_task task);
  // Any thread: drain (SIGTERM). Stop accepting; transactions under way and deliveries on
  // the wire get [server] drain_timeout to finish, then are cut (421, deferred); the thread
  // ends once nothing is in flight. A second call cuts at once, still keeping everything
  // acknowledged.
  void stop();
  void join();
  // Any thread: the loop has finished (after stop(), once nothing is in flight).
  bool ended() const { return ended_.load(); }

 private:
  void run(std::promise<std::string>& ready);

  unsigned index_;
  store::queue_store& store_;
  categorize::links& links_;
  smtpd::in_flight_budget& budget_;
  std::shared_ptr<const generation::generation> first_;  // taken by run() at start
  std::shared_ptr<auth::limiter_registry> auth_limiters_;
  delivery::site_registry& sites_;
  std::optional<admin::server_settings> admin_;
  std::optional<metrics::http_settings> metrics_;
  std::thread thread_;
  // Created on the worker thread, published through the atomics, and destroyed only by
  // ~worker (after the store has stopped), so the store's writer thread can always wake
  // a worker safely, even one that has just finished.
  std::unique_ptr<net::loop> loop_owner_;
  std::unique_ptr<net::async_signal> completions_owner_;
  std::atomic<net::loop*> loop_{nullptr};
  std::atomic<net::async_signal*> completions_{nullptr};
  std::atomic<bool> stop_requested_{false};
  std::atomic<bool> hurry_{false};  // a second stop(): the drain's deadline is now
  std::promise<void> serve_;
  bool serving_ = false;  // serve_ is set (main thread only)
  // The main thread posts a generation here and wakes the loop through completions_.
  mailbox<generation::generation> next_generation_;
  std::atomic<bool> running_{false};
  // The admin's tasks for this loop, taken on the loop's wake-up (a mutex: rare, and a task
  // must not be lost the way a latest-wins mailbox drops an older value).
  std::mutex admin_tasks_mutex_;
  std::vector<admin::loop_task> admin_tasks_;
  std::atomic<bool> admin_tasks_waiting_{false};
  std::atomic<bool> ended_{false};
};

}  // namespace sluice::main
