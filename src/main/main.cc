// main.cc: sluiced: loads the configuration, opens the queue, starts the worker loops, drops root, handles signals.
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "admin/commands.h"
#include "admin/reload.h"
#include "auth/credentials.h"
#include "categorize/categorizer.h"
#include "config/config.h"
#include "generation/generation.h"
#include "log/protocol_log.h"
#include "main/metrics_sources.h"
#include "main/notify.h"
#include "main/privileges.h"
#include "main/worker.h"
#include "smtpd/in_flight_budget.h"
#include "store/store.h"

namespace {

constexpr int exit_config = 78;  // EX_CONFIG from sysexits.h

bool make_dir(const std::string& dir, const char* what) {
  if (dir.empty()) return true;
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    std::fprintf(stderr, "sluiced: cannot create %s directory %s: %s\n", what, dir.c_str(), ec.message().c_str());
    return false;
  }
  return true;
}

// For the service manager's status line: cheap (a few mdb_stat calls in one short read
// transaction), so it can be asked every half minute.
std::string queue_summary(const sluice::store::queue_store& queue) {
  std::string error;
  auto s = queue.stats(error);
  if (!s) return "queue unreadable: " + error;
  return "queue " + std::to_string(s->messages) + " messages (" + std::to_string(s->submission_queued) +
         " to categorize, " + std::to_string(s->delivery_items) + " delivery items)";
}

// What the daemon writes once it no longer is root (see owned_path on why so little).
std::vector<sluice::main::owned_path> own_paths(const sluice::config::server_settings& s, const std::string& admin_socket) {
  using scope = sluice::main::owned_path::scope;
  std::vector<sluice::main::owned_path> paths{{s.queue_dir, scope::entries},
                                               {s.log_dir, scope::self},
                                               {s.log_dir + "/protocol", scope::tree},
                                               {s.auto_tls_dir, scope::tree},
                                               {admin_socket, scope::self}};
  if (!s.pickup_dir.empty()) paths.push_back({s.pickup_dir, scope::self});
  namespace fs = std::filesystem;
  // The tracking log and its rotated files, whatever else shares the directory.
  std::error_code ec;
  for (fs::directory_iterator it(s.log_dir, ec); !ec && it != fs::directory_iterator(); it.increment(ec))
    if (it->path().filename().string().starts_with("tracking.")) paths.push_back({it->path().string(), scope::self});
  // The directory of the admin socket (queue_dir/..) must be ours to remove the socket at
  // exit, but only when nothing else lives there (/var/lib/sluice, ./var): queue_dir =
  // "/var/spool/q" must not hand /var/spool over.
  const fs::path state = fs::path(admin_socket).parent_path();
  auto ours = [&](const fs::path& p) {
    for (const std::string& mine : {s.queue_dir, s.log_dir, s.pickup_dir, s.auto_tls_dir, admin_socket})
      if (!mine.empty() && fs::path(mine).lexically_normal() == p.lexically_normal()) return true;
    return false;
  };
  bool only_ours = !state.empty() && state.has_relative_path();
  for (fs::directory_iterator it(state, ec); only_ours && !ec && it != fs::directory_iterator(); it.increment(ec))
    only_ours = ours(it->path());
  if (only_ours && !ec) paths.push_back({state.string(), scope::self});
  return paths;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace sluice;
  CLI::App app{"sluiced: the sluice mail transfer agent"};
  std::string config_path = "etc/sluice.toml";
  bool check_only = false;
  bool hash_password = false;
  bool allow_root = false;
  app.add_option("-c,--config", config_path, "configuration file (TOML)");
  app.add_flag("--check-config", check_only, "validate the configuration and exit");
  app.add_flag("--allow-root", allow_root,
               "started as root with no [server] user, stay root (as [server] allow_root = true), with a warning");
  app.add_flag("--hash-password", hash_password,
               "read a password on standard input and print its yescrypt hash for an AUTH credentials file");
  CLI11_PARSE(app, argc, argv);
  if (hash_password) return auth::hash_password_command();

  auto loaded = config::load_file(config_path);
  if (!loaded) {
    std::fprintf(stderr, "%s\n", loaded.error_text().c_str());
    return exit_config;
  }
  std::shared_ptr<const config::config> cfg = loaded.value;
  if (check_only) {
    std::printf("%s: configuration OK\n", config_path.c_str());
    return 0;
  }
  // Who we run as is settled before anything is created, so a missing user stops the start
  // at once; the drop itself waits until every listener is bound.
  std::string identity_error;
  config::server_settings identity_keys = cfg->server;
  identity_keys.allow_root = identity_keys.allow_root || allow_root;
  const auto who = main::choose_identity(identity_keys, ::geteuid(), identity_error);
  if (!who) {
    std::fprintf(stderr, "sluiced: %s\n", identity_error.c_str());
    return exit_config;
  }
  if (!who->warning.empty()) std::fprintf(stderr, "sluiced: warning: %s\n", who->warning.c_str());
  // Read before any thread starts (it edits the environment); a no-op without a manager.
  main::notifier notify = main::notifier::from_environment();
  if (!make_dir(cfg->server.queue_dir, "queue") || !make_dir(cfg->server.log_dir, "log") ||
      !make_dir(cfg->server.pickup_dir, "pickup"))
    return 1;

  // Every connection is a descriptor: take all the kernel allows us (the soft limit is
  // often 1024, below one connector's default max_connections).
  rlimit files{};
  if (getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur < files.rlim_max) {
    files.rlim_cur = files.rlim_max;
    setrlimit(RLIMIT_NOFILE, &files);
  }

  // Signals are taken synchronously by this thread alone; workers never see them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  // The first generation is built the way a reload builds the next one.
  const auto started = std::chrono::system_clock::now();
  generation::daemon_state shared;  // outlives every generation and worker
  delivery::site_registry sites;     // delivery limits shared by every worker, outliving them
  auto first = generation::build(cfg, 1, started, &shared);
  if (!first) {
    const bool bad_routes = first.failed == generation::failure::routes;
    for (const auto& e : first.errors) {
      if (bad_routes)
        std::fprintf(stderr, "sluiced: %s: %s\n", config_path.c_str(), e.c_str());
      else
        std::fprintf(stderr, "sluiced: %s\n", e.c_str());
    }
    return bad_routes ? exit_config : 1;
  }
  std::shared_ptr<const generation::generation> current = std::move(first.built);

  const unsigned workers_count = cfg->server.workers;
  // Message bytes held in memory by all sessions of all loops; outlives the workers.
  smtpd::in_flight_budget budget(cfg->server.max_in_flight_bytes);
  // Declared before `workers` so it is destroyed after them: their threads use its rings.
  categorize::links links(workers_count);
  // `sluicectl reload`: the admin loop queues a request and raises SIGHUP, whose reload
  // below answers it. Declared before `workers`: their admin server holds a reference.
  admin::reload_requests reload_requests([] { kill(getpid(), SIGHUP); });
  std::vector<std::unique_ptr<main::worker>> workers;
  // Only running loops wake each other, and every worker exists before any starts.
  links.wake = [&workers](unsigned to) { workers[to]->notify_completions(); };

  store::store_options opts;
  opts.dir = cfg->server.queue_dir;
  opts.map_size = cfg->server.map_size;
  opts.producers = workers_count;
  opts.notify = [&workers](unsigned producer) { workers[producer]->notify_completions(); };
  std::string error;
  auto queue = std::make_unique<store::queue_store>();
  if (!queue->open(opts, error)) {
    std::fprintf(stderr, "sluiced: cannot open the queue in %s: %s\n", opts.dir.c_str(), error.c_str());
    return 1;
  }
  // Before the loops make their queue id generators: no id is issued twice, ever.
  base::queue_id_generator::set_floor(queue->id_floor());
  if (!links.load_stored_items(*queue, error)) {
    std::fprintf(stderr, "sluiced: cannot load the delivery queues: %s\n", error.c_str());
    return 1;
  }
  for (unsigned i = 0; i < workers_count; ++i)
    workers.push_back(std::make_unique<main::worker>(i, *queue, links, current, budget, shared.auth_limiters, sites));
  // The admin socket (sluicectl) is served by worker 0.
  const std::string admin_socket = admin::socket_path_for(cfg->server.queue_dir);
  workers[0]->serve_admin({admin_socket,
                           {std::string(admin::version()), workers_count, static_cast<long>(getpid()), started,
                            &log::dropped_lines,
                            [&reload_requests](auto done) { reload_requests.request(std::move(done)); },
                            [&workers](unsigned w, admin::loop_task task) {
                              return w < workers.size() && workers[w]->run_admin_task(std::move(task));
                            },
                            [workers_count](std::string_view hop_key) { return categorize::owner_of(hop_key, workers_count); }}});
  // The metrics endpoint (Prometheus) is served by worker 0 too; its listen address is the
  // first generation's (changing it needs a restart).
  auto metrics_collectors = main::add_daemon_collectors(*queue, sites);
  if (!cfg->metrics.listen.empty()) {
    metrics::http_settings ms;
    net::endpoint::parse(cfg->metrics.listen, ms.where);  // validated by the config loader
    if (cfg->metrics.non_loopback)
      std::fprintf(stderr, "sluiced: warning: the metrics endpoint listens on %s, not a loopback address\n",
                   cfg->metrics.listen.c_str());
    workers[0]->serve_metrics(ms);
  }
  for (auto& w : workers) {
    error = w->start();
    if (!error.empty()) {
      std::fprintf(stderr, "sluiced: %s\n", error.c_str());
      for (auto& other : workers) other->stop();
      for (auto& other : workers) other->join();
      return 1;
    }
  }
  // Every port is bound, the queue is open, TLS keys are read: root is needed no more.
  if (std::string e = main::drop_privileges(*who, own_paths(cfg->server, admin_socket)); !e.empty()) {
    std::fprintf(stderr, "sluiced: cannot drop privileges to user %s: %s\n", who->user.c_str(), e.c_str());
    for (auto& w : workers) w->stop();
    for (auto& w : workers) w->join();
    return 1;
  }
  for (auto& w : workers) w->serve();

  std::string bindings;
  for (const auto& b : cfg->all_bindings()) bindings += (bindings.empty() ? "" : " ") + b.to_string();
  std::fprintf(stderr, "sluiced: %s ready: %u workers, listening on %s, queue %s, running as %s\n",
               cfg->server.hostname.c_str(), workers_count, bindings.c_str(), cfg->server.queue_dir.c_str(),
               who->user.c_str());
  const std::string workers_text = std::to_string(workers_count) + " workers";
  if (notify.enabled())
    notify.ready("ready: " + workers_text + ", listening on " + bindings + ", " + queue_summary(*queue));

  // A file that cannot be read after the drop is most often one only root may read.
  const std::string hint = main::reread_hint(*who);
  auto with_hint = [&hint](const std::string& error) {
    const bool denied = error.find("ermission denied") != std::string::npos ||
                        error.find("cannot open") != std::string::npos || error.find("cannot load") != std::string::npos;
    return denied && !hint.empty() ? " (" + hint + ")" : std::string();
  };
  // Between signals, the main thread refreshes the manager's status line.
  const timespec status_interval{30, 0};
  for (;;) {
    const int sig = sigtimedwait(&signals, nullptr, notify.enabled() ? &status_interval : nullptr);
    if (sig < 0) {
      if (errno == EAGAIN)
        notify.status(workers_text + ", generation " + std::to_string(current->number) + ", " + queue_summary(*queue));
      continue;
    }
    if (sig == SIGHUP) {
      auto asked = reload_requests.take();  // answered with this reload's outcome
      // Reload: a bad file leaves the running configuration in force. The queue
      // location and worker count need a restart; everything else applies to new sessions.
      notify.reloading("reloading " + config_path);
      auto next = config::load_file(config_path);
      if (!next) {
        const std::string text = next.error_text() + with_hint(next.error_text());
        std::fprintf(stderr, "sluiced: reload failed, configuration unchanged:\n%s\n", text.c_str());
        asked.refused(text);
        notify.ready("reload refused, configuration unchanged: " + text);
        continue;
      }
      const auto& running = current->cfg->server;
      std::string restart_note;
      const auto& wanted = next.value->server;
      if (wanted.queue_dir != running.queue_dir || wanted.workers != running.workers || wanted.user != running.user ||
          wanted.group != running.group || wanted.allow_root != running.allow_root) {
        std::fprintf(stderr, "sluiced: reload: queue_dir, workers, user and group changes take effect at restart\n");
        restart_note = " (queue_dir, workers, user and group changes wait for a restart)";
      }
      auto next_generation = generation::build(next.value, current->number + 1, std::chrono::system_clock::now(), &shared);
      if (!next_generation) {
        std::string errors;
        for (auto& e : next_generation.errors) {
          e += with_hint(e);
          std::fprintf(stderr, "sluiced: reload failed, configuration unchanged: %s\n", e.c_str());
          errors += (errors.empty() ? "" : "\n") + e;
        }
        asked.refused(next_generation.errors);
        notify.ready("reload refused, configuration unchanged: " + errors);
        continue;
      }
      current = std::move(next_generation.built);
      budget.set_limit(current->cfg->server.max_in_flight_bytes);
      for (auto& w : workers) w->reload(current);
      std::fprintf(stderr, "sluiced: configuration reloaded from %s\n", config_path.c_str());
      asked.reloaded(current->loaded_at);
      // Done from the manager's point of view: the generation is built and posted, and each
      // loop switches to it at its next turn.
      if (notify.enabled())
        notify.ready("configuration reloaded from " + config_path + ": generation " + std::to_string(current->number) +
                     restart_note + ", " + workers_text + ", " + queue_summary(*queue));
      continue;
    }
    std::fprintf(stderr, "sluiced: signal %d: draining (at most %us; a second SIGTERM or SIGINT ends it now)\n", sig,
                 current->cfg->server.drain_timeout_s);
    notify.stopping("stopping (signal " + std::to_string(sig) + "): finishing transactions, deliveries and queue writes");
    break;
  }

  for (auto& w : workers) w->stop();
  // The drain: a second SIGTERM or SIGINT cuts it (every worker ends what is open at once,
  // still answering what the store has). SIGHUP no longer reloads anything.
  bool cut = false;
  const timespec drain_tick{0, 50'000'000};
  for (;;) {
    bool ended = true;
    for (auto& w : workers) ended = ended && w->ended();
    if (ended) break;
    const int sig = sigtimedwait(&signals, nullptr, &drain_tick);
    if ((sig == SIGTERM || sig == SIGINT) && !cut) {
      cut = true;
      std::fprintf(stderr, "sluiced: signal %d: ending the drain now\n", sig);
      for (auto& w : workers) w->stop();
    }
  }
  for (auto& w : workers) w->join();
  metrics_collectors.reset();  // it reads the queue
  queue.reset();  // drains and stops the writer thread
  workers.clear();
  std::fprintf(stderr, "sluiced: stopped\n");
  return 0;
}
