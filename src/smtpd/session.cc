// session.cc: drives smtp::server over a libuv connection, submits to the store, logs the protocol.
// Untrusted input: client bytes (passed to the state machine), client HELO and addresses
// (quoted into Received: and the protocol log).
#include "smtpd/session.h"

#include <algorithm>
#include <chrono>

#include "auth/credentials.h"
#include "auth/limiter.h"
#include "base/clock.h"
#include "metrics/daemon.h"
#include "smtp/header.h"
#include "store/store.h"

namespace sluice::smtpd {

namespace {

int64_t now_ms() {
  using namespace std::chrono;
  return static_cast<int64_t>(duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count());
}

// True when the header section is longer than `limit` bytes (0: no limit). It ends at the
// empty line, or, as Postfix reads a body nobody separated from its headers, at the first
// line that is neither a field ("name:") nor the fold of one; a body-less message is all
// header. Looks at limit + 2 bytes at most (room for the empty line), however long the message.
bool header_section_exceeds(std::string_view content, uint64_t limit) {
  if (limit == 0 || content.size() <= limit) return false;
  const std::string_view head = content.substr(0, limit + 2);
  for (size_t pos = 0; pos < head.size();) {
    if (pos > limit) return true;
    const char first = head[pos];
    if (first == '\r' || first == '\n') return false;
    if (first == ' ' || first == '\t') {
      if (pos == 0) return false;  // a fold of nothing: no header section at all
    } else {
      // field-name = 1*(printable US-ASCII except ":"), then the colon (RFC 5322 3.6.8).
      size_t name_end = pos;
      auto name_char = [&](char c) { return c > ' ' && c < 0x7f && c != ':'; };
      while (name_end < head.size() && name_char(head[name_end])) ++name_end;
      if (name_end == pos || name_end == head.size() || head[name_end] != ':') return false;  // the body begins
    }
    const size_t lf = head.find('\n', pos);
    if (lf == std::string_view::npos) return true;  // a field running past the limit
    pos = lf + 1;
  }
  return true;
}

}  // namespace

session::session(session_host& host, std::unique_ptr<net::connection> conn,
                 std::shared_ptr<const connector_policy> policy, uint64_t id)
    : host_(host),
      stream_(std::move(conn)),
      policy_(std::move(policy)),
      settings_(policy_ ? policy_->smtp : smtp::server_settings{}),
      server_(settings_, *this),
      request_(std::make_unique<store::submit_request>()),
      content_claim_(host.content_budget()),
      idle_timer_(host.event_loop()),
      id_(id) {
  local_text_ = stream_.local().text();
  peer_text_ = stream_.peer().text();
  peer_host_ = stream_.peer().host();
  peer_loopback_ = peer_host_.rfind("127.", 0) == 0 || peer_host_ == "::1";
  if (policy_) {
    settings_.starttls_offered = policy_->tls != nullptr && policy_->smtp.starttls_offered;
    // AUTH in plaintext would expose the password: only under TLS, or to loopback if allowed.
    settings_.auth_offered = policy_->credentials != nullptr && peer_loopback_ && policy_->auth_plaintext_on_loopback;
  }
}

session::~session() = default;

const std::string& session::connector_name() const {
  static const std::string none = "(none)";
  return policy_ ? policy_->name : none;
}

void session::start() {
  log_event(log::event::connect, "");
  stream_.start(*this);
  if (!policy_) {
    log_event(log::event::info, "no receive connector covers " + peer_host_);
    server_.refuse("Connection refused: no receive connector accepts this address");
  } else {
    server_.greet();
  }
  flush();
}

void session::arm_timer() {
  using std::chrono::milliseconds;
  if (submit_in_flight_) {
    // The store is slow, not the client: wait for it rather than drop an acknowledged
    // transaction's reply (which then restarts the command deadline).
    idle_timer_.start(policy_->command_timeout_ms, 0, [this] { arm_timer(); });
    return;
  }
  const auto now = std::chrono::steady_clock::now();
  auto until = [now](std::chrono::steady_clock::time_point t) {
    return static_cast<uint32_t>(std::max<int64_t>(std::chrono::duration_cast<milliseconds>(t - now).count(), 0));
  };
  uint32_t ms = 30000;
  bool content_limit = false;
  if (policy_ && server_.receiving_content()) {
    // Any byte of content is progress (data_s bounds silence), but the content as a
    // whole has its own bound: a trickle of a byte a second would otherwise never end.
    // begin_content() starts it; a refused BDAT chunk skipped without one starts it here.
    if (!content_deadline_) content_deadline_ = now + milliseconds(policy_->content_timeout_ms);
    ms = policy_->data_timeout_ms;
    if (until(*content_deadline_) < ms) {
      ms = until(*content_deadline_);
      content_limit = true;
    }
  } else if (policy_) {
    content_deadline_.reset();
    // Only a reply (every complete command line gets one) restarts the wait for a command.
    if (replied_) command_deadline_ = now + milliseconds(policy_->command_timeout_ms);
    ms = until(command_deadline_);
  }
  replied_ = false;
  idle_timer_.start(ms, 0, [this, content_limit] {
    log_event(log::event::info, content_limit ? "timeout: message content not complete in time" : "timeout");
    server_.timeout();
    flush();
  });
}

void session::on_input(std::string_view data) {
  if (finished_) return;
  if (policy_ && started_at_ + std::chrono::milliseconds(policy_->connection_timeout_ms) < std::chrono::steady_clock::now() &&
      !submit_in_flight_) {
    // A session may not live forever, however busy: it would pin its connector slot.
    log_event(log::event::info, "connection time limit reached");
    stream_.send("421 4.4.2 " + policy_->smtp.hostname + " Error: connection time limit exceeded\r\n");
    finish();
    return;
  }
  server_.feed(data);
  flush();
}

void session::on_secured() {
  const tls::session& tls = *stream_.tls();
  std::string info = "TLS negotiated: " + tls.summary();
  std::string subject = tls.peer_subject();
  if (!subject.empty())
    info += " client certificate: " + subject + " (" + (tls.peer_verified() ? "verified" : tls.verify_result()) + ")";
  log_event(log::event::info, info);
}

void session::start_tls() {
  // Called from inside server_.feed(): the 220 is queued but not yet written, so the
  // handshake begins in flush(), once the 220 has gone out in plaintext.
  tls_pending_ = true;
}

void session::begin_tls() {
  tls_pending_ = false;
  stream_.start_tls(policy_->tls);
  // AUTH becomes available under TLS; the state machine reads settings_ on every EHLO.
  settings_.auth_offered = policy_->credentials != nullptr;
  // Drops any plaintext pipelined after STARTTLS (RFC 3207, CVE-2011-0411) and resets.
  server_.tls_started();
}

smtp::reply session::check_auth(std::string_view mechanism, std::string_view authzid, std::string_view user,
                                std::string_view password) {
  (void)mechanism;
  auto& limiter = host_.auth_limiter(*policy_);
  std::string source = auth::failure_limiter::source_key(peer_host_);
  if (limiter.blocked(source)) {
    log_event(log::event::info, "AUTH refused: too many failures from " + source);
    return {454, "4.7.0", "Too many authentication failures, try again later"};
  }
  if (!authzid.empty() && authzid != user) {
    limiter.record_failure(source);
    return {535, "5.7.8", "Authentication credentials invalid"};
  }
  if (!policy_->credentials) return {535, "5.7.8", "Authentication credentials invalid"};
  // A password hash costs tens of milliseconds of CPU: run it on the threadpool so the
  // loop's other sessions are not stalled, and answer through auth_done().
  auto verdict = std::make_shared<bool>(false);
  std::weak_ptr<bool> alive = alive_;
  net::queue_work(
      host_.event_loop(),
      [creds = policy_->credentials, u = std::string(user), pw = std::string(password), verdict] {
        *verdict = creds->verify(u, pw);
      },
      [this, alive, verdict, u = std::string(user), source] {
        if (alive.expired() || finished_) return;
        stream_.release_input();
        auto& lim = host_.auth_limiter(*policy_);
        if (*verdict) {
          lim.record_success(source);
          log_event(log::event::info, "AUTH succeeded for " + u);
          server_.auth_done({235, "2.7.0", "Authentication successful"});
        } else {
          lim.record_failure(source);
          log_event(log::event::info, "AUTH failed for " + u);
          server_.auth_done({535, "5.7.8", "Authentication credentials invalid"});
        }
        flush();
      });
  // Like a pending submit: pipelined input waits in the kernel, not in our buffers.
  stream_.hold_input();
  return {0, "", ""};
}

void session::on_end(stream::end_reason why, std::string_view detail) {
  switch (why) {
    case stream::end_reason::peer_closed:
      log_event(log::event::info, "client disconnected");
      break;
    case stream::end_reason::tls_failed:
      log_event(log::event::info, "TLS failed: " + std::string(detail));
      break;
    case stream::end_reason::tls_closed:
      break;
  }
  finish();
}

void session::flush() {
  if (finished_) return;
  // Draining and the transaction has ended (its reply is queued): the 421 follows it.
  if (draining_ && !server_.in_transaction()) {
    draining_ = false;
    server_.shut_down();
  }
  // Moved, not copied: in plaintext this very string is what the socket write sends.
  if (!server_.output().empty()) stream_.send(server_.take_output());
  if (tls_pending_) begin_tls();
  if (server_.closing()) {
    finish();
    return;
  }
  // Re-armed after every exchange, with the data timeout while content is expected.
  arm_timer();
}

void session::finish() {
  if (finished_) return;
  finished_ = true;
  idle_timer_.stop();
  stream_.close();
  log_event(log::event::disconnect, "");
  // A request the store still holds must outlive this session object's use of it:
  // retire only once submitted() has run.
  if (!submit_in_flight_) host_.retire(this);
}

void session::shutdown() {
  if (finished_) return;
  // With a submit in flight the 421 follows its reply (submitted() flushes it); pipelined
  // commands behind it are dropped, so a client that never stops sending cannot hold
  // the drain open.
  server_.shut_down();
  flush();
}

void session::drain() {
  if (finished_) return;
  draining_ = true;
  flush();
}

smtp::reply session::check_mail(const smtp::envelope& env) {
  (void)env;
  if (policy_ && !policy_->anonymous_submit && !server_.authenticated())
    return {530, "5.7.1", "Client was not authenticated"};
  return {250, "2.1.0", "Sender OK"};
}

smtp::reply session::check_recipient(const smtp::envelope& env, const smtp::recipient& rcpt) {
  return host_.check_recipient(*policy_, server_.authenticated(), rcpt, env.declared_size.value_or(0));
}

std::string session::received_header(const smtp::envelope& env, const base::queue_id& id) const {
  std::string protocol = env.esmtp ? "ESMTP" : "SMTP";
  if (server_.tls_active()) protocol += "S";
  if (server_.authenticated()) protocol += "A";
  if (env.smtputf8) protocol = "UTF8" + protocol;
  std::string id_text = id.text(), date = base::rfc5322_now(), tls_summary, tls_subject;
  smtp::received_fields f;
  f.from_helo = env.helo;
  f.from_address = peer_host_;
  f.by_host = policy_->smtp.hostname;
  f.with = protocol;
  if (stream_.secured()) {
    tls_summary = stream_.tls()->summary();
    tls_subject = stream_.tls()->peer_subject();
    f.tls_summary = tls_summary;
    f.tls_peer_subject = tls_subject;
    f.tls_peer_verified = stream_.tls()->peer_verified();
  }
  f.id = id_text;
  if (env.recipients.size() == 1) f.for_recipient = env.recipients.front().address;
  f.date = date;
  return smtp::received_header(f);
}

std::string session::begin_content(const smtp::envelope& env) {
  // Like Postfix, the Received: line is written when content starts (its id and date
  // are those of DATA), so it is the body's first bytes and nothing slides it in later.
  content_id_ = host_.next_queue_id();
  content_deadline_ = std::chrono::steady_clock::now() + std::chrono::milliseconds(policy_->content_timeout_ms);
  std::string header = received_header(env, content_id_);
  trace_size_ = header.size();
  return header;
}

void session::release_body() {
  std::string().swap(request_->body);  // clear() would keep the capacity
  content_claim_.release();
}

void session::content_released() {
  // After submit() the body lives in request_ until submitted(), which gives it back.
  if (!submit_in_flight_) content_claim_.release();
}

void session::submit(smtp::envelope& env, std::string& body) {
  // Our own Received: line is not the client's hop count.
  std::string_view client_content = std::string_view(body).substr(std::min(trace_size_, body.size()));
  if (header_section_exceeds(client_content, policy_->max_header_size)) {
    log_event(log::event::info, "header section larger than " + std::to_string(policy_->max_header_size) + " bytes");
    server_.submit_done({552, "5.3.4", "Header size exceeds fixed maximum size"});
    return;
  }
  if (smtp::hop_limit_reached(client_content, policy_->max_received_headers)) {
    log_event(log::event::info, "mail loop: too many Received: headers");
    server_.submit_done({554, "5.4.6", "Hop count exceeded - possible mail loop"});
    return;
  }
  // <postmaster> is the one recipient the parser lets through without a domain: it is
  // ours, and routed as it stands it would fail (5.1.3) with a DSN to a sender anyone
  // may forge.
  for (smtp::recipient& r : env.recipients)
    if (r.address.find('@') == std::string::npos)
      if (std::string ours = host_.postmaster_address(); !ours.empty()) r.address = std::move(ours);
  store::submit_request& req = *request_;
  req.id = content_id_;
  req.envelope = std::move(env);
  // Moved, not copied: the Received: line is already at its front.
  req.body = std::move(body);
  req.connector = policy_->name;
  req.client_address = peer_host_;
  req.client_helo = req.envelope.helo;
  req.auth_user = server_.auth_user();
  req.received_at_ms = now_ms();
  req.user = static_cast<submit_client*>(this);
  if (!host_.submit(&req)) {
    release_body();
    server_.submit_done({451, "4.3.0", "Queue busy, try again later"});
    flush();
    return;
  }
  submit_in_flight_ = true;
  // No more input until the store answers: pipelined commands wait in the kernel buffer.
  stream_.hold_input();
}

void session::submitted(store::submit_request* request) {
  submit_in_flight_ = false;
  if (finished_) {
    // The client went away before its 250: the message is queued regardless (a duplicate
    // on its retry is allowed, a loss is not).
    release_body();
    host_.retire(this);
    return;
  }
  smtp::reply r;
  switch (request->result) {
    case store::submit_status::ok: {
      std::string id = request->id.text();
      r = {250, "2.6.0", "<" + id + "> Queued mail for delivery"};
      log_event(log::event::info, "queued " + id);
      track_receive(*request, id);
      metrics::daemon().messages_received.with({policy_->name}).inc();
      break;
    }
    case store::submit_status::storage_full:
      r = {452, "4.3.1", "Insufficient system storage"};
      break;
    case store::submit_status::too_large:
      r = {552, "5.3.4", "Message too big for the queue"};
      break;
    default:
      r = {451, "4.3.0", "Temporary failure writing the queue"};
      break;
  }
  release_body();
  stream_.release_input();
  // Draining: commands pipelined behind this message must not open another transaction.
  if (draining_) {
    draining_ = false;
    server_.shut_down();
  }
  server_.submit_done(r);
  flush();
}

void session::track_receive(const store::submit_request& request, const std::string& id) {
  std::vector<std::string_view> rcpts;
  rcpts.reserve(request.envelope.recipients.size());
  for (const auto& r : request.envelope.recipients) rcpts.push_back(r.address);
  std::string detail = "client=" + peer_host_ + " helo=" + request.client_helo + " size=" +
                       std::to_string(request.body.size());
  if (stream_.secured()) {
    detail += " tls=" + stream_.tls()->version();
    if (stream_.tls()->peer_verified()) detail += " client_cert=" + stream_.tls()->peer_subject();
  }
  if (!request.auth_user.empty()) detail += " auth=" + request.auth_user;
  host_.track({log::tracking_event::receive, id, request.envelope.mail_from, rcpts, policy_->name, detail});
}

void session::on_command(std::string_view line) { log_event(log::event::received, line); }

void session::on_reply(std::string_view text) {
  replied_ = true;
  log_event(log::event::sent, text);
}

void session::log_event(log::event kind, std::string_view data) {
  if (!policy_ || !policy_->protocol_log) return;
  host_.log_protocol(*policy_, id_, log_sequence_++, local_text_,
                           peer_text_, kind, data);
}

}  // namespace sluice::smtpd
