// worker.cc: the body of a worker thread.
#include "main/worker.h"

#include <cstdio>
#include <utility>

#include "base/ascii.h"
#include "delivery/engine.h"
#include "delivery/reporter.h"
#include "dns/resolver.h"
#include "log/tracking_batch.h"
#include "metrics/daemon.h"
#include "metrics/exposition.h"
#include "net/loop.h"
#include "smtpd/pickup.h"
#include "smtpd/receiver.h"
#include "store/store.h"

namespace sluice::main {

worker::worker(unsigned index, store::queue_store& store, categorize::links& links,
               std::shared_ptr<const generation::generation> first, smtpd::in_flight_budget& budget,
               std::shared_ptr<auth::limiter_registry> auth_limiters, delivery::site_registry& sites)
    : index_(index),
      store_(store),
      links_(links),
      budget_(budget),
      first_(std::move(first)),
      auth_limiters_(std::move(auth_limiters)),
      sites_(sites) {}

worker::~worker() {
  stop();
  join();
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

void worker::serve() {
  if (serving_) return;
  serving_ = true;
  serve_.set_value();
}

void worker::notify_completions() {
  if (auto* c = completions_.load(std::memory_order_acquire)) c->send();
}

void worker::reload(std::shared_ptr<const generation::generation> next) {
  next_generation_.post(std::move(next));
  notify_completions();
}

bool worker::run_admin_task(admin::loop_task task) {
  if (!running_.load() || stop_requested_.load()) return false;
  {
    std::lock_guard lock(admin_tasks_mutex_);
    admin_tasks_.push_back(std::move(task));
  }
  admin_tasks_waiting_.store(true, std::memory_order_release);
  notify_completions();
  return true;
}

namespace {

// The admin commands' view of this loop's engine (admin::loop_actions), on the loop thread.
class engine_actions final : public admin::loop_actions {
 public:
  explicit engine_actions(delivery::engine& e) : e_(e) {}
  uint64_t retry_hop(const std::string& hop_key) override { return e_.retry_hop(hop_key); }
  uint64_t retry_message(base::queue_id id) override { return e_.retry_message(id); }
  void control(store::control_action action, base::queue_id id, const std::string& hop_key, int64_t until_ms,
               admin::action_done done) override {
    e_.control(action, id, hop_key, until_ms, adapt(std::move(done)));
  }
  uint64_t unpark(base::queue_id id) override { return e_.unpark(id); }
  uint64_t drop_message(base::queue_id id) override { return e_.drop_message(id); }
  void settle_removal(base::queue_id id, bool dsn, std::function<void(uint64_t, bool)> done) override {
    e_.settle_removal(id, dsn, std::move(done));
  }
  void end_removal(base::queue_id id) override { e_.end_removal(id); }
  void remove_message(base::queue_id id, int64_t uid, uint64_t delivered, admin::action_done done) override {
    e_.remove_message(id, uid, delivered, adapt(std::move(done)));
  }
  uint64_t fail_message(base::queue_id id, int64_t uid) override { return e_.fail_message(id, uid); }
  uint64_t bounce_domain(const std::string& domain, int64_t until_ms, int64_t uid) override {
    return e_.bounce_domain(domain, until_ms, uid);
  }
  void cancel_bounce(const std::string& domain) override { e_.cancel_bounce(domain); }

 private:
  static delivery::engine::action_done adapt(admin::action_done done) {
    return [done = std::move(done)](const delivery::engine::action_outcome& o) {
      done(admin::action_result{o.error, o.found, o.items, o.recipients});
    };
  }
  delivery::engine& e_;
};

}  // namespace

void worker::stop() {
  if (stop_requested_.exchange(true)) {
    hurry_.store(true);
    notify_completions();
    return;
  }
  if (auto* l = loop_.load(std::memory_order_acquire)) l->stop();
}

void worker::join() {
  serve();  // a worker stopped before serving still has to end its thread
  if (thread_.joinable()) thread_.join();
}

namespace {

// The resolver a configuration asks for: [dns], the address limit, and this host's names
// for the MX-points-back-at-us check (the hostname and the name it greets with), lower-case.
dns::resolver_settings resolver_settings_for(const config::config& cfg) {
  dns::resolver_settings rs{.servers = cfg.dns.servers, .timeout_ms = cfg.dns.timeout_ms, .tries = cfg.dns.tries,
                            .negative_ttl_s = cfg.dns.negative_ttl_s, .max_ttl_s = cfg.dns.max_ttl_s,
                            .max_addresses = cfg.delivery.max_addresses, .ipv6 = cfg.dns.ipv6,
                            .self_names = {cfg.server.hostname}};
  if (!cfg.delivery.helo.empty() && cfg.delivery.helo != cfg.server.hostname) rs.self_names.push_back(cfg.delivery.helo);
  for (auto& name : rs.self_names)
    for (auto& ch : name) ch = base::ascii_lower(ch);
  return rs;
}

}  // namespace

void worker::run(std::promise<std::string>& ready) {
  loop_owner_ = std::make_unique<net::loop>();
  net::loop& loop = *loop_owner_;
  // RECEIVE, ROUTE, FAIL and RULE events of this loop, written together on the timer.
  log::tracking_batch tracking;
  auto track = [&tracking](const log::tracking_record& r) { tracking.add(r); };
  auto submit = [this](store::submit_request* r) { return store_.submit(index_, r); };
  smtpd::receiver receiver(loop, index_, tracking, submit, &budget_, auth_limiters_);

  // This loop's categorizer shard. Destroyed at the end of run(), after the stop
  // sequence below has waited until the store holds none of its requests.
  auto categorizer = std::make_unique<categorize::categorizer>(loop, index_, store_, links_, nullptr);
  categorize::categorizer* cat = categorizer.get();
  cat->set_tracker(track);

  // This loop's resolver and delivery engine: the next hops this loop owns are delivered
  // from here. A reload that changes the DNS settings gives the loop a new resolver; the
  // old one lives on in `retired_resolvers` until every lookup it took has been answered.
  dns::resolver_settings dns_settings = resolver_settings_for(*first_->cfg);
  auto make_resolver = [&](const dns::resolver_settings& rs) {
    std::string dns_error;
    auto r = std::make_unique<dns::resolver>(loop, rs, dns_error);
    if (!dns_error.empty()) std::fprintf(stderr, "sluiced: worker %u: DNS: %s\n", index_, dns_error.c_str());
    return r;
  };
  std::unique_ptr<dns::resolver> resolver = make_resolver(dns_settings);
  std::vector<std::unique_ptr<dns::resolver>> retired_resolvers;
  net::timer resolver_reaper(loop);
  auto engine = std::make_unique<delivery::engine>(loop, index_, store_, *resolver, sites_);
  engine->set_tracker(track);
  cat->set_item_sink([e = engine.get()](delivery::hop_item&& item) { e->add(std::move(item)); });
  engine->set_forwarder([cat](delivery::hop_item&& item) { cat->forward(std::move(item)); });
  // This loop's DSN generator: outcomes with report entries (engine, categorizer) are
  // reported from here; its DSNs take ids from the receiver's generator (one per loop) and
  // go to the categorizer like any new message.
  auto reporter = std::make_unique<delivery::reporter>(index_, store_, [&receiver] { return receiver.next_queue_id(); });
  delivery::reporter* rep = reporter.get();
  rep->set_tracker(track);
  rep->set_handoff([cat](base::queue_id id) { cat->hand_off(id); });
  engine->set_report_notifier([rep](base::queue_id id) { rep->notify(id); });
  cat->set_report_notifier([rep](base::queue_id id) { rep->notify(id); });
  // Worker 0 also sweeps for entries nobody was told about: at start (a crash or a stop
  // left them), then now and then for any whose notification was lost.
  net::timer report_sweep(loop);
  if (index_ == 0) report_sweep.start(30'000, 30'000, [rep] { rep->sweep(60'000); });

  // The pickup directory is scanned by the first worker only, so no file is read twice.
  // Its settings are the first generation's: moving the directory needs a restart.
  std::unique_ptr<smtpd::pickup> pickup;
  const auto& server = first_->cfg->server;
  if (index_ == 0 && !server.pickup_dir.empty()) {
    smtpd::pickup_settings ps{.dir = server.pickup_dir, .interval_ms = server.pickup_interval_ms,
                              .max_message_size = server.max_message_size, .hostname = server.hostname,
                              .max_received_headers = server.max_received_headers};
    pickup = std::make_unique<smtpd::pickup>(loop, ps, submit);
    pickup->set_tracker(track);
    pickup->start();
  }

  std::unique_ptr<admin::server> admin_server;
  if (admin_) admin_server = std::make_unique<admin::server>(loop, std::move(*admin_));
  std::unique_ptr<metrics::http_endpoint> metrics_endpoint;
  if (metrics_)
    metrics_endpoint = std::make_unique<metrics::http_endpoint>(loop, std::move(*metrics_), [](bool json) {
      auto families = metrics::daemon().reg.collect();
      return json ? metrics::render_json(families) : metrics::render_text(families);
    });

  // Log batches leave the loop five times a second, not once per event.
  auto flush_logs = [&] {
    receiver.flush_logs();
    for (auto& batch : tracking.take())
      net::queue_work(loop, [file = std::move(batch.file), lines = std::move(batch.lines)] { file->append(lines); }, [] {});
  };
  net::timer log_flush(loop);
  log_flush.start(200, 200, flush_logs);
  // A log that cannot be written says so itself, once per outage (log::append_file).

  // Every consumer on this loop takes its part of one generation in one callback, so no
  // message is answered at RCPT by one table and categorized here by another.
  uint32_t drain_ms = 0;  // the generation in force decides how long SIGTERM waits
  auto install = [&](const generation::generation& g) {
    if (auto rs = resolver_settings_for(*g.cfg); rs != dns_settings) {
      dns_settings = std::move(rs);
      retired_resolvers.push_back(std::exchange(resolver, make_resolver(dns_settings)));
      engine->set_resolver(*resolver);
      resolver_reaper.start(1000, 1000, [&] {
        std::erase_if(retired_resolvers, [](const auto& r) { return !r->busy(); });
        if (retired_resolvers.empty()) resolver_reaper.stop();
      });
    }
    drain_ms = g.cfg->server.drain_timeout_s * 1000;
    cat->set_routes(g.routes, g.rules);
    engine->set_config(g.cfg, g.send_tls, g.routes);
    rep->set_config(g.cfg);
    tracking.set_file(g.tracking_log);
    if (admin_server) admin_server->set_state(g.admin_view);
    return receiver.install(g.receive);
  };

  // The drain's end: whatever is still open is cut now (421, deliveries deferred).
  bool stopping = false, cut = false;
  auto cut_drain = [&] {
    if (cut) return;
    cut = true;
    receiver.shutdown();
    engine->shutdown(0);
  };
  // One wake-up for everything addressed to this loop: a new generation (taken first, so
  // what this wake-up categorizes already routes with it), store completions (submissions
  // and categorizations) and the categorizer's incoming rings.
  auto drain_completions = [&] {
    // The async handle outlives run(); after it returns there is nobody to deliver to.
    if (!running_.load(std::memory_order_relaxed)) return;
    if (hurry_.load() && stopping) cut_drain();
    // A loop that is stopping keeps its generation: a reload must not listen again.
    auto next = stop_requested_.load() ? nullptr : next_generation_.take();
    if (std::string error = next ? install(*next) : ""; !error.empty())
      std::fprintf(stderr, "sluiced: worker %u: reload: %s\n", index_, error.c_str());
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
    engine->poll();
    if (admin_tasks_waiting_.exchange(false, std::memory_order_acq_rel)) {
      std::vector<admin::loop_task> tasks;
      {
        std::lock_guard lock(admin_tasks_mutex_);
        tasks.swap(admin_tasks_);
      }
      engine_actions actions(*engine);
      for (auto& task : tasks) task(actions);
    }
    rep->poll();
    cat->poll();  // also flushes the hand-offs above (and the reporter's) into the rings
  };
  completions_owner_ = std::make_unique<net::async_signal>(loop, drain_completions);

  net::timer drain_check(loop);
  net::timer drain_deadline(loop);
  loop.on_stop([&] {
    stopping = true;
    receiver.drain();
    drain_deadline.start(drain_ms, 0, cut_drain);
    if (admin_server) admin_server->close();
    if (metrics_endpoint) metrics_endpoint->close();
    if (pickup) pickup->stop();
    // Ids not yet categorized stay in the submission queue for the next start.
    cat->shutdown();
    // Messages on the wire finish (or are cut off and deferred); nothing new starts.
    engine->shutdown(drain_ms);
    rep->shutdown();
    report_sweep.stop();
    // Sessions with a message in the store finish it before the loop ends: an
    // acknowledged 250 must reach its client, and nothing may be left half-done.
    drain_check.start(0, 20, [&] {
      drain_completions();
      if (receiver.session_count() == 0 && (!pickup || pickup->idle()) && cat->idle() && engine->idle() &&
          rep->idle()) {
        flush_logs();
        log_flush.stop();
        resolver_reaper.stop();
        drain_check.stop();
        drain_deadline.stop();
        loop.halt();
      }
    });
  });

  // The worker keeps no generation of its own: once a reload has replaced every part,
  // the first generation's files close as soon as its last session ends.
  std::string error = install(*std::exchange(first_, nullptr));
  if (error.empty() && admin_server) error = admin_server->listen();
  if (error.empty() && metrics_endpoint) error = metrics_endpoint->listen();
  loop_.store(&loop, std::memory_order_release);
  completions_.store(completions_owner_.get(), std::memory_order_release);
  ready.set_value(error);
  if (!error.empty()) {
    ended_.store(true);
    return;
  }
  serve_.get_future().wait();
  if (stop_requested_.load()) loop.stop();
  engine->load_suspensions();
  running_.store(true);
  cat->recover();
  if (index_ == 0) rep->sweep(0);
  loop.run();
  running_.store(false);
  ended_.store(true);
  const auto& ds = engine->stats();
  std::fprintf(stderr,
               "sluiced: worker %u: delivery: %llu recipients delivered, %llu deferred, %llu failed, %llu expired; "
               "%llu connections opened, %llu failed, %llu messages on reused connections; "
               "body bytes written from the store map: %llu; %llu next hops held; %llu Maildir attempts; "
               "%llu reports queued, %llu report entries nobody asked for\n",
               index_, static_cast<unsigned long long>(ds.recipients_delivered),
               static_cast<unsigned long long>(ds.recipients_deferred), static_cast<unsigned long long>(ds.recipients_failed),
               static_cast<unsigned long long>(ds.recipients_expired), static_cast<unsigned long long>(ds.connections_opened),
               static_cast<unsigned long long>(ds.connections_failed), static_cast<unsigned long long>(ds.connections_reused),
               static_cast<unsigned long long>(ds.body_bytes_borrowed), static_cast<unsigned long long>(ds.hops),
               static_cast<unsigned long long>(ds.maildir_deliveries),
               static_cast<unsigned long long>(rep->stats().reports_queued),
               static_cast<unsigned long long>(rep->stats().entries_dropped));
}

}  // namespace sluice::main
