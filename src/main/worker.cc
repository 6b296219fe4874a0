// worker.cc: the body of a worker thread.
#include "main/worker.h"

#include <cstdio>

#include "net/loop.h"
#include "smtpd/pickup.h"
#include "store/store.h"

namespace sluice::main {

worker::worker(unsigned index, store::queue_store& store, std::shared_ptr<const smtpd::connector_policies> policies,
               categorize::links& links, std::shared_ptr<const route::table> routes)
    : index_(index), store_(store), policies_(std::move(policies)), links_(links), routes_(std::move(routes)) {}

worker::~worker() {
  stop();
  join();
  reload_signal_ptr_.store(nullptr);
  reload_signal_.reset();
  std::unique_ptr<std::shared_ptr<const smtpd::connector_policies>> unclaimed(pending_reload_.exchange(nullptr));
  completions_.store(nullptr);
  loop_.store(nullptr);
  completions_owner_.reset();
  loop_owner_.reset();
}

std::string worker::start() {
  std::promise<std::string> ready;
  auto result = ready.get_future();
  thread_ = std::thread([this, &ready] { run(ready); });
  return result.get();
}

void worker::notify_completions() {
  if (auto* c = completions_.load(std::memory_order_acquire)) c->send();
}

void worker::reload(std::shared_ptr<const smtpd::connector_policies> next) {
  auto box = std::make_unique<std::shared_ptr<const smtpd::connector_policies>>(std::move(next));
  std::unique_ptr<std::shared_ptr<const smtpd::connector_policies>> replaced(pending_reload_.exchange(box.release()));
  if (auto* signal = reload_signal_ptr_.load(std::memory_order_acquire)) signal->send();
}

void worker::stop() {
  stop_requested_.store(true);
  if (auto* l = loop_.load(std::memory_order_acquire)) l->stop();
}

void worker::join() {
  if (thread_.joinable()) thread_.join();
}

void worker::run(std::promise<std::string>& ready) {
  loop_owner_ = std::make_unique<net::loop>();
  net::loop& loop = *loop_owner_;
  smtpd::receiver receiver(loop, index_, policies_,
                           [this](store::submit_request* r) { return store_.submit(index_, r); });
  reload_signal_ = std::make_unique<net::async_signal>(loop, [this, &receiver] {
    std::unique_ptr<std::shared_ptr<const smtpd::connector_policies>> next(pending_reload_.exchange(nullptr));
    if (!next || !running_.load()) return;
    receiver.flush_logs();
    std::string error = receiver.reload(*next);
    if (!error.empty()) std::fprintf(stderr, "sluiced: worker %u: reload: %s\n", index_, error.c_str());
  });

  // This loop's categorizer shard. Destroyed at the end of run(), after the stop
  // sequence below has waited until the store holds none of its requests.
  auto categorizer = std::make_unique<categorize::categorizer>(loop, index_, store_, links_, routes_);
  categorize::categorizer* cat = categorizer.get();
  // ROUTE, FAIL and RULE events share the loop's tracking log buffer with RECEIVE.
  cat->set_tracker([&receiver](const log::tracking_record& r) { receiver.track(r); });

  // One wake-up for everything addressed to this loop: store completions (submissions
  // and categorizations) and the categorizer's incoming rings.
  auto drain_completions = [this, cat] {
    // The async handle outlives run(); after it returns there is nobody to deliver to.
    if (!running_.load(std::memory_order_relaxed)) return;
    store::submit_request* done[256];
    size_t n;
    while ((n = store_.take_completed(index_, done, 256)) != 0) {
      for (size_t i = 0; i < n; ++i) {
        // Read before submitted(): the request belongs to the session again afterwards.
        const base::queue_id id = done[i]->id;
        const bool durable = done[i]->result == store::submit_status::ok;
        static_cast<smtpd::submit_client*>(done[i]->user)->submitted(done[i]);
        if (durable) cat->hand_off(id);
      }
    }
    cat->poll();  // also flushes the hand-offs above into the rings
  };
  completions_owner_ = std::make_unique<net::async_signal>(loop, drain_completions);

  // Protocol log batches leave the loop five times a second, not once per event.
  net::timer log_flush(loop);
  log_flush.start(200, 200, [&] { receiver.flush_logs(); });

  // The pickup directory is scanned by the first worker only, so no file is read twice.
  std::unique_ptr<smtpd::pickup> pickup;
  const auto& server = policies_->cfg->server;
  if (index_ == 0 && !server.pickup_dir.empty()) {
    smtpd::pickup_settings ps;
    ps.dir = server.pickup_dir;
    ps.interval_ms = server.pickup_interval_ms;
    ps.max_message_size = server.max_message_size;
    ps.hostname = server.hostname;
    ps.max_received_headers = server.max_received_headers;
    pickup = std::make_unique<smtpd::pickup>(loop, ps, index_,
                                             [this](store::submit_request* r) { return store_.submit(index_, r); });
    pickup->set_tracker([&receiver](const log::tracking_record& r) { receiver.track(r); });
    pickup->start();
  }

  std::unique_ptr<admin::server> admin_server;
  if (admin_) admin_server = std::make_unique<admin::server>(loop, std::move(*admin_));

  net::timer drain_check(loop);
  loop.on_stop([&] {
    receiver.shutdown();
    if (admin_server) admin_server->close();
    if (pickup) pickup->stop();
    // Ids not yet categorized stay in the submission queue for the next start.
    cat->shutdown();
    // Sessions with a message in the store finish it before the loop ends: an
    // acknowledged 250 must reach its client, and nothing may be left half-done.
    drain_check.start(0, 20, [&] {
      drain_completions();
      if (receiver.session_count() == 0 && (!pickup || pickup->idle()) && cat->idle()) {
        receiver.flush_logs();
        log_flush.stop();
        drain_check.stop();
        loop.halt();
      }
    });
  });

  std::string error = receiver.listen();
  if (error.empty() && admin_server) error = admin_server->listen();
  loop_.store(&loop, std::memory_order_release);
  completions_.store(completions_owner_.get(), std::memory_order_release);
  reload_signal_ptr_.store(reload_signal_.get(), std::memory_order_release);
  ready.set_value(error);
  if (!error.empty()) return;
  if (stop_requested_.load()) loop.stop();
  running_.store(true);
  cat->recover();
  loop.run();
  running_.store(false);
}

}  // namespace sluice::main
