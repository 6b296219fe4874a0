// session.cc: drives smtp::server over a libuv connection, submits to the store, logs the protocol.
// Untrusted input: client bytes (passed to the state machine), client HELO and addresses
// (quoted into Received: and the protocol log).
#include "smtpd/session.h"

#include <chrono>

#include "auth/credentials.h"
#include "auth/limiter.h"
#include "base/clock.h"
#include "store/store.h"
#include "tls/session.h"

namespace sluice::smtpd {

namespace {

int64_t now_ms() {
  using namespace std::chrono;
  return static_cast<int64_t>(duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count());
}

// Counts Received: header fields in the header block: a message that has passed through
// too many hops is looping (RFC 5321 6.3).
unsigned count_received_headers(std::string_view body) {
  unsigned count = 0;
  size_t pos = 0;
  while (pos < body.size()) {
    size_t eol = body.find("\r\n", pos);
    if (eol == std::string_view::npos || eol == pos) break;  // end of header block
    std::string_view line = body.substr(pos, eol - pos);
    if (line.size() >= 9) {
      bool match = true;
      static const char name[] = "received:";
      // Case-insensitive: setting 0x20 lower-cases letters and leaves ':' unchanged.
      for (size_t i = 0; i < 9 && match; ++i) match = (line[i] | 0x20) == name[i];
      if (match) ++count;
    }
    pos = eol + 2;
  }
  return count;
}

// HELO arguments are client-chosen text: keep only what a domain or address literal may
// hold, so they cannot inject header syntax into Received:.
std::string sanitize_helo(std::string_view helo) {
  std::string out;
  for (char c : helo.substr(0, 255)) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '-' ||
        c == '[' || c == ']' || c == ':' || c == '_')
      out.push_back(c);
  }
  return out.empty() ? "unknown" : out;
}

}  // namespace

session::session(session_host& host, std::unique_ptr<net::connection> conn,
                 std::shared_ptr<const connector_policy> policy, uint64_t id)
    : host_(host),
      conn_(std::move(conn)),
      policy_(std::move(policy)),
      settings_(policy_ ? policy_->smtp : smtp::server_settings{}),
      server_(settings_, *this),
      request_(std::make_unique<store::submit_request>()),
      idle_timer_(host.event_loop()),
      id_(id) {
  local_text_ = conn_->local().text();
  peer_text_ = conn_->peer().text();
  peer_host_ = conn_->peer().host();
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
  conn_->start_reading(this);
  if (!policy_) {
    log_event(log::event::info, "no receive connector covers " + peer_host_);
    server_.refuse("Connection refused: no receive connector accepts this address");
  } else {
    server_.greet();
  }
  flush();
}

void session::arm_timer() {
  uint32_t ms = 30000;
  if (policy_) ms = server_.receiving_content() ? policy_->data_timeout_ms : policy_->command_timeout_ms;
  idle_timer_.start(ms, 0, [this] {
    if (submit_in_flight_) {
      // The store is slow, not the client: wait for it rather than drop an acknowledged
      // transaction's reply.
      arm_timer();
      return;
    }
    log_event(log::event::info, "timeout");
    server_.timeout();
    flush();
  });
}

void session::on_read(std::string_view data) {
  if (finished_) return;
  if (policy_ && started_at_ + std::chrono::milliseconds(policy_->connection_timeout_ms) < std::chrono::steady_clock::now() &&
      !submit_in_flight_) {
    // A session may not live forever, however busy: it would pin its connector slot.
    log_event(log::event::info, "connection time limit reached");
    send_to_peer("421 4.4.2 " + policy_->smtp.hostname + " Error: connection time limit exceeded\r\n");
    finish();
    return;
  }
  if (!tls_) {
    server_.feed(data);
    flush();
    return;
  }
  tls_->feed_ciphertext(data);
  std::string plaintext;
  tls_->read_plaintext(plaintext);
  if (tls_->handshake_done() && !tls_logged_) {
    tls_logged_ = true;
    std::string info = "TLS negotiated: " + tls_->summary();
    std::string subject = tls_->peer_subject();
    if (!subject.empty())
      info += " client certificate: " + subject + " (" + (tls_->peer_verified() ? "verified" : tls_->verify_result()) + ")";
    log_event(log::event::info, info);
  }
  if (!plaintext.empty()) server_.feed(plaintext);
  if (tls_->failed()) {
    log_event(log::event::info, "TLS failed: " + tls_->error_text());
    std::string alert;
    tls_->take_ciphertext(alert);
    if (!alert.empty()) conn_->write(std::move(alert));
    finish();
    return;
  }
  if (tls_->peer_closed()) {
    finish();
    return;
  }
  flush();
}

void session::send_to_peer(std::string_view plaintext) {
  if (!tls_) {
    conn_->write(std::string(plaintext));
    return;
  }
  if (!plaintext.empty()) tls_->write_plaintext(plaintext);
  std::string cipher;
  tls_->take_ciphertext(cipher);
  if (!cipher.empty()) conn_->write(std::move(cipher));
}

void session::start_tls() {
  // Called from inside server_.feed(): the 220 is queued but not yet written, so the
  // handshake begins in flush(), once the 220 has gone out in plaintext.
  tls_pending_ = true;
}

void session::begin_tls() {
  tls_pending_ = false;
  tls_ = std::make_unique<tls::session>(policy_->tls);
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
        if (!output_blocked_ && !submit_in_flight_) conn_->resume_reading();
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
  conn_->pause_reading();
  return {0, "", ""};
}

void session::on_read_end(int status) {
  (void)status;
  log_event(log::event::info, "client disconnected");
  finish();
}

void session::on_drained() {
  if (!output_blocked_) return;
  output_blocked_ = false;
  if (!submit_in_flight_ && !finished_) conn_->resume_reading();
}

void session::flush() {
  if (finished_) return;
  if (!tls_) {
    if (!server_.output().empty()) conn_->write(server_.take_output());
  } else {
    // Encrypted into the TLS session's buffers; the handshake may have output too.
    send_to_peer(server_.output());
    server_.consume_output(server_.output().size());
  }
  if (tls_pending_) begin_tls();
  if (server_.closing()) {
    finish();
    return;
  }
  // A client that pipelines commands without reading the replies would make us queue
  // them without bound: stop reading until it has taken what we owe it.
  if (conn_->write_queue_size() > max_unread_output && !output_blocked_) {
    output_blocked_ = true;
    conn_->pause_reading();
  }
  // Re-armed after every exchange, with the data timeout while content is expected.
  arm_timer();
}

void session::finish() {
  if (finished_) return;
  finished_ = true;
  idle_timer_.stop();
  if (tls_ && !tls_->failed()) {
    tls_->close_notify();
    send_to_peer({});
  }
  conn_->close();
  log_event(log::event::disconnect, "");
  // A request the store still holds must outlive this session object's use of it:
  // retire only once submitted() has run.
  if (!submit_in_flight_) host_.retire(this);
}

void session::shutdown() {
  if (finished_ || submit_in_flight_) return;
  send_to_peer(std::string("421 4.3.2 ") + (policy_ ? policy_->smtp.hostname : "") +
               " Service shutting down, closing transmission channel\r\n");
  finish();
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
  std::string h = "Received: from ";
  h += sanitize_helo(env.helo);
  h += " ([";
  h += peer_host_;
  h += "])\r\n\tby ";
  h += policy_->smtp.hostname;
  h += " (sluice) with ";
  h += protocol;
  if (tls_ && tls_->handshake_done()) {
    h += "\r\n\t(";
    h += tls_->summary();
    h += ")";
    // As Postfix does: the client certificate's subject, for policy further on.
    if (std::string subject = tls_->peer_subject(); !subject.empty()) {
      h += "\r\n\t(client certificate \"";
      for (char c : subject) h.push_back(c == '"' || c == '\\' || c == '\r' || c == '\n' ? '_' : c);
      h += tls_->peer_verified() ? "\", verified)" : "\", not verified)";
    }
  }
  h += " id ";
  h += id.text();
  if (env.recipients.size() == 1) {
    h += "\r\n\tfor <";
    h += env.recipients.front().address;
    h += ">";
  }
  h += "; ";
  h += base::rfc5322_now();
  h += "\r\n";
  return h;
}

void session::submit(smtp::envelope& env, std::string& body) {
  if (count_received_headers(body) >= policy_->max_received_headers) {
    log_event(log::event::info, "mail loop: too many Received: headers");
    server_.submit_done({554, "5.4.6", "Hop count exceeded - possible mail loop"});
    return;
  }
  store::submit_request& req = *request_;
  req.id = host_.next_queue_id();
  req.envelope = std::move(env);
  // The body is moved in and the Received: line slid in front of it: no second copy.
  req.body = std::move(body);
  req.body.insert(0, received_header(req.envelope, req.id));
  req.connector = policy_->name;
  req.client_address = peer_host_;
  req.client_helo = req.envelope.helo;
  req.auth_user = server_.auth_user();
  req.received_at_ms = now_ms();
  req.user = static_cast<submit_client*>(this);
  if (!host_.submit(&req)) {
    server_.submit_done({451, "4.3.0", "Queue busy, try again later"});
    flush();
    return;
  }
  submit_in_flight_ = true;
  // No more input until the store answers: pipelined commands wait in the kernel buffer.
  conn_->pause_reading();
}

void session::submitted(store::submit_request* request) {
  submit_in_flight_ = false;
  if (finished_) {
    // The client went away before its 250: the message is queued regardless (a duplicate
    // on its retry is allowed, a loss is not).
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
      break;
    }
    case store::submit_status::storage_full:
      r = {452, "4.3.1", "Insufficient system storage"};
      break;
    default:
      r = {451, "4.3.0", "Temporary failure writing the queue"};
      break;
  }
  request->body.clear();
  request->body.shrink_to_fit();
  if (!output_blocked_) conn_->resume_reading();
  server_.submit_done(r);
  flush();
}

void session::track_receive(const store::submit_request& request, const std::string& id) {
  std::vector<std::string_view> rcpts;
  rcpts.reserve(request.envelope.recipients.size());
  for (const auto& r : request.envelope.recipients) rcpts.push_back(r.address);
  std::string detail = "client=" + peer_host_ + " helo=" + request.client_helo + " size=" +
                       std::to_string(request.body.size());
  if (tls_ && tls_->handshake_done()) {
    detail += " tls=" + tls_->version();
    if (tls_->peer_verified()) detail += " client_cert=" + tls_->peer_subject();
  }
  if (!request.auth_user.empty()) detail += " auth=" + request.auth_user;
  host_.track({log::tracking_event::receive, id, request.envelope.mail_from, rcpts, policy_->name, detail});
}

void session::on_command(std::string_view line) { log_event(log::event::received, line); }

void session::on_reply(std::string_view text) { log_event(log::event::sent, text); }

void session::log_event(log::event kind, std::string_view data) {
  if (!policy_ || !policy_->protocol_log) return;
  host_.log_protocol(*policy_, id_, log_sequence_++, local_text_,
                           peer_text_, kind, data);
}

}  // namespace sluice::smtpd
