// sink.cc: blaster sink: smtp::server sessions that accept, check digests, record and act out a destination's faults.
// Untrusted input: everything connecting clients send (parsed by smtp::server and check_message).
#include <fmt/format.h>
#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <thread>
#include <vector>

#include "base/queue_id.h"
#include "commands.h"
#include "message.h"
#include "net/connection.h"
#include "net/loop.h"
#include "record.h"
#include "smtp/server.h"
#include "stream/stream.h"
#include "tls/certgen.h"
#include "tls/context.h"

namespace sluice::blaster {

namespace {

struct sink_stats {
  uint64_t connections = 0, messages = 0, accepted = 0, refused_4xx = 0, refused_5xx = 0;
  uint64_t injected_mail = 0, injected_rcpt = 0, rcpts = 0, bytes = 0;
  uint64_t digest_ok = 0, digest_bad = 0, digest_none = 0;
  uint64_t sessions = 0, refused_sessions = 0, rejected_rcpt = 0, deferred_rcpt = 0, deferred_mail = 0, dropped = 0;
  uint64_t bdat_chunks = 0;  // BDAT commands answered (--chunking)
  void merge(const sink_stats& o) {
    bdat_chunks += o.bdat_chunks;
    sessions += o.sessions;
    refused_sessions += o.refused_sessions;
    rejected_rcpt += o.rejected_rcpt;
    deferred_rcpt += o.deferred_rcpt;
    deferred_mail += o.deferred_mail;
    dropped += o.dropped;
    connections += o.connections;
    messages += o.messages;
    accepted += o.accepted;
    refused_4xx += o.refused_4xx;
    refused_5xx += o.refused_5xx;
    injected_mail += o.injected_mail;
    injected_rcpt += o.injected_rcpt;
    rcpts += o.rcpts;
    bytes += o.bytes;
    digest_ok += o.digest_ok;
    digest_bad += o.digest_bad;
    digest_none += o.digest_none;
  }
};

struct sink_config {
  const sink_options& o;
  net::endpoint where;
  smtp::server_settings settings;
  std::shared_ptr<const tls::context> tls_ctx;
  std::mutex record_mu;
  std::FILE* record = nullptr;
  std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();  // for --fail-for-ms
  // Sessions open at once over every loop, and the most there ever were.
  std::atomic<unsigned> open{0}, peak{0};
  // Cleared by SIGUSR1 (the main thread): the destination recovers, and every fault option
  // stops applying from the next decision on. Relaxed: each decision reads it once.
  std::atomic<bool> faults{true};
  std::mutex connection_log_mu;
  std::FILE* connection_log = nullptr;  // --connection-log, written line by line
};

// The replies --stall-at and --drop-at name.
enum class reply_point : uint8_t { none, greeting, ehlo, mail, rcpt, data, dot };

reply_point point_named(std::string_view name) {
  if (name == "greeting") return reply_point::greeting;
  if (name == "ehlo") return reply_point::ehlo;
  if (name == "mail") return reply_point::mail;
  if (name == "rcpt") return reply_point::rcpt;
  if (name == "data") return reply_point::data;
  if (name == "dot") return reply_point::dot;
  return reply_point::none;
}

std::string upper(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = c >= 'a' && c <= 'z' ? char(c - 'a' + 'A') : c;
  return out;
}

// One --dsn record column: "<MAIL parameters>|<RCPT parameters>|..." in recipient order,
// each part space-separated KEY=VALUE pairs of what the client gave (empty: nothing).
std::string dsn_column(const smtp::envelope& env) {
  auto clean = [](std::string v) {
    for (char& c : v) {
      if (static_cast<unsigned char>(c) <= ' ' || c == '|' || c == 127) c = '_';
    }
    return v;
  };
  std::string out;
  auto add = [&](std::string_view key, const std::string& value) {
    if (!out.empty() && out.back() != '|') out += ' ';
    out += key;
    out += '=';
    out += clean(value);
  };
  if (env.ret != smtp::dsn_ret::unspecified) add("RET", env.ret == smtp::dsn_ret::full ? "FULL" : "HDRS");
  if (!env.envid.empty()) add("ENVID", env.envid);
  for (const auto& r : env.recipients) {
    out += '|';
    if (r.notify != smtp::notify_unspecified) {
      std::string n;
      if (r.notify & smtp::notify_never) n = "NEVER";
      for (auto [bit, name] : {std::pair{smtp::notify_success, "SUCCESS"}, std::pair{smtp::notify_failure, "FAILURE"},
                               std::pair{smtp::notify_delay, "DELAY"}}) {
        if (r.notify & bit) n += (n.empty() ? "" : ",") + std::string(name);
      }
      add("NOTIFY", n);
    }
    if (!r.orcpt.empty()) add("ORCPT", r.orcpt);
  }
  return out;
}

class sink_worker;

class sink_session final : public stream::stream_handler, public smtp::server_delegate {
 public:
  sink_session(sink_worker& w, std::unique_ptr<net::connection> c);
  void start();
  void shutdown();
  bool dead() const { return dead_; }

  void on_input(std::string_view plaintext) override;
  void on_end(stream::end_reason why, std::string_view detail) override;

  smtp::reply check_mail(const smtp::envelope& env) override;
  smtp::reply check_recipient(const smtp::envelope& env, const smtp::recipient& rcpt) override;
  void submit(smtp::envelope& env, std::string& body) override;
  void start_tls() override { need_tls_ = true; }
  void on_command(std::string_view line) override {
    verb_ = upper(line.substr(0, line.find(' ')));
    bdat_commands_ += verb_ == "BDAT";  // counted at its reply (a LAST's comes by the submit path)
  }
  uint64_t bdat_commands_ = 0;
  void on_reply(std::string_view wire) override;

  // A connection over --max-sessions: 421 and close, never counted as a session.
  void refuse_busy();

 private:
  void emit(std::string out);
  void release_stall();
  void feed_plain(std::string_view data);
  void after_input();
  void complete_submit();
  void flush();
  void send_out(std::string&& out);
  void after_write();
  void write_now(std::string&& bytes);
  void die();

  sink_worker& w_;
  stream::byte_stream stream_;
  smtp::server server_;
  net::timer submit_timer_, reply_timer_;
  std::optional<smtp::reply> pending_;   // end-of-data reply waiting to be given
  size_t pending_rcpts_ = 0;
  std::string delayed_;                  // replies held back by --latency
  bool lhlo_pending_ = false;            // LMTP: the next LHLO is presented to the server as EHLO
  bool need_tls_ = false;
  bool dead_ = false;
  bool counted_ = false;                 // in cfg.open until it dies
  // --stall-at / --drop-at: where, in the server's pending output, the named reply begins.
  std::string verb_;                     // of the last command line (on_command)
  bool dot_next_ = false;                // the next reply answers the end of data
  std::optional<size_t> cut_;
  bool stalled_ = false;                 // output is held in held_ until the stall ends
  std::string held_;
  // Owned by the session, on its loop; its callback runs there and only releases held_.
  // die() stops it, so it never fires for a dead session (freed later by the reaper).
  net::timer stall_timer_;
  bool drop_now_ = false;                // close after the output already due (--drop-at dot)
  bool tls_garbage_ = false;             // --tls-broken: the next input is a ClientHello
};

class sink_worker {
 public:
  sink_worker(sink_config& cfg, unsigned index)
      : cfg_(cfg), ids_(index), rng_(0xB1A57E5ull + index), listener_(loop_, [this](std::unique_ptr<net::connection> c) {
          accept(std::move(c));
        }),
        reap_(loop_) {}

  int listen() { return listener_.listen(cfg_.where); }
  std::string error_text(int rc) const { return listener_.error_text(rc); }

  void run() {
    reap_.start(200, 200, [this] { reap(); });
    loop_.on_stop([this] {
      listener_.close();
      reap_.stop();
      for (auto& s : sessions_) s->shutdown();
    });
    loop_.run();
    flush_record(true);
  }

  void accept(std::unique_ptr<net::connection> c) {
    ++stats_.connections;
    sessions_.push_back(std::make_unique<sink_session>(*this, std::move(c)));
    unsigned now = cfg_.open.fetch_add(1) + 1;
    if (cfg_.o.max_sessions > 0 && now > cfg_.o.max_sessions) {
      cfg_.open.fetch_sub(1);
      ++stats_.refused_sessions;
      log_connection("refused");
      sessions_.back()->refuse_busy();
      return;
    }
    ++stats_.sessions;
    log_connection("session");
    for (unsigned peak = cfg_.peak.load(); now > peak && !cfg_.peak.compare_exchange_weak(peak, now);) {
    }
    sessions_.back()->start();
  }

  bool faulty() const { return cfg_.faults.load(std::memory_order_relaxed); }

  // Whether a --drop-at point that has come is acted on this time (--drop-fraction).
  bool draw_drop() {
    if (!faulty()) return false;
    if (cfg_.o.drop_fraction >= 1) return true;
    return std::uniform_real_distribution<double>(0.0, 1.0)(rng_) < cfg_.o.drop_fraction;
  }

  // Decides a fault for one injection point: 0 none, 4 or 5.
  int draw_fault() {
    if (!faulty() || (cfg_.o.fail4 <= 0 && cfg_.o.fail5 <= 0)) return 0;
    double x = std::uniform_real_distribution<double>(0.0, 1.0)(rng_);
    if (x < cfg_.o.fail4) return 4;
    if (x < cfg_.o.fail4 + cfg_.o.fail5) return 5;
    return 0;
  }

  // Written at once, with the wall clock, so a test can tell when a sender connected
  // (e.g. none during a suspension) while the sink still runs.
  void log_connection(const char* what) {
    if (cfg_.connection_log == nullptr) return;
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                        std::chrono::system_clock::now().time_since_epoch()).count();
    std::lock_guard lock(cfg_.connection_log_mu);
    std::fprintf(cfg_.connection_log, "%lld\t%s\n", static_cast<long long>(ms), what);
    std::fflush(cfg_.connection_log);
  }

  void record(const received_record& r) {
    if (cfg_.record == nullptr) return;
    append_record(record_buf_, r);
    flush_record(false);
  }

  void flush_record(bool force) {
    if (record_buf_.empty() || (!force && record_buf_.size() < (256u << 10))) return;
    std::lock_guard lock(cfg_.record_mu);
    std::fwrite(record_buf_.data(), 1, record_buf_.size(), cfg_.record);
    std::fflush(cfg_.record);
    record_buf_.clear();
  }

  void reap() {
    std::erase_if(sessions_, [](const auto& s) { return s->dead(); });
    // Received records reach the file five times a second, so a benchmark watching
    // the log (or a crash test) sees what the sink has acknowledged.
    flush_record(true);
  }

  sink_config& cfg_;
  net::loop loop_;
  sink_stats stats_;
  base::queue_id_generator ids_;

 private:
  std::mt19937_64 rng_;
  net::listener listener_;
  net::timer reap_;
  std::vector<std::unique_ptr<sink_session>> sessions_;
  std::string record_buf_;
};

sink_session::sink_session(sink_worker& w, std::unique_ptr<net::connection> c)
    : w_(w), stream_(std::move(c)), server_(w.cfg_.settings, *this), submit_timer_(w.loop_), reply_timer_(w.loop_),
      stall_timer_(w.loop_) {}

void sink_session::start() {
  counted_ = true;
  lhlo_pending_ = w_.cfg_.o.lmtp;
  stream_.start(*this);
  if (unsigned code = w_.cfg_.o.greeting; code != 220 && w_.faulty()) {
    // A busy or closed destination: its one reply, then the close (RFC 5321 3.1).
    std::string text = code < 500 ? fmt::format("{} 4.3.2 {} Service not available, closing transmission channel\r\n",
                                                code, w_.cfg_.o.hostname)
                                  : fmt::format("{} 5.3.2 {} No SMTP service here\r\n", code, w_.cfg_.o.hostname);
    write_now(std::move(text));
    die();
    return;
  }
  verb_ = "GREETING";
  server_.greet();
  flush();
}

void sink_session::refuse_busy() {
  stream_.start(*this);
  write_now(fmt::format("421 4.7.0 {} Too many sessions, try again later\r\n", w_.cfg_.o.hostname));
  die();
}

void sink_session::shutdown() {
  if (dead_) return;
  die();
}

void sink_session::die() {
  submit_timer_.stop();
  reply_timer_.stop();
  stall_timer_.stop();
  stream_.close();
  if (counted_) w_.cfg_.open.fetch_sub(1);
  counted_ = false;
  dead_ = true;  // freed by the worker's reaper, never inside its own callback
}

void sink_session::on_input(std::string_view plaintext) {
  if (dead_) return;
  if (tls_garbage_) {
    // Where the ServerHello belongs: bytes that are no TLS record at all.
    write_now("HTTP/1.0 400 this is not TLS\r\n\r\n");
    die();
    return;
  }
  feed_plain(plaintext);
  after_input();
}

// Called as the server appends a reply: the reply begins wire.size() + 2 bytes before
// the end of its output, which flush() takes whole, so the offset stays valid until then.
void sink_session::on_reply(std::string_view wire) {
  w_.stats_.bdat_chunks += bdat_commands_;
  bdat_commands_ = 0;
  reply_point at = reply_point::none;
  if (dot_next_) {
    dot_next_ = false;
    at = reply_point::dot;
  } else if (verb_ == "GREETING") {
    at = reply_point::greeting;
  } else if (verb_ == "EHLO" || verb_ == "HELO" || verb_ == "LHLO") {
    at = reply_point::ehlo;
  } else if (verb_ == "MAIL") {
    at = reply_point::mail;
  } else if (verb_ == "RCPT") {
    at = reply_point::rcpt;
  } else if (verb_ == "DATA") {
    at = reply_point::data;
  }
  verb_.clear();  // a command has one reply (multi-line ones come as one)
  if (at == reply_point::none || cut_) return;
  const auto& o = w_.cfg_.o;
  bool drop = at != reply_point::dot && point_named(o.drop_at) == at && w_.draw_drop();
  if (drop || (point_named(o.stall_at) == at && w_.faulty())) {
    cut_ = server_.output().size() - wire.size() - 2;
    drop_now_ = drop_now_ || drop;
  }
}

void sink_session::feed_plain(std::string_view data) {
  if (lhlo_pending_) {
    // LMTP (RFC 2033) differs from SMTP in its greeting verb and in the replies after
    // DATA; the server machine speaks SMTP, so the sink renames the greeting and
    // repeats the end-of-data reply once per recipient.
    size_t at = data.find("LHLO");
    if (at != std::string_view::npos && (at == 0 || data[at - 1] == '\n')) {
      std::string copy(data);
      copy[at] = 'E';
      lhlo_pending_ = false;
      server_.feed(copy);
      return;
    }
  }
  server_.feed(data);
}

// Closed, failed or TLS-refused alike: the stream has already sent any alert.
void sink_session::on_end(stream::end_reason, std::string_view) { die(); }

smtp::reply sink_session::check_mail(const smtp::envelope&) {
  if (w_.cfg_.o.fail_for_ms > 0 && w_.faulty() &&
      std::chrono::steady_clock::now() - w_.cfg_.start < std::chrono::duration<double, std::milli>(w_.cfg_.o.fail_for_ms)) {
    ++w_.stats_.deferred_mail;
    return {451, "4.3.2", "Not accepting mail yet, try again later"};
  }
  if (w_.cfg_.o.inject_at == "mail") {
    if (int f = w_.draw_fault()) {
      ++w_.stats_.injected_mail;
      return f == 4 ? smtp::reply{451, "4.3.0", "Injected temporary failure"}
                    : smtp::reply{550, "5.7.1", "Injected permanent failure"};
    }
  }
  return {250, "2.1.0", "Sender OK"};
}

smtp::reply sink_session::check_recipient(const smtp::envelope&, const smtp::recipient& rcpt) {
  if (!w_.faulty()) return {250, "2.1.5", "Recipient OK"};
  for (const auto& g : w_.cfg_.o.reject_rcpt) {
    if (glob_match(g, rcpt.address)) {
      ++w_.stats_.rejected_rcpt;
      return {550, "5.1.1", "No such user here"};
    }
  }
  for (const auto& g : w_.cfg_.o.defer_rcpt) {
    if (glob_match(g, rcpt.address)) {
      ++w_.stats_.deferred_rcpt;
      return {451, "4.2.1", "Mailbox temporarily unavailable"};
    }
  }
  if (w_.cfg_.o.inject_at == "rcpt") {
    if (int f = w_.draw_fault()) {
      ++w_.stats_.injected_rcpt;
      return f == 4 ? smtp::reply{451, "4.3.0", "Injected temporary failure"}
                    : smtp::reply{550, "5.1.1", "Injected permanent failure"};
    }
  }
  return {250, "2.1.5", "Recipient OK"};
}

void sink_session::submit(smtp::envelope& env, std::string& body) {
  auto& st = w_.stats_;
  ++st.messages;
  st.bytes += body.size();
  message_check chk = check_message(body);
  if (chk.claimed.empty()) ++st.digest_none;
  else if (chk.ok()) ++st.digest_ok;
  else ++st.digest_bad;
  if (w_.cfg_.o.drop_at == "dot" && w_.draw_drop()) {
    // The whole message came, and the connection goes before any reply: a crash
    // before the store had it. Nothing is recorded.
    ++st.dropped;
    drop_now_ = true;
    body.clear();
    stream_.hold_input();
    return;
  }

  smtp::reply r;
  int fault = w_.cfg_.o.inject_at == "data" ? w_.draw_fault() : 0;
  if (fault == 4) {
    r = {451, "4.3.0", "Injected temporary failure"};
    ++st.refused_4xx;
  } else if (fault == 5) {
    r = {554, "5.6.0", "Injected permanent failure"};
    ++st.refused_5xx;
  } else {
    r = {250, "2.6.0", w_.ids_.next().text() + " Queued mail for delivery"};
    ++st.accepted;
    st.rcpts += env.recipients.size();
    received_record rec;
    rec.id = chk.id;
    rec.check = chk.verdict();
    rec.digest = chk.actual;
    rec.from = env.mail_from;
    for (const auto& rc : env.recipients) rec.rcpts.push_back(rc.address);
    if (w_.cfg_.o.dsn) rec.dsn = dsn_column(env);
    w_.record(rec);
    if (w_.cfg_.o.drop_at == "after-dot" && w_.draw_drop()) {
      // Accepted and recorded, but the 250 never leaves: the sender must assume it
      // was lost and send it again (the duplicate a crash after commit makes).
      ++st.dropped;
      drop_now_ = true;
    }
  }
  pending_ = std::move(r);
  pending_rcpts_ = env.recipients.size();
  body.clear();
  // The server holds further input until submit_done(); stop reading meanwhile.
  stream_.hold_input();
}

void sink_session::after_input() {
  flush();
  if (drop_now_ && !dead_ && !pending_) {
    die();
    return;
  }
  if (pending_ && !dead_) {
    // submit_done() re-enters the server's command processing, so it runs only after
    // feed() has returned: right away, or when --data-latency expires.
    if (w_.cfg_.o.data_latency_ms > 0) {
      submit_timer_.start(uint64_t(w_.cfg_.o.data_latency_ms), 0, [this] { complete_submit(); });
    } else {
      complete_submit();
    }
  }
}

void sink_session::complete_submit() {
  while (pending_ && !dead_) {
    smtp::reply r = std::move(*pending_);
    pending_.reset();
    flush();
    if (drop_now_) {  // --drop-at after-dot: recorded, and now gone without its 250
      die();
      return;
    }
    size_t before = server_.output().size();
    dot_next_ = true;
    server_.submit_done(r);
    dot_next_ = false;
    if (w_.cfg_.o.lmtp && pending_rcpts_ > 1 && server_.output().size() > before) {
      // One reply per recipient (RFC 2033 4.2): repeat the end-of-data reply.
      std::string first = r.wire();
      std::string out = server_.take_output();
      std::string extra;
      for (size_t i = 1; i < pending_rcpts_; ++i) extra += first;
      out.insert(std::min(out.size(), first.size()), extra);
      if (cut_ && *cut_ >= first.size()) *cut_ += extra.size();
      emit(std::move(out));
    }
    flush();
    if (!dead_) stream_.release_input();
    // submit_done() may have run pipelined input up to the next message's submit.
    if (pending_ && w_.cfg_.o.data_latency_ms > 0) {
      submit_timer_.start(uint64_t(w_.cfg_.o.data_latency_ms), 0, [this] { complete_submit(); });
      return;
    }
  }
}

void sink_session::write_now(std::string&& bytes) {
  if (!bytes.empty()) stream_.send(std::move(bytes));
}

void sink_session::flush() { emit(server_.take_output()); }

// Output in the order the server made it; a --stall-at/--drop-at cut splits it there.
void sink_session::emit(std::string out) {
  if (!cut_) {
    send_out(std::move(out));
    return;
  }
  size_t at = std::min(*cut_, out.size());
  cut_.reset();
  std::string rest = out.substr(at);
  out.resize(at);
  send_out(std::move(out));
  if (drop_now_) {
    ++w_.stats_.dropped;
    die();
    return;
  }
  stalled_ = true;
  held_ += rest;
  if (w_.cfg_.o.stall_ms >= 0) stall_timer_.start(uint64_t(w_.cfg_.o.stall_ms), 0, [this] { release_stall(); });
}

void sink_session::release_stall() {
  stalled_ = false;
  std::string out = std::move(held_);
  held_.clear();
  send_out(std::move(out));
}

void sink_session::send_out(std::string&& out) {
  if (dead_) return;
  if (stalled_) {
    held_ += out;
    return;
  }
  if (w_.cfg_.o.latency_ms > 0 && (!out.empty() || !delayed_.empty())) {
    bool armed = !delayed_.empty();
    delayed_ += out;
    if (!armed) {
      reply_timer_.start(uint64_t(w_.cfg_.o.latency_ms), 0, [this] {
        std::string held = std::move(delayed_);
        delayed_.clear();
        write_now(std::move(held));
        after_write();
      });
    }
    return;
  }
  write_now(std::move(out));
  after_write();
}

void sink_session::after_write() {
  if (dead_) return;
  if (need_tls_ && w_.cfg_.o.tls_broken && w_.faulty()) {
    need_tls_ = false;
    tls_garbage_ = true;
    return;
  }
  if (need_tls_) {
    // The 220 went out in plaintext; everything after it is TLS.
    need_tls_ = false;
    stream_.start_tls(w_.cfg_.tls_ctx);
    server_.tls_started();
    lhlo_pending_ = w_.cfg_.o.lmtp;
    return;
  }
  if (server_.closing()) die();
}

}  // namespace

int run_sink(const sink_options& o) {
  sink_config cfg{o, {}, {}, {}};
  std::string host;
  uint16_t port = 0;
  parse_host_port(o.listen, host, port);
  if (host == "localhost") host = "127.0.0.1";
  if (!net::endpoint::parse(host.find(':') != std::string::npos ? fmt::format("[{}]:{}", host, port)
                                                                : fmt::format("{}:{}", host, port),
                            cfg.where)) {
    fmt::print(stderr, "blaster sink: --listen must be a literal address (or localhost): {}\n", o.listen);
    return 2;
  }
  cfg.settings.hostname = o.hostname;
  cfg.settings.banner = o.hostname + (o.lmtp ? " LMTP blaster sink" : " ESMTP blaster sink");
  cfg.settings.max_message_size = o.max_size;
  cfg.settings.max_recipients = 100000;
  cfg.settings.max_errors = 1000000;
  cfg.settings.starttls_offered = o.starttls;
  cfg.settings.eightbitmime = o.eightbitmime;
  cfg.settings.smtputf8 = o.smtputf8;
  cfg.settings.pipelining = o.pipelining;
  cfg.settings.chunking = o.chunking;
  cfg.settings.dsn = o.dsn;
  // --tls-broken gets a real certificate too: a recovered sink (SIGUSR1) does handshake.
  if (o.starttls) {
    std::string err;
    tls::server_options so;
    if (!o.tls_cert.empty()) {
      so.pair = {o.tls_cert, o.tls_key};
      cfg.tls_ctx = tls::context::make_server(so, err);
    } else {
      tls::cert_request req;
      // A chosen name stands alone, so a client checking another name sees a mismatch.
      req.common_name = o.tls_cert_name.empty() ? o.hostname : o.tls_cert_name;
      req.names = {req.common_name};
      if (o.tls_cert_name.empty()) req.names.insert(req.names.end(), {"localhost", "127.0.0.1"});
      req.key = tls::key_type::p256;
      tls::key_and_cert kc;
      char dir[] = "/tmp/blaster-sink-XXXXXX";
      if (!tls::issue_certificate(req, kc, err) || mkdtemp(dir) == nullptr ||
          !tls::write_file_atomic(std::string(dir) + "/cert.pem", kc.cert_pem, 0644, err) ||
          !tls::write_file_atomic(std::string(dir) + "/key.pem", kc.key_pem, 0600, err)) {
        fmt::print(stderr, "blaster sink: cannot make a certificate: {}\n", err);
        return 2;
      }
      so.pair = {std::string(dir) + "/cert.pem", std::string(dir) + "/key.pem"};
      cfg.tls_ctx = tls::context::make_server(so, err);
      std::remove(so.pair.chain_file.c_str());
      std::remove(so.pair.key_file.c_str());
      rmdir(dir);
    }
    if (!cfg.tls_ctx) {
      fmt::print(stderr, "blaster sink: TLS: {}\n", err);
      return 2;
    }
  }
  if (!o.record.empty()) {
    cfg.record = std::fopen(o.record.c_str(), "w");
    if (cfg.record == nullptr) {
      fmt::print(stderr, "blaster sink: cannot write {}: {}\n", o.record, std::strerror(errno));
      return 2;
    }
  }
  if (!o.connection_log.empty()) {
    cfg.connection_log = std::fopen(o.connection_log.c_str(), "w");
    if (cfg.connection_log == nullptr) {
      fmt::print(stderr, "blaster sink: cannot write {}: {}\n", o.connection_log, std::strerror(errno));
      return 2;
    }
  }

  // Signals are taken by the main thread alone (sigtimedwait below).
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGUSR1);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
  signal(SIGPIPE, SIG_IGN);

  unsigned threads = std::max(1u, o.threads);
  cfg.start = std::chrono::steady_clock::now();  // before any worker can read it
  std::vector<std::unique_ptr<sink_worker>> workers(threads);
  std::vector<std::thread> pool;
  std::atomic<unsigned> bound{0};
  std::atomic<int> bind_error{0};
  std::mutex err_mu;
  std::string err_text;
  for (unsigned i = 0; i < threads; ++i) {
    pool.emplace_back([&, i] {
      workers[i] = std::make_unique<sink_worker>(cfg, i);
      int rc = workers[i]->listen();
      if (rc != 0) {
        std::lock_guard lock(err_mu);
        err_text = workers[i]->error_text(rc);
        bind_error.store(rc);
      }
      bound.fetch_add(1);
      if (rc == 0) workers[i]->run();
    });
  }
  while (bound.load() < threads) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  auto start = std::chrono::steady_clock::now();
  if (bind_error.load() != 0) {
    fmt::print(stderr, "blaster sink: cannot listen on {}: {}\n", o.listen, err_text);
    for (auto& w : workers)
      if (w) w->loop_.stop();
    for (auto& t : pool) t.join();
    return 1;
  }
  fmt::print(stderr, "blaster sink: listening on {} ({} loops{})\n", cfg.where.text(), threads,
             o.lmtp ? ", LMTP" : "");

  // SIGUSR1 (the destination recovers) is taken and the wait goes on; SIGINT, SIGTERM or
  // the end of --duration stop the sink.
  const auto until = start + std::chrono::duration<double>(o.duration_s);
  for (;;) {
    int sig = 0;
    if (o.duration_s > 0) {
      const double left = std::chrono::duration<double>(until - std::chrono::steady_clock::now()).count();
      if (left <= 0) break;
      timespec ts{};
      ts.tv_sec = time_t(left);
      ts.tv_nsec = long((left - double(ts.tv_sec)) * 1e9);
      sig = sigtimedwait(&sigs, nullptr, &ts);
      if (sig < 0 && errno == EINTR) continue;
      if (sig < 0) break;  // EAGAIN: the time is up
    } else if (sigwait(&sigs, &sig) != 0) {
      break;
    }
    if (sig != SIGUSR1) break;
    cfg.faults.store(false, std::memory_order_relaxed);
    fmt::print(stderr, "blaster sink: SIGUSR1: faults off, behaving from now on\n");
  }
  double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  for (auto& w : workers) w->loop_.stop();
  for (auto& t : pool) t.join();
  if (cfg.record != nullptr) std::fclose(cfg.record);
  if (cfg.connection_log != nullptr) std::fclose(cfg.connection_log);

  sink_stats all;
  for (auto& w : workers) all.merge(w->stats_);
  if (o.json) {
    fmt::print(
        "{{\"listen\":\"{}\",\"connections\":{},\"messages\":{},\"accepted\":{},\"refused_4xx\":{},\"refused_5xx\":{},"
        "\"injected_mail\":{},\"injected_rcpt\":{},\"rcpts\":{},\"bytes\":{},\"digest_ok\":{},\"digest_bad\":{},"
        "\"digest_none\":{},\"sessions_total\":{},\"peak_sessions\":{},\"refused_sessions\":{},"
        "\"rejected_rcpt\":{},\"deferred_rcpt\":{},\"deferred_mail\":{},\"dropped\":{},\"bdat_chunks\":{},"
        "\"elapsed_s\":{:.3f}}}\n",
        o.listen, all.connections, all.messages, all.accepted, all.refused_4xx, all.refused_5xx, all.injected_mail,
        all.injected_rcpt, all.rcpts, all.bytes, all.digest_ok, all.digest_bad, all.digest_none, all.sessions,
        cfg.peak.load(), all.refused_sessions, all.rejected_rcpt, all.deferred_rcpt, all.deferred_mail, all.dropped,
        all.bdat_chunks, elapsed);
  } else {
    fmt::print("blaster sink: {} connections, {} messages: {} accepted, {} refused 4xx, {} refused 5xx\n",
               all.connections, all.messages, all.accepted, all.refused_4xx, all.refused_5xx);
    fmt::print("  injected at MAIL {}, at RCPT {}; {} recipients, {} bytes\n", all.injected_mail, all.injected_rcpt,
               all.rcpts, all.bytes);
    fmt::print("  digests: {} ok, {} bad, {} missing\n", all.digest_ok, all.digest_bad, all.digest_none);
    fmt::print("  sessions: {} (at most {} at once), {} refused as too many; {} dropped on purpose\n", all.sessions,
               cfg.peak.load(), all.refused_sessions, all.dropped);
  }
  std::fflush(stdout);
  return 0;
}

}  // namespace sluice::blaster
