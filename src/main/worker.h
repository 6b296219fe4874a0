// worker.h: one worker thread and its libuv loop: receive connectors, store completions, pickup, categorizer shard.
#pragma once
#include <atomic>
#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "admin/server.h"
#include "route/route.h"
#include "categorize/categorizer.h"
#include "smtpd/receiver.h"

namespace sluice::store {
class queue_store;
}

namespace sluice::main {

class worker {
 public:
  // `links` and `routes` are shared by every worker; links must outlive the worker.
  worker(unsigned index, store::queue_store& store, std::shared_ptr<const smtpd::connector_policies> policies,
         categorize::links& links, std::shared_ptr<const route::table> routes);
  ~worker();
  worker(const worker&) = delete;
  worker& operator=(const worker&) = delete;

  // Before start(): this worker also serves the admin socket (worker 0 does).
  void serve_admin(admin::server_settings s) { admin_ = std::move(s); }
  // Starts the thread; returns "" once it listens on every binding, or the error.
  std::string start();
  // Any thread: the store has completions for this worker's producer slot, or another
  // loop has pushed ids or delivery items into this worker's rings.
  void notify_completions();
  // Any thread: hand the loop a new configuration snapshot (config reload). It is
  // applied on the loop thread; a later call before then replaces an earlier one.
  void reload(std::shared_ptr<const smtpd::connector_policies> next);
  // Any thread: stop accepting, let sessions finish, then end the thread.
  void stop();
  void join();

 private:
  void run(std::promise<std::string>& ready);

  unsigned index_;
  store::queue_store& store_;
  std::shared_ptr<const smtpd::connector_policies> policies_;
  categorize::links& links_;
  std::shared_ptr<const route::table> routes_;
  std::optional<admin::server_settings> admin_;
  std::thread thread_;
  // Created on the worker thread, published through the atomics, and destroyed only by
  // ~worker (after the store has stopped), so the store's writer thread can always wake
  // a worker safely, even one that has just finished.
  std::unique_ptr<net::loop> loop_owner_;
  std::unique_ptr<net::async_signal> completions_owner_;
  std::atomic<net::loop*> loop_{nullptr};
  std::atomic<net::async_signal*> completions_{nullptr};
  std::atomic<bool> stop_requested_{false};
  // Reload mailbox: the main thread stores a snapshot here and wakes the loop, which
  // takes it. An exchange on a pointer, so neither side ever waits for the other.
  std::atomic<std::shared_ptr<const smtpd::connector_policies>*> pending_reload_{nullptr};
  std::unique_ptr<net::async_signal> reload_signal_;
  std::atomic<net::async_signal*> reload_signal_ptr_{nullptr};
  std::atomic<bool> running_{false};
};

}  // namespace sluice::main
