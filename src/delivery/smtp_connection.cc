// smtp_connection.cc: the outbound SMTP/LMTP connection: stream events and client events in, handler callbacks out.
// Untrusted input: the remote server's bytes (passed to smtp::client and OpenSSL, never parsed here).
#include "delivery/smtp_connection.h"

#include "smtp/data_segments.h"

namespace sluice::delivery {

namespace {

// RFC 3463 3.1: a reply without an enhanced code gets the default of its class, so the
// store and the DSN generator can always rely on one.
smtp::reply normalised(smtp::reply r, const std::string& loss) {
  if (r.code == 0) return {451, "4.4.2", r.text.empty() ? loss : r.text};
  if (r.enhanced.empty()) r.enhanced = r.code < 300 ? "2.0.0" : r.code < 500 ? "4.0.0" : "5.0.0";
  return r;
}

std::string phase_text(smtp::waiting_for w, bool lmtp) {
  switch (w) {
    case smtp::waiting_for::greeting: return "waiting for the greeting";
    case smtp::waiting_for::helo:
      if (lmtp) return "waiting for the reply to LHLO";
      break;
    case smtp::waiting_for::content: return "writing the message content";
    case smtp::waiting_for::bdat: return "waiting for the reply to a BDAT chunk";
    default: break;
  }
  return std::string("waiting for the reply to ") + smtp::waiting_for_name(w);
}

}  // namespace

const char* connection_end_name(connection_end e) {
  switch (e) {
    case connection_end::connect_failed: return "connect_failed";
    case connection_end::greeting_refused: return "greeting_refused";
    case connection_end::helo_refused: return "helo_refused";
    case connection_end::tls_unavailable: return "tls_unavailable";
    case connection_end::tls_failed: return "tls_failed";
    case connection_end::auth_failed: return "auth_failed";
    case connection_end::timeout: return "timeout";
    case connection_end::dropped: return "dropped";
    case connection_end::service_closing: return "service_closing";
    case connection_end::quit: return "quit";
  }
  return "?";
}

smtp_connection::smtp_connection(net::loop& l, connection_settings settings, handler& h)
    : loop_(l), settings_(std::move(settings)), h_(h), timer_(l), alive_(std::make_shared<bool>(true)) {
  using route::tls_policy;
  client_settings_.helo = settings_.helo.empty() ? "localhost" : settings_.helo;
  client_settings_.pipelining = settings_.pipelining;
  client_settings_.pipeline_next_message = settings_.pipelining;
  client_settings_.chunking = settings_.chunking;
  // Mandatory TLS without a context still asks for STARTTLS: the missing context then
  // ends the session as tls_unavailable before any MAIL, as a missing STARTTLS would.
  client_settings_.starttls = settings_.tls == tls_policy::mandatory || settings_.tls == tls_policy::partner;
  client_settings_.starttls_if_offered =
      settings_.tls == tls_policy::opportunistic && !settings_.skip_tls && settings_.tls_ctx != nullptr;
  client_settings_.auth_user = settings_.auth_user;
  client_settings_.auth_password = settings_.auth_password;
  client_settings_.auth_needs_tls = true;
  if (settings_.lmtp) {
    // The mailbox server is on this host (a Unix socket or loopback): nothing to secure,
    // nobody to authenticate to.
    client_settings_.lmtp = true;
    client_settings_.starttls = client_settings_.starttls_if_offered = false;
    client_settings_.auth_user.clear();
    client_settings_.auth_password.clear();
  }
}

smtp_connection::~smtp_connection() {
  *alive_ = false;
  finished_ = true;
  // Closing drops borrowed body writes still queued: the caller frees the body once we
  // are gone.
  if (stream_) stream_->close();
}

void smtp_connection::start(const net::endpoint& to, std::string remote_name) {
  if (started_) return;
  started_ = true;
  peer_ = to;
  remote_name_ = std::move(remote_name);
  open([this, &to](connected_fn done) { stream::byte_stream::connect(loop_, to, std::move(done)); });
}

void smtp_connection::start_unix(const std::string& path, std::string remote_name) {
  if (started_) return;
  started_ = true;
  unix_path_ = path;
  remote_name_ = std::move(remote_name);
  open([this, &path](connected_fn done) {
    net::connect_unix(loop_, path, [done = std::move(done)](std::unique_ptr<net::connection> c, int status) {
      if (!c) return done(nullptr, "connect: " + net::status_text(status));
      done(std::make_unique<stream::byte_stream>(std::move(c)), {});
    });
  });
}

void smtp_connection::open(const std::function<void(connected_fn)>& connect) {
  timer_.start(settings_.timeouts.connect_ms, 0, [this] {
    finish(connection_end::connect_failed, {0, "", ""},
           "connect to " + remote_mta() + ": timed out after " + std::to_string(settings_.timeouts.connect_ms) +
               " ms");
  });
  // The callback may come after this connection is gone (or has given up): it then only
  // drops the stream it is handed.
  std::weak_ptr<bool> alive = alive_;
  auto in_start = std::make_shared<bool>(true);
  connect([this, alive, in_start](std::unique_ptr<stream::byte_stream> s, std::string_view e) {
    auto a = alive.lock();
    if (!a || !*a) return;
    if (!*in_start) return on_connected(std::move(s), e);
    // Refused before any I/O (a bad address): still report it on a later turn, as
    // documented, not inside start().
    std::string error(e);
    timer_.start(0, 0, [this, error] { on_connected(nullptr, error); });
  });
  *in_start = false;
}

void smtp_connection::on_connected(std::unique_ptr<stream::byte_stream> s, std::string_view error) {
  if (finished_) return;
  if (!s) {
    if (error.starts_with("connect: ")) error.remove_prefix(9);
    return finish(connection_end::connect_failed, {0, "", ""},
                  "connect to " + remote_mta() + ": " + std::string(error));
  }
  stream_ = std::move(s);
  client_.emplace(client_settings_);
  stream_->start(*this);
  rearm_timer();
}

void smtp_connection::on_input(std::string_view plaintext) {
  if (finished_ || !client_) return;
  client_->feed(plaintext);
  pump();
}

void smtp_connection::on_end(stream::end_reason why, std::string_view detail) {
  if (finished_) return;
  std::string where = remote_mta() + ": ";
  if (tls_started_ && !stream_->secured())
    return finish(connection_end::tls_failed, {0, "", ""}, "TLS handshake with " + where + std::string(detail));
  // A peer that hangs up on our QUIT without its 221 has still ended the session.
  if (client_ && client_->waiting() == smtp::waiting_for::quit)
    return finish(connection_end::quit, {0, "", ""}, "closed after QUIT");
  std::string text = why == stream::end_reason::tls_failed ? "TLS: " + std::string(detail) : std::string(detail);
  finish(connection_end::dropped, {0, "", ""}, "connection lost: " + where + text);
}

void smtp_connection::on_secured() {
  if (finished_) return;
  const tls::session* t = stream_->tls();
  bool verified = t->peer_verified();
  tls_summary_ = t->version() + " " + t->cipher() + (verified ? " verified" : " unverified");
  if (settings_.tls == route::tls_policy::partner && !verified)
    finish(connection_end::tls_failed, {0, "", ""},
           "TLS with " + remote_mta() + ": certificate not verified for " + settings_.tls_name + ": " +
               t->verify_result());
}

void smtp_connection::on_writable() {
  if (finished_ || writing_ == nullptr) return;
  timer_.start(settings_.timeouts.data_block_ms, 0, [this] { on_timeout(); });
  write_body();
  if (!finished_ && writing_ == nullptr) pump();
}

// Drains the client's events, calling the handler; the handler may call send(), quit()
// or abort() from its callbacks (and destroy us from on_closed).
void smtp_connection::pump() {
  if (pumping_ || finished_) return;
  pumping_ = true;
  std::shared_ptr<bool> alive = alive_;
  smtp::client_event ev;
  while (!finished_ && client_->next_event(ev)) {
    handle(ev);
    if (!*alive) return;
  }
  pumping_ = false;
  if (finished_) return;
  flush();
  rearm_timer();
}

void smtp_connection::handle(smtp::client_event& ev) {
  using kind = smtp::client_event::kind;
  switch (ev.what) {
    case kind::ready:
      ready_ = was_ready_ = true;
      h_.on_ready(*this);
      return;
    case kind::message_done:
      message_done(std::move(ev.result), "connection to " + remote_mta() + " lost");
      return;
    case kind::need_tls:
      flush();
      begin_tls();
      return;
    case kind::content_due:
      for (auto& s : slots_)
        if (&s->out == ev.message) writing_ = s.get();
      if (writing_ == nullptr) {
        return finish(connection_end::dropped, {0, "", ""}, "internal error: content due for an unknown message");
      }
      flush();  // DATA (or "BDAT n") and everything before it precede the content
      writing_->segments.clear();
      if (ev.bdat)  // the chunk's octets as the client planned them
        writing_->segments = std::move(ev.segments);
      else
        smtp::data_segments(writing_->out.chunks, writing_->segments);
      next_segment_ = 0;
      timer_.start(settings_.timeouts.data_block_ms, 0, [this] { on_timeout(); });
      armed_for_ = smtp::waiting_for::content;
      write_body();
      return;
    case kind::closed: {
      connection_end why = end_for(ev);
      std::string detail = ev.why.code != 0 ? remote_mta() + " said: " + std::to_string(ev.why.code) + " " + ev.why.text
                                            : remote_mta() + ": " + ev.why.text;
      return finish(why, ev.why.code != 0 ? ev.why : smtp::reply{0, "", ""}, std::move(detail));
    }
    case kind::protocol_error:
      return finish(connection_end::dropped, {0, "", ""}, "protocol error from " + remote_mta() + ": " + ev.detail);
  }
}

connection_end smtp_connection::end_for(const smtp::client_event& ev) const {
  using smtp::waiting_for;
  if (ev.at == waiting_for::quit || ev.why.code == 221) return connection_end::quit;
  if (ev.at == waiting_for::greeting) return connection_end::greeting_refused;
  if (ev.why.code == 421) return connection_end::service_closing;
  if (ev.at == waiting_for::helo) return connection_end::helo_refused;
  if (ev.at == waiting_for::starttls) return connection_end::tls_unavailable;
  if (ev.at == waiting_for::auth) return connection_end::auth_failed;
  return connection_end::dropped;
}

void smtp_connection::flush() {
  if (!stream_ || !client_) return;
  std::string& out = client_->mutable_output();
  if (out.empty()) return;
  stream_->send(std::move(out));
  out.clear();
}

void smtp_connection::begin_tls() {
  if (!settings_.tls_ctx)
    return finish(connection_end::tls_unavailable, {0, "", ""}, "TLS required but no client TLS context");
  tls_started_ = true;
  stream_->start_tls(settings_.tls_ctx, settings_.tls_name);
  if (stream_->tls()->failed())
    return finish(connection_end::tls_failed, {0, "", ""},
                  "TLS with " + remote_mta() + ": " + stream_->tls()->error_text());
  client_->tls_started();  // the EHLO waits in the TLS session until the handshake is done
}

// Writes segments while the socket takes them; back-pressure pauses until on_writable.
// The stream counts what it sent without a copy; that is what body_bytes_borrowed reports.
void smtp_connection::write_body() {
  slot* s = writing_;
  // Up to 64 segments or 256 KiB per write: one writev for a small message, and the
  // back-pressure check between blocks of a large one.
  constexpr std::size_t max_pieces = 64, max_block = 256 * 1024;
  while (next_segment_ < s->segments.size()) {
    if (stream_->output_blocked()) return;
    const std::size_t first = next_segment_;
    std::size_t bytes = 0;
    while (next_segment_ < s->segments.size() && next_segment_ - first < max_pieces && bytes < max_block)
      bytes += s->segments[next_segment_++].size();
    uint64_t before = stream_->stats().borrowed;
    stream_->send_borrowed(std::span<const std::string_view>(s->segments).subspan(first, next_segment_ - first));
    body_borrowed_ += stream_->stats().borrowed - before;
  }
  writing_ = nullptr;
  client_->content_written();
}

void smtp_connection::rearm_timer() {
  if (finished_ || !client_) return;
  smtp::waiting_for w = client_->waiting();
  if (w == armed_for_ && client_->replies_seen() == armed_replies_) return;  // the same wait goes on
  armed_for_ = w;
  armed_replies_ = client_->replies_seen();
  if (w == smtp::waiting_for::none) return timer_.stop();
  if (w == smtp::waiting_for::content) return;  // armed per block by the body writer
  timer_.start(timeout_for(w), 0, [this] { on_timeout(); });
}

uint32_t smtp_connection::timeout_for(smtp::waiting_for w) const {
  const connection_timeouts& t = settings_.timeouts;
  switch (w) {
    case smtp::waiting_for::greeting: return t.greeting_ms;
    case smtp::waiting_for::helo: return t.helo_ms;
    case smtp::waiting_for::starttls: return t.starttls_ms;
    case smtp::waiting_for::auth: return t.auth_ms;
    case smtp::waiting_for::mail: return t.mail_ms;
    case smtp::waiting_for::rcpt: return t.rcpt_ms;
    case smtp::waiting_for::data: return t.data_ms;
    case smtp::waiting_for::content:
    case smtp::waiting_for::bdat: return t.data_block_ms;
    case smtp::waiting_for::final_dot: return t.final_dot_ms;
    case smtp::waiting_for::rset: return t.rset_ms;
    case smtp::waiting_for::quit: return t.quit_ms;
    case smtp::waiting_for::none: break;
  }
  return t.greeting_ms;
}

void smtp_connection::on_timeout() {
  if (finished_) return;
  smtp::waiting_for w = armed_for_;
  std::string detail = "timeout after " + std::to_string(timeout_for(w)) + " ms " + phase_text(w, settings_.lmtp) +
                       " from " + remote_mta();
  // No 221 to our QUIT is no failure: the session was over anyway.
  finish(w == smtp::waiting_for::quit ? connection_end::quit : connection_end::timeout, {0, "", ""},
         std::move(detail));
}

void smtp_connection::message_done(smtp::message_result&& r, const std::string& loss) {
  if (slots_.empty()) return;
  std::unique_ptr<slot> s = std::move(slots_.front());
  slots_.pop_front();
  std::vector<smtp::reply> replies;
  replies.reserve(s->out.recipients.size());
  for (size_t i = 0; i < s->out.recipients.size(); ++i)
    replies.push_back(normalised(i < r.recipients.size() ? std::move(r.recipients[i]) : r.final, loss));
  h_.on_message_done(*this, std::move(replies));
}

void smtp_connection::finish(connection_end why, smtp::reply reply, std::string detail) {
  if (finished_) return;
  finished_ = true;
  ready_ = false;
  writing_ = nullptr;
  timer_.stop();
  if (stream_) {
    flush();  // a QUIT the client queued on its way out
    stream_->close();
  }
  std::shared_ptr<bool> alive = alive_;
  // LMTP: each reply after the dot is final for its recipient (a 250 was delivered to the
  // mailbox), so an end between two of them keeps those that came and loses only the rest;
  // the client knows which. (SMTP's single reply to the dot leaves nothing to keep.)
  if (settings_.lmtp && client_ && !client_->is_closed()) {
    client_->connection_lost(detail);
    smtp::client_event ev;
    while (!slots_.empty() && client_->next_event(ev)) {
      if (ev.what != smtp::client_event::kind::message_done) continue;
      message_done(std::move(ev.result), detail);
      if (!*alive) return;
    }
  }
  // Messages still in flight: the connection ended under them.
  const smtp::reply loss{451, "4.4.2", detail};
  while (!slots_.empty()) {
    std::unique_ptr<slot> s = std::move(slots_.front());
    slots_.pop_front();
    h_.on_message_done(*this, std::vector<smtp::reply>(s->out.recipients.size(), loss));
    if (!*alive) return;
  }
  connection_failure f;
  f.why = why;
  f.reply = std::move(reply);
  f.detail = std::move(detail);
  f.was_ready = was_ready_;
  h_.on_closed(*this, f);
}

void smtp_connection::send(const outbound_message& m) {
  if (finished_ || !ready_ || !client_) {
    // A caller's mistake, but the message still gets its one answer (at once).
    h_.on_message_done(*this, std::vector<smtp::reply>(m.recipients.size(),
                                                        smtp::reply{451, "4.3.0", "connection not ready for a message"}));
    return;
  }
  ready_ = false;
  auto s = std::make_unique<slot>();
  smtp::outgoing_message& out = s->out;
  out.mail_from = m.mail_from;
  out.recipients = m.recipients;
  out.chunks = m.body;
  out.chunked_content = true;
  out.eight_bit = m.eight_bit;
  out.smtputf8 = m.smtputf8;
  out.binary = m.binary;
  out.dsn_mail_params = m.dsn_mail_params;
  out.dsn_rcpt_params = m.dsn_rcpt_params;
  slots_.push_back(std::move(s));
  ++messages_sent_;
  client_->send(slots_.back()->out);
  if (pumping_) return;  // the pump in progress drains the events and flushes
  pump();
}

void smtp_connection::quit() {
  if (finished_) return;
  if (!client_) return finish(connection_end::quit, {0, "", ""}, "quit before the session started");
  ready_ = false;
  client_->quit();
  if (pumping_) return;
  flush();
  rearm_timer();
}

void smtp_connection::abort() { finish(connection_end::quit, {0, "", ""}, "connection to " + remote_mta() + " aborted"); }

bool smtp_connection::ready() const { return ready_ && !finished_; }

const smtp::capabilities& smtp_connection::caps() const {
  static const smtp::capabilities none;
  return client_ ? client_->caps() : none;
}

std::string smtp_connection::remote_mta() const {
  if (!unix_path_.empty()) return "unix:" + unix_path_;
  if (remote_name_.empty()) return peer_.text();
  std::string host = peer_.host();
  return remote_name_ + "[" + host + "]:" + std::to_string(peer_.port());
}

std::string smtp_connection::tls_summary() const { return tls_summary_; }
uint64_t smtp_connection::messages_sent() const { return messages_sent_; }
uint64_t smtp_connection::body_bytes_borrowed() const { return body_borrowed_; }
smtp::waiting_for smtp_connection::waiting() const {
  return client_ && !finished_ ? client_->waiting() : smtp::waiting_for::none;
}
stream::byte_stream::send_stats smtp_connection::stream_stats() const {
  return stream_ ? stream_->stats() : stream::byte_stream::send_stats{};
}

}  // namespace sluice::delivery
