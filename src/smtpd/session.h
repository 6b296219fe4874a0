// session.h: one inbound SMTP session: a connection, the server state machine and its connector's policy.
// Untrusted input: everything the remote client sends.
#pragma once
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "base/queue_id.h"
#include "log/protocol_log.h"
#include "log/tracking_log.h"
#include "net/connection.h"
#include "smtp/server.h"
#include "smtpd/in_flight_budget.h"
#include "smtpd/policy.h"
#include "stream/stream.h"

namespace sluice::auth {
class failure_limiter;
}

namespace sluice::store {
struct submit_request;
}

namespace sluice::smtpd {

class session;

// Whoever handed a request to the store and wants it back (a session, the pickup
// directory). The store's `user` pointer of each request points to one of these.
class submit_client {
 public:
  virtual ~submit_client() = default;
  virtual void submitted(store::submit_request* request) = 0;
};

// The worker loop's services, as a session sees them. Everything runs on the worker's
// loop thread; nothing here is shared with another loop.
class session_host {
 public:
  virtual ~session_host() = default;
  virtual net::loop& event_loop() = 0;
  virtual base::queue_id next_queue_id() = 0;
  // Hands a complete message to the submission queue. The request stays owned by the
  // session; the host calls session::submitted() when the store is done with it.
  // False when the queue cannot take it now (its ring is full).
  virtual bool submit(store::submit_request* request) = 0;
  // `declared_size` is MAIL FROM's SIZE=, 0 when not given.
  virtual smtp::reply check_recipient(const connector_policy& policy, bool authenticated,
                                      const smtp::recipient& rcpt, uint64_t declared_size) = 0;
  // Buffers one protocol log line for the policy's log file (written in batches).
  virtual void log_protocol(const connector_policy& policy, uint64_t session, uint32_t sequence,
                            std::string_view local, std::string_view remote, log::event kind,
                            std::string_view data) = 0;
  // Buffers one message tracking log line (written in batches, like the protocol log).
  virtual void track(const log::tracking_record& record) = 0;
  // The AUTH failure limiter of this loop for the session's connector.
  virtual auth::failure_limiter& auth_limiter(const connector_policy& policy) = 0;
  // The session is finished and may be destroyed once the current callback returns.
  virtual void retire(session* s) = 0;
  // RFC 5321 4.5.1: what <postmaster> without a domain stands for, "postmaster@" and the
  // first authoritative accepted domain; "" when there is none (it is then left as it came).
  virtual std::string postmaster_address() { return {}; }
  // The daemon-wide budget for message bytes held in memory; it outlives every session.
  // Null: no limit (tools and tests that do not exercise it).
  virtual in_flight_budget* content_budget() { return nullptr; }
};

class session final : public stream::stream_handler, public smtp::server_delegate, public submit_client {
 public:
  // `policy` null: no receive connector covers the peer; the session refuses with 554.
  session(session_host& host, std::unique_ptr<net::connection> conn,
          std::shared_ptr<const connector_policy> policy, uint64_t id);
  ~session() override;
  session(const session&) = delete;
  session& operator=(const session&) = delete;

  void start();
  // Called by the host when the store has finished with this session's request.
  void submitted(store::submit_request* request) override;
  // Graceful shutdown of the daemon: no more commands are read or executed. A message
  // already in the store gets its reply, then 421; any other session gets 421 now.
  void shutdown();
  // The daemon is draining: a transaction under way may finish (its reply, then 421); a
  // session between transactions gets 421 now. shutdown() later cuts it at the deadline.
  void drain();
  uint64_t id() const { return id_; }
  const std::string& connector_name() const;

  // stream::stream_handler
  void on_input(std::string_view plaintext) override;
  void on_end(stream::end_reason why, std::string_view detail) override;
  void on_secured() override;

  // smtp::server_delegate
  smtp::reply check_recipient(const smtp::envelope& env, const smtp::recipient& rcpt) override;
  smtp::reply check_mail(const smtp::envelope& env) override;
  void submit(smtp::envelope& env, std::string& body) override;
  std::string begin_content(const smtp::envelope& env) override;
  bool reserve_content(size_t bytes) override { return content_claim_.grow(bytes); }
  void content_released() override;
  void start_tls() override;
  smtp::reply check_auth(std::string_view mechanism, std::string_view authzid, std::string_view user,
                         std::string_view password) override;
  void on_command(std::string_view line) override;
  void on_reply(std::string_view text) override;

 private:
  void flush();
  void begin_tls();
  void finish();
  void arm_timer();
  void log_event(log::event kind, std::string_view data);
  // The store is done with request_'s body (or never got it): free it and its budget.
  void release_body();
  void track_receive(const store::submit_request& request, const std::string& id);
  std::string received_header(const smtp::envelope& env, const base::queue_id& id) const;

  session_host& host_;
  stream::byte_stream stream_;  // plaintext until STARTTLS, then TLS; owns the back-pressure
  std::shared_ptr<const connector_policy> policy_;
  // This session's copy: AUTH is advertised per session (after TLS, or to loopback).
  smtp::server_settings settings_;
  smtp::server server_;
  bool tls_pending_ = false;           // STARTTLS accepted; the handshake starts after the 220 is out
  bool peer_loopback_ = false;
  // Expires with the session: threadpool work (password checks) tests it before
  // touching the session again.
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  std::unique_ptr<store::submit_request> request_;  // reused for every message of the session
  // The bytes of the message being received, then of request_->body until the store is
  // done with it; given back at the latest when the session is destroyed.
  budget_claim content_claim_;
  base::queue_id content_id_;  // chosen at DATA/BDAT for the Received: line, used at submit
  size_t trace_size_ = 0;      // that line's length at the front of the body
  net::timer idle_timer_;
  // The command awaited must be complete by then: each reply sets it, bytes that leave
  // the line incomplete do not move it (a client trickling a byte a second).
  std::chrono::steady_clock::time_point command_deadline_{};
  // Content under way (DATA, or BDAT up to LAST) must be complete by then, however
  // steadily its bytes trickle in; unset outside content.
  std::optional<std::chrono::steady_clock::time_point> content_deadline_;
  bool replied_ = false;  // a reply was queued since the timer was last armed
  uint64_t id_;
  uint32_t log_sequence_ = 0;
  std::chrono::steady_clock::time_point started_at_ = std::chrono::steady_clock::now();
  std::string local_text_, peer_text_, peer_host_;
  bool submit_in_flight_ = false;
  bool draining_ = false;  // drain(): 421 as soon as no transaction is open
  bool finished_ = false;
};

}  // namespace sluice::smtpd
