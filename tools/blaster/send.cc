// send.cc: blaster send: sessions on one libuv loop per thread driving the smtp::client state machine.
// Untrusted input: replies from the target server (parsed by smtp::client).
#include <fmt/format.h>
#include <signal.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <thread>
#include <vector>

#include "commands.h"
#include "digest.h"
#include "histogram.h"
#include "message.h"
#include "net/loop.h"
#include "record.h"
#include "smtp/client.h"
#include "stream/stream.h"
#include "tls/context.h"

namespace sluice::blaster {

namespace {

uint64_t now_ns() {
  return uint64_t(std::chrono::duration_cast<std::chrono::nanoseconds>(
                      std::chrono::steady_clock::now().time_since_epoch())
                      .count());
}

// Written by its loop only (relaxed stores), read by the progress display. Padded to a
// cache line so that loops updating their own counters never share a line.
struct alignas(64) live_counters {
  std::atomic<uint64_t> done{0};
  std::atomic<uint64_t> accepted{0};
  std::atomic<uint64_t> errors{0};
  std::atomic<bool> finished{false};
};

struct loop_stats {
  uint64_t attempted = 0, accepted = 0, refused = 0, failed = 0;
  uint64_t rcpts_accepted = 0, bytes = 0, connections = 0, connect_errors = 0;
  uint64_t accepted_measured = 0, bytes_measured = 0;  // after the warm-up
  std::array<uint64_t, 600> codes{};
  histogram latency;
  std::map<std::string, uint64_t> errors;

  void note_error(const std::string& what) {
    if (errors.size() < 32 || errors.count(what)) ++errors[what];
  }
  void merge(const loop_stats& o) {
    attempted += o.attempted;
    accepted += o.accepted;
    refused += o.refused;
    failed += o.failed;
    rcpts_accepted += o.rcpts_accepted;
    bytes += o.bytes;
    connections += o.connections;
    connect_errors += o.connect_errors;
    accepted_measured += o.accepted_measured;
    bytes_measured += o.bytes_measured;
    for (size_t i = 0; i < codes.size(); ++i) codes[i] += o.codes[i];
    latency.merge(o.latency);
    for (const auto& [k, v] : o.errors) errors[k] += v;
  }
};

struct interval_sample {
  uint64_t accepted = 0, failed = 0, bytes = 0;
  histogram latency;
};

// Read-only after start, shared by all loops.
struct run_config {
  const send_options& o;
  net::endpoint target;
  smtp::client_settings client;
  std::shared_ptr<const tls::context> tls_ctx;
  uint64_t start_ns = 0;
  uint64_t measure_from_ns = 0;  // end of the warm-up
  std::mutex record_mu;
  std::FILE* record = nullptr;
  // Set by the main thread at SIGINT/SIGTERM; each loop's sweep timer sees it and stops
  // taking messages, as at the end of --duration, so the sent log is complete.
  std::atomic<bool> stop_requested{false};
};

class worker;

class session final : public stream::stream_handler {
 public:
  explicit session(worker& w);
  void start() { connect(); }
  void kick();   // an open-loop slot is available
  void check_timeout(uint64_t now);
  bool finished() const { return finished_; }

  void on_input(std::string_view plaintext) override;
  void on_end(stream::end_reason why, std::string_view detail) override;

 private:
  void connect();
  void on_connected(std::unique_ptr<stream::byte_stream> s, std::string_view error);
  void on_ready();
  void on_done(const smtp::message_result& r);
  void pump();
  void flush();
  void end_connection();
  void start_tls();

  worker& w_;
  std::unique_ptr<stream::byte_stream> stream_;
  std::optional<smtp::client> client_;
  net::timer retry_;
  // Two messages can be in flight on one connection (the next MAIL rides with the
  // previous end of data); the client points into these until each message_done.
  struct slot {
    generated_message msg;
    smtp::outgoing_message out;
    uint64_t start_ns = 0;
  };
  std::array<slot, 2> slots_;
  uint64_t sent_ = 0;                 // messages handed to the client on this connection
  uint64_t answered_ = 0;             // message_done events on this connection
  std::string session_error_;         // why the current connection is ending, if not by QUIT
  uint64_t conn_start_ns_ = 0;
  uint64_t last_activity_ns_ = 0;
  bool claim_ = false;                // holds a claim on one message of the budget
  bool waiting_slot_ = false;
  bool connected_ = false;
  bool finished_ = false;
  bool ended_ = false;                // the client reported closed/protocol_error
};

class worker {
 public:
  worker(run_config& cfg, unsigned index, unsigned threads, uint64_t budget, unsigned sessions,
         live_counters& live)
      : cfg_(cfg), factory_(cfg.o.spec, 0x9E3779B97F4A7C15ull * (index + 1)), index_(index), threads_(threads),
        budget_(budget), live_(live), tick_(loop_), sweep_(loop_), deadline_(loop_), interval_(loop_) {
    rate_ = cfg.o.rate / double(threads);
    for (unsigned i = 0; i < sessions; ++i) sessions_.push_back(std::make_unique<session>(*this));
  }

  void run() {
    const auto& o = cfg_.o;
    if (sessions_.empty()) {
      live_.finished.store(true);
      return;
    }
    if (rate_ > 0) tick_.start(1, 1, [this] { open_loop_tick(); });
    sweep_.start(250, 250, [this] {
      if (!stopping_ && cfg_.stop_requested.load(std::memory_order_relaxed)) stop_taking();
      uint64_t now = now_ns();
      for (auto& s : sessions_) s->check_timeout(now);
    });
    if (o.duration_s > 0) deadline_.start(uint64_t(o.duration_s * 1000), 0, [this] { stop_taking(); });
    if (o.interval_s > 0) interval_.start(uint64_t(o.interval_s * 1000), uint64_t(o.interval_s * 1000), [this] {
      series_.push_back(current_);
      current_ = interval_sample{};
    });
    for (auto& s : sessions_) s->start();
    loop_.run();
    // The last, partial interval only counts if something happened in it.
    if (current_.accepted + current_.failed > 0) series_.push_back(current_);
    flush_record(true);
    live_.finished.store(true);
  }

  // A session opens a connection only with a claim on one message of the budget, so
  // near the end no connection is opened that finds nothing to send. The claim is
  // spent by the connection's first message, or dropped when the connection ends.
  bool claim() {
    if (stopping_ || budget_ <= claimed_) return false;
    if (budget_ != UINT64_MAX) ++claimed_;
    return true;
  }
  void drop_claim() {
    if (budget_ != UINT64_MAX && claimed_ > 0) --claimed_;
  }

  enum class take { ok, wait, none };
  take take_message(bool claimed, uint64_t& intended, uint64_t& n) {
    if (stopping_ || budget_ == 0) return take::none;
    if (!claimed && budget_ != UINT64_MAX && budget_ <= claimed_) return take::none;
    if (rate_ > 0) {
      refill(now_ns());
      if (backlog_.empty()) return take::wait;
      intended = backlog_.front();
      backlog_.pop_front();
    } else {
      intended = now_ns();
    }
    if (budget_ != UINT64_MAX) --budget_;
    if (claimed) drop_claim();
    n = next_k_++ * threads_ + index_;
    // That was the last message: sessions waiting for a due one will never get one, and
    // must QUIT now rather than sit until the server's idle timeout ends them.
    if (budget_ == 0) release_idle();
    return take::ok;
  }
  // A message that could not even be attempted (no connection) still uses up the budget.
  void count_unattempted(const std::string& why) {
    if (budget_ != UINT64_MAX && budget_ > 0) {
      --budget_;
      ++stats_.attempted;
      ++stats_.failed;
      ++current_.failed;
      stats_.note_error(why);
      live_.done.store(live_.done.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
      live_.errors.store(stats_.failed + stats_.refused, std::memory_order_relaxed);
    }
  }
  void wait_slot(session* s) { idle_.push_back(s); }
  void unwait(session* s) { std::erase(idle_, s); }
  void session_finished() {
    if (++finished_sessions_ == sessions_.size()) {
      tick_.stop();
      sweep_.stop();
      deadline_.stop();
      interval_.stop();
    }
  }

  void record_result(const generated_message& m, const smtp::message_result& r, uint64_t start_ns) {
    uint64_t now = now_ns();
    last_done_ns_ = now;
    int code = r.final.code;
    if (code > 0 && code < 600) ++stats_.codes[size_t(code)];
    bool measured = now >= cfg_.measure_from_ns;
    if (r.accepted()) {
      ++stats_.accepted;
      stats_.rcpts_accepted += r.accepted_recipients();
      stats_.bytes += m.content.size();
      uint64_t us = (now - start_ns) / 1000;
      if (measured) {
        ++stats_.accepted_measured;
        stats_.bytes_measured += m.content.size();
        stats_.latency.record(us);
      }
      ++current_.accepted;
      current_.bytes += m.content.size();
      current_.latency.record(us);
      live_.accepted.store(stats_.accepted, std::memory_order_relaxed);
      if (cfg_.record != nullptr) {
        sent_record rec;
        rec.id = m.id;
        rec.digest = digest_hex(m.digest);
        rec.queue_id = queue_id_from_reply(r.final.text);
        rec.from = m.from;
        for (size_t i = 0; i < r.recipients.size() && i < m.rcpts.size(); ++i)
          if (r.recipients[i].positive()) rec.rcpts.push_back(m.rcpts[i]);
        append_record(record_buf_, rec);
        flush_record(false);
      }
    } else {
      if (code == 0) {
        ++stats_.failed;
        stats_.note_error(r.final.text);
      } else {
        ++stats_.refused;
      }
      ++current_.failed;
      live_.errors.store(stats_.failed + stats_.refused, std::memory_order_relaxed);
    }
    live_.done.store(live_.done.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  }

  run_config& cfg_;
  net::loop loop_;
  loop_stats stats_;
  uint64_t last_done_ns_ = 0;  // when this loop's last message was answered
  std::vector<interval_sample> series_;
  message_factory factory_;

 private:
  void stop_taking() {
    stopping_ = true;
    backlog_.clear();
    release_idle();
  }
  // Sessions waiting for an open-loop slot look again (and QUIT when there is none).
  void release_idle() {
    auto idle = std::move(idle_);
    idle_.clear();
    for (auto* s : idle) s->kick();
  }

  // Moves the messages whose intended start has come into the backlog.
  void refill(uint64_t now) {
    double elapsed = double(now - cfg_.start_ns) / 1e9;
    uint64_t due = uint64_t(elapsed * rate_) + 1;
    while (issued_ < due && backlog_.size() < budget_) {
      // The intended start of message k is start + k/rate: latency is measured from
      // there, so a slow server cannot hide its queueing (no coordinated omission).
      backlog_.push_back(cfg_.start_ns + uint64_t(double(issued_) / rate_ * 1e9));
      ++issued_;
    }
  }

  // Every millisecond: sessions idle for want of a due message get one. Sessions that
  // finish a message take the next due one at once, without waiting for the tick.
  void open_loop_tick() {
    if (stopping_) return;
    refill(now_ns());
    while (!backlog_.empty() && !idle_.empty()) {
      session* s = idle_.back();
      idle_.pop_back();
      s->kick();
    }
  }

  void flush_record(bool force) {
    if (record_buf_.empty() || (!force && record_buf_.size() < (1u << 20))) return;
    std::lock_guard lock(cfg_.record_mu);
    std::fwrite(record_buf_.data(), 1, record_buf_.size(), cfg_.record);
    record_buf_.clear();
  }

  unsigned index_, threads_;
  uint64_t budget_;
  live_counters& live_;
  double rate_ = 0;
  uint64_t next_k_ = 0;
  uint64_t claimed_ = 0;
  uint64_t issued_ = 0;
  bool stopping_ = false;
  std::deque<uint64_t> backlog_;
  std::vector<session*> idle_;
  std::vector<std::unique_ptr<session>> sessions_;
  size_t finished_sessions_ = 0;
  net::timer tick_, sweep_, deadline_, interval_;
  interval_sample current_;
  std::string record_buf_;
};

session::session(worker& w) : w_(w), retry_(w.loop_) {}

void session::connect() {
  if (!w_.claim()) {
    if (!finished_) {
      finished_ = true;
      w_.session_finished();
    }
    return;
  }
  conn_start_ns_ = last_activity_ns_ = now_ns();
  sent_ = answered_ = 0;
  ended_ = false;
  claim_ = true;
  stream::byte_stream::connect(w_.loop_, w_.cfg_.target,
                               [this](std::unique_ptr<stream::byte_stream> s, std::string_view error) {
                                 on_connected(std::move(s), error);
                               });
}

void session::on_connected(std::unique_ptr<stream::byte_stream> s, std::string_view error) {
  if (!s) {
    ++w_.stats_.connect_errors;
    std::string why(error);
    claim_ = false;
    w_.drop_claim();
    w_.count_unattempted(why);
    // Back off briefly so a refused port does not turn into a busy loop.
    retry_.start(100, 0, [this] { connect(); });
    return;
  }
  ++w_.stats_.connections;
  stream_ = std::move(s);
  connected_ = true;
  client_.emplace(w_.cfg_.client);
  stream_->start(*this);
}

void session::on_input(std::string_view plaintext) {
  last_activity_ns_ = now_ns();
  if (!client_) return;
  client_->feed(plaintext);
  pump();
}

void session::on_end(stream::end_reason why, std::string_view detail) {
  if (!client_) return;
  client_->connection_lost(why == stream::end_reason::tls_failed ? "TLS: " + std::string(detail) : std::string(detail));
  pump();
}

void session::check_timeout(uint64_t now) {
  if (!client_ || (waiting_slot_ && client_->in_flight() == 0)) return;
  if (now - last_activity_ns_ > uint64_t(w_.cfg_.o.timeout_s * 1e9)) {
    client_->connection_lost("timeout");
    pump();
  }
}

void session::start_tls() {
  // Blaster targets are literal addresses: no name for SNI or verification.
  stream_->start_tls(w_.cfg_.tls_ctx);
  if (stream_->tls()->failed()) {
    client_->connection_lost("TLS: " + stream_->tls()->error_text());
    return;
  }
  client_->tls_started();  // EHLO is held by the TLS session until the handshake is done
}

void session::pump() {
  smtp::client_event ev;
  while (client_ && client_->next_event(ev)) {
    switch (ev.what) {
      case smtp::client_event::kind::ready:
        on_ready();
        break;
      case smtp::client_event::kind::message_done:
        on_done(ev.result);
        break;
      case smtp::client_event::kind::need_tls:
        flush();
        start_tls();
        break;
      case smtp::client_event::kind::closed:
        // Code 0 (connection lost) was already counted with the message it broke.
        if (ev.why.code != 221 && ev.why.code != 0) session_error_ = fmt::format("closed: {} {}", ev.why.code, ev.why.text);
        if (ev.why.code == 0 && sent_ == 0) session_error_ = ev.why.text;
        ended_ = true;
        break;
      case smtp::client_event::kind::protocol_error:
        session_error_ = "protocol error: " + ev.detail;
        ended_ = true;
        break;
      case smtp::client_event::kind::content_due:  // blaster sends its content whole, never chunked
        break;
    }
  }
  flush();
  if (ended_) end_connection();
}

void session::flush() {
  if (!stream_ || !client_) return;
  std::string& out = client_->mutable_output();
  if (out.empty()) return;
  stream_->send(std::move(out));
  out.clear();
}

void session::on_ready() {
  if (!w_.cfg_.o.reuse && sent_ > 0) {
    client_->quit();
    return;
  }
  uint64_t intended = 0, n = 0;
  bool claimed = claim_;
  switch (w_.take_message(claimed, intended, n)) {
    case worker::take::none:
      client_->quit();
      return;
    case worker::take::wait:
      waiting_slot_ = true;
      w_.wait_slot(this);
      return;
    case worker::take::ok:
      claim_ = false;
      break;
  }
  waiting_slot_ = false;
  // One message per connection in closed loop: the connection set-up is part of the
  // time the message took.
  slot& sl = slots_[sent_++ % slots_.size()];
  sl.start_ns = (!w_.cfg_.o.reuse && w_.cfg_.o.rate <= 0) ? conn_start_ns_ : intended;
  last_activity_ns_ = now_ns();
  w_.factory_.make(n, sl.msg);
  sl.out.mail_from = sl.msg.from;
  sl.out.recipients = sl.msg.rcpts;
  sl.out.content = sl.msg.content;
  ++w_.stats_.attempted;
  client_->send(sl.out);
}

void session::kick() {
  if (!waiting_slot_ || !client_) return;
  waiting_slot_ = false;
  on_ready();
  flush();
}

void session::on_done(const smtp::message_result& r) {
  const slot& sl = slots_[answered_++ % slots_.size()];
  w_.record_result(sl.msg, r, sl.start_ns);
}

void session::end_connection() {
  if (waiting_slot_) {  // the server gave up on an idle connection (421 timeout)
    waiting_slot_ = false;
    w_.unwait(this);
  }
  // A connection that ended in an error before its first message (refused greeting,
  // no STARTTLS, AUTH refused) uses up that message as failed, as a refused connect
  // does: otherwise a server that refuses every session would keep blaster busy forever.
  bool wasted = claim_ && !session_error_.empty();
  if (claim_) {
    claim_ = false;
    w_.drop_claim();
  }
  stream_.reset();
  client_.reset();
  connected_ = false;
  ended_ = false;
  std::string error = std::move(session_error_);
  session_error_.clear();
  if (wasted) {
    w_.count_unattempted(error);
    retry_.start(100, 0, [this] { connect(); });
    return;
  }
  if (!error.empty()) w_.stats_.note_error(error);
  connect();
}

std::string human_rate(double v) { return v >= 100 ? fmt::format("{:.0f}", v) : fmt::format("{:.1f}", v); }

}  // namespace

int run_send(send_options o) {
  run_config cfg{o, {}, {}, {}};
  std::string host;
  uint16_t port = 0;
  parse_host_port(o.target, host, port);
  if (host == "localhost") host = "127.0.0.1";
  if (!net::endpoint::parse(host.find(':') != std::string::npos ? fmt::format("[{}]:{}", host, port)
                                                                : fmt::format("{}:{}", host, port),
                            cfg.target)) {
    fmt::print(stderr, "blaster send: --target must be a literal address (or localhost): {}\n", o.target);
    return 2;
  }
  cfg.client.helo = o.helo;
  cfg.client.lmtp = o.lmtp;
  cfg.client.pipelining = o.pipelining;
  cfg.client.pipeline_next_message = o.pipelining;
  cfg.client.chunking = o.bdat;  // DATA unless asked: the next MAIL rides behind DATA's dot, never behind BDAT
  cfg.client.starttls = o.starttls;
  cfg.client.auth_user = o.auth_user;
  cfg.client.auth_password = o.auth_password;
  if (o.starttls) {
    std::string err;
    tls::client_options co;
    co.policy = tls::verify_policy::mandatory;
    cfg.tls_ctx = tls::context::make_client(co, err);
    if (!cfg.tls_ctx) {
      fmt::print(stderr, "blaster send: TLS: {}\n", err);
      return 2;
    }
  }
  if (o.spec.run_id.empty() || o.spec.run_id == "run") {
    std::random_device rd;
    o.spec.run_id = fmt::format("{:08x}", uint32_t(rd()));
  }
  if (!o.record.empty()) {
    cfg.record = std::fopen(o.record.c_str(), "w");
    if (cfg.record == nullptr) {
      fmt::print(stderr, "blaster send: cannot write {}: {}\n", o.record, std::strerror(errno));
      return 2;
    }
  }

  // Signals go to the main thread alone (sigtimedwait in the wait below): the loops'
  // threads inherit the blocked mask.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  unsigned threads = std::max(1u, std::min(o.threads, o.sessions));
  auto live = std::make_unique<live_counters[]>(threads);
  std::vector<std::unique_ptr<worker>> workers(threads);
  std::vector<std::thread> pool;
  cfg.start_ns = now_ns();
  cfg.measure_from_ns = cfg.start_ns + uint64_t(o.warmup_s * 1e9);
  for (unsigned i = 0; i < threads; ++i) {
    uint64_t budget = o.messages == 0 ? UINT64_MAX : o.messages / threads + (i < o.messages % threads ? 1 : 0);
    unsigned sessions = o.sessions / threads + (i < o.sessions % threads ? 1 : 0);
    pool.emplace_back([&, i, budget, sessions] {
      // The loop is created on the thread that runs it.
      workers[i] = std::make_unique<worker>(cfg, i, threads, budget, sessions, live[i]);
      workers[i]->run();
    });
  }

  bool progress = o.progress == 1 || (o.progress == -1 && isatty(STDERR_FILENO));
  uint64_t total = o.messages;
  uint64_t prev_accepted = 0, prev_ns = cfg.start_ns;
  double shown_rate = 0;
  for (;;) {
    bool all = true;
    for (unsigned i = 0; i < threads; ++i) all = all && live[i].finished.load();
    if (all) break;
    // Short waits: the end of the run is noticed quickly (rates are computed from the
    // loops' own timestamps, not from this loop).
    const timespec wait{0, (progress ? 200 : 20) * 1'000'000L};
    if (sigtimedwait(&stop_signals, nullptr, &wait) > 0) cfg.stop_requested.store(true);
    if (progress) {
      uint64_t done = 0, errors = 0, accepted = 0;
      for (unsigned i = 0; i < threads; ++i) {
        done += live[i].done.load(std::memory_order_relaxed);
        accepted += live[i].accepted.load(std::memory_order_relaxed);
        errors += live[i].errors.load(std::memory_order_relaxed);
      }
      uint64_t now = now_ns();
      double secs = double(now - cfg.start_ns) / 1e9;
      // The rate shown is the current one (smoothed over about a second), not the
      // average since the start, so a stall shows at once.
      double inst = double(accepted - prev_accepted) / std::max(1e-3, double(now - prev_ns) / 1e9);
      shown_rate = prev_accepted == 0 ? inst : 0.8 * shown_rate + 0.2 * inst;
      prev_accepted = accepted;
      prev_ns = now;
      std::string where = total ? fmt::format("{:.1f}s  {}/{} done ({:.0f}%)", secs, done, total,
                                              100.0 * double(done) / double(total))
                                : fmt::format("{:.1f}/{:.0f}s  {} done", secs, o.duration_s, done);
      fmt::print(stderr, "\r\x1b[K{}  {} msg/s  {} errors", where, human_rate(shown_rate), errors);
      std::fflush(stderr);
    }
  }
  for (auto& t : pool) t.join();
  if (progress) fmt::print(stderr, "\n");
  double elapsed = double(now_ns() - cfg.start_ns) / 1e9;
  if (cfg.record != nullptr) std::fclose(cfg.record);

  loop_stats all;
  std::vector<interval_sample> series;
  for (auto& w : workers) {
    if (!w) continue;
    all.merge(w->stats_);
    for (size_t i = 0; i < w->series_.size(); ++i) {
      if (series.size() <= i) series.resize(i + 1);
      series[i].accepted += w->series_[i].accepted;
      series[i].failed += w->series_[i].failed;
      series[i].bytes += w->series_[i].bytes;
      series[i].latency.merge(w->series_[i].latency);
    }
  }
  // Rates run from the start (or the end of the warm-up) to the last answer, so the
  // closing QUITs and thread joins do not dilute them.
  uint64_t last_done = 0;
  for (auto& w : workers)
    if (w) last_done = std::max(last_done, w->last_done_ns_);
  double active = last_done > cfg.start_ns ? double(last_done - cfg.start_ns) / 1e9 : elapsed;
  double measured_secs = std::max(1e-6, active - o.warmup_s);
  double rate = double(all.accepted_measured) / measured_secs;
  double mbps = double(all.bytes_measured) / measured_secs / 1e6;
  const auto& h = all.latency;
  auto ms = [](uint64_t us) { return double(us) / 1000.0; };

  if (o.interval_s > 0 && !o.series.empty()) {
    if (std::FILE* f = std::fopen(o.series.c_str(), "w")) {
      fmt::print(f, "t_s,accepted,failed,msg_per_s,mb_per_s,p50_ms,p90_ms,p99_ms,max_ms\n");
      for (size_t i = 0; i < series.size(); ++i) {
        const auto& s = series[i];
        double t = double(i + 1) * o.interval_s;
        double span = std::min(o.interval_s, std::max(1e-3, elapsed - double(i) * o.interval_s));
        fmt::print(f, "{:.3f},{},{},{:.1f},{:.3f},{:.3f},{:.3f},{:.3f},{:.3f}\n", std::min(t, elapsed), s.accepted,
                   s.failed, double(s.accepted) / span, double(s.bytes) / span / 1e6, ms(s.latency.percentile(50)),
                   ms(s.latency.percentile(90)), ms(s.latency.percentile(99)), ms(s.latency.max()));
      }
      std::fclose(f);
    }
  }

  if (o.json) {
    std::string codes, errors;
    for (size_t c = 0; c < all.codes.size(); ++c)
      if (all.codes[c]) codes += fmt::format("{}\"{}\":{}", codes.empty() ? "" : ",", c, all.codes[c]);
    for (const auto& [k, v] : all.errors) {
      std::string esc;
      for (char ch : k) {
        if (ch == '"' || ch == '\\') esc += '\\';
        if (static_cast<unsigned char>(ch) >= 0x20) esc += ch;
      }
      errors += fmt::format("{}\"{}\":{}", errors.empty() ? "" : ",", esc, v);
    }
    fmt::print(
        "{{\"target\":\"{}\",\"sessions\":{},\"threads\":{},\"run_id\":\"{}\",\"attempted\":{},\"accepted\":{},"
        "\"refused\":{},\"failed\":{},\"rcpts_accepted\":{},\"connections\":{},\"connect_errors\":{},"
        "\"elapsed_s\":{:.3f},\"msg_per_s\":{:.1f},\"mb_per_s\":{:.3f},\"bytes\":{},"
        "\"latency_ms\":{{\"p50\":{:.3f},\"p90\":{:.3f},\"p99\":{:.3f},\"p999\":{:.3f},\"max\":{:.3f},\"mean\":{:.3f},"
        "\"count\":{}}},\"codes\":{{{}}},\"errors\":{{{}}}}}\n",
        o.target, o.sessions, threads, o.spec.run_id, all.attempted, all.accepted, all.refused, all.failed,
        all.rcpts_accepted, all.connections, all.connect_errors, elapsed, rate, mbps, all.bytes,
        ms(h.percentile(50)), ms(h.percentile(90)), ms(h.percentile(99)), ms(h.percentile(99.9)), ms(h.max()),
        h.mean() / 1000.0, h.count(), codes, errors);
  } else {
    fmt::print("blaster send: {} -> {} ({} sessions, {} loops, run {})\n", all.attempted, o.target, o.sessions, threads,
               o.spec.run_id);
    fmt::print("  accepted {}  refused {}  failed {}  in {:.2f}s\n", all.accepted, all.refused, all.failed, elapsed);
    fmt::print("  {:.1f} msg/s  {:.2f} MB/s{}\n", rate, mbps, o.warmup_s > 0 ? " (after warm-up)" : "");
    fmt::print("  time to 250 (ms): p50 {:.3f}  p90 {:.3f}  p99 {:.3f}  p99.9 {:.3f}  max {:.3f}\n",
               ms(h.percentile(50)), ms(h.percentile(90)), ms(h.percentile(99)), ms(h.percentile(99.9)), ms(h.max()));
    std::string codes;
    for (size_t c = 0; c < all.codes.size(); ++c)
      if (all.codes[c]) codes += fmt::format("  {}: {}", c, all.codes[c]);
    if (!codes.empty()) fmt::print("  replies:{}\n", codes);
    for (const auto& [k, v] : all.errors) fmt::print("  error: {} x{}\n", k, v);
  }
  // Refusals are answers (fault injection makes them on purpose); failures are not.
  return all.failed == 0 ? 0 : 1;
}

}  // namespace sluice::blaster
