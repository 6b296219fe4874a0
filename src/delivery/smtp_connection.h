// smtp_connection.h: one outbound SMTP or LMTP connection: connect (TCP, Unix socket), EHLO/LHLO, STARTTLS, AUTH, messages, QUIT, timeouts.
// Untrusted input: everything the remote server sends (replies parsed by smtp::client, TLS by OpenSSL).
#pragma once
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "net/connection.h"
#include "net/loop.h"
#include "route/kinds.h"
#include "smtp/client.h"
#include "smtp/reply.h"
#include "stream/stream.h"
#include "tls/context.h"

namespace sluice::delivery {

// RFC 5321 4.5.3.2 defaults, all configurable. data_block_ms bounds each wait for the
// socket to take more of the body; the others bound the wait for one reply.
struct connection_timeouts {
  uint32_t connect_ms = 30'000, greeting_ms = 300'000, helo_ms = 300'000, starttls_ms = 300'000, auth_ms = 300'000,
           mail_ms = 300'000, rcpt_ms = 300'000, data_ms = 120'000, data_block_ms = 180'000,
           final_dot_ms = 600'000, rset_ms = 120'000, quit_ms = 60'000;
};

struct connection_settings {
  std::string helo;                             // EHLO argument (our host name)
  // none: never STARTTLS. opportunistic: STARTTLS if offered, certificate unverified; a
  // failed handshake ends the connection with tls_failed (the engine then retries this
  // host in plaintext with skip_tls). mandatory: STARTTLS not offered (or refused) ->
  // tls_unavailable, before any MAIL. partner: mandatory, and the chain must verify
  // against the context's CAs for the name `tls_name`, else tls_failed.
  route::tls_policy tls = route::tls_policy::opportunistic;
  // A client context (a verified policy for partner); null = no TLS (opportunistic then
  // stays plaintext; mandatory and partner end with tls_unavailable).
  std::shared_ptr<const tls::context> tls_ctx;
  std::string tls_name;                         // SNI (always sent with TLS) and the name verified for partner
  bool skip_tls = false;                        // plaintext even if offered (opportunistic only; mandatory
                                                // and partner ignore it)
  // AUTH (PLAIN, else LOGIN, whichever the peer offers) when non-empty; only over TLS,
  // else auth_failed without sending them.
  std::string auth_user, auth_password;
  bool pipelining = true;                       // RFC 2920, and the next MAIL behind the end of data
  // BDAT (RFC 3030) when the peer offers CHUNKING (SMTP only; LMTP stays on DATA). Off: DATA,
  // and BINARYMIME content fails 5.6.3. Each BDAT reply gets timeouts.data_block_ms, the
  // reply to the LAST chunk final_dot_ms.
  bool chunking = true;
  // LMTP (RFC 2033) to a mailbox server over a Unix socket or loopback: LHLO, never
  // STARTTLS or AUTH (tls, tls_ctx, skip_tls and the credentials are ignored), and after
  // the final dot one reply per accepted recipient, each its own outcome.
  bool lmtp = false;
  connection_timeouts timeouts;
};

enum class connection_end : uint8_t {
  connect_failed,    // TCP connect failed or timed out
  greeting_refused,  // non-2xx greeting (reply set: 421, 554 ...)
  helo_refused,      // EHLO and HELO both refused
  tls_unavailable,   // policy needs TLS, STARTTLS not offered or refused
  tls_failed,        // handshake or verification failed (detail: OpenSSL's reason / verify result)
  auth_failed,       // AUTH refused or impossible (reply set when the server answered)
  timeout,           // a reply did not come in time (detail names the phase)
  dropped,           // the peer closed or broke the protocol
  service_closing,   // 421 during the session
  quit,              // we sent QUIT or abort(): normal end
};
const char* connection_end_name(connection_end e);  // "connect_failed", ... (for logs and tests)

struct connection_failure {
  connection_end why = connection_end::quit;
  smtp::reply reply;    // the server's reply when there was one, else code 0
  std::string detail;   // human text: "connect to mx1.example[127.0.0.2]:25: connection refused"
  bool was_ready = false;  // the session got as far as on_ready at least once
};

struct outbound_message {
  std::string mail_from;                        // "" = null sender
  std::vector<std::string> recipients;
  std::vector<std::string> dsn_rcpt_params;     // by index; sent only if the peer offers DSN
  std::string dsn_mail_params;                  // "RET=HDRS ENVID=x"; only if DSN offered
  std::span<const std::string_view> body;       // dot-unstuffed chunks, pinned by the caller until on_message_done
  uint64_t size = 0;                            // bytes of the body (SIZE= is counted from the chunks)
  bool eight_bit = false, smtputf8 = false;
  bool binary = false;                          // BODY=BINARYMIME: BDAT only, else 554 5.6.3 (smtp::outgoing_message)
};

// Carries messages over one outbound SMTP (or LMTP) connection: the session (smtp::client) on a
// plain-or-TLS stream, the policy decisions around it (STARTTLS, AUTH), one timer for
// the phase the session waits in, and the body written straight from the caller's
// chunks (smtp::data_segments for DATA, smtp::plan_bdat for BDAT, + byte_stream::send_borrowed:
// no body byte is copied).
//
// Loop thread only. Ownership: the connection borrows the handler, and each message
// (envelope and body chunks) from send() until that message's on_message_done; it owns
// its socket, stream and timer, and closing it drops borrowed writes still queued.
class smtp_connection final : private stream::stream_handler {
 public:
  // Callbacks on the loop thread. The owner may destroy the connection only from on_closed or after it.
  struct handler {
    virtual ~handler() = default;
    // Idle and usable: send() may be called. With pipelining it comes as soon as the previous
    // body is written, before that message's on_message_done (its MAIL then rides behind the dot).
    virtual void on_ready(smtp_connection&) = 0;
    // One per send(), in order. replies[i]: the final word for recipient i (LMTP: its own reply after the dot,
    // or its RCPT refusal; an end between two such replies keeps those that came), normalised: a reply code is
    // always set (a lost connection becomes 451 4.4.2, a timeout 451 4.4.2 naming the phase, SIZE 552 5.3.4, ...)
    // and the enhanced code is always set (RFC 3463 default for the class when the server gave none).
    // A message the peer cannot take (SIZE, 8BITMIME, SMTPUTF8, BINARYMIME) is answered without a round
    // trip: possibly before send() returns.
    virtual void on_message_done(smtp_connection&, std::vector<smtp::reply>&& replies) = 0;
    virtual void on_closed(smtp_connection&, const connection_failure&) = 0;  // the last callback
  };

  smtp_connection(net::loop& l, connection_settings settings, handler& h);
  ~smtp_connection();                            // aborts (no callbacks after destruction starts)
  smtp_connection(const smtp_connection&) = delete;
  smtp_connection& operator=(const smtp_connection&) = delete;

  // Once. remote_name: the MX host name for logs and remote_mta(). Every outcome, a
  // refused connect included, is reported by callbacks on later loop turns.
  void start(const net::endpoint& to, std::string remote_name);
  // Once, instead of start(): towards the Unix-domain socket at `path` (LMTP to a local
  // mailbox server); remote_mta() is then "unix:<path>". Outcomes as for start().
  void start_unix(const std::string& path, std::string remote_name);
  // Only after on_ready; the message and its body are borrowed until its on_message_done.
  // Called when not ready (or after on_closed) it is answered at once with 451 4.3.0.
  void send(const outbound_message& m);
  // QUIT (after what is in flight), then on_closed(quit). Before the session is up, as abort().
  void quit();
  // Closes now, synchronously: messages not yet answered get on_message_done (451 4.4.2),
  // then on_closed(quit), all before abort() returns. Nothing happens after on_closed.
  void abort();
  bool ready() const;
  const smtp::capabilities& caps() const;        // empty until the EHLO reply
  std::string remote_mta() const;                // "mx1.example[127.0.0.2]:25", "unix:/run/dovecot/lmtp"
  std::string tls_summary() const;               // "TLSv1.3 TLS_AES_256_GCM_SHA384 verified|unverified" or ""
  uint64_t messages_sent() const;                // messages handed over by send() on this connection
  uint64_t body_bytes_borrowed() const;          // zero-copy counter (tests): DATA/BDAT bytes sent from the chunks
  // Additions: what the session waits for now, and the stream's counters (tests).
  smtp::waiting_for waiting() const;
  stream::byte_stream::send_stats stream_stats() const;

 private:
  // One message from send() to on_message_done: the client points at `out`, the
  // segments (the DATA transmission, or the BDAT chunk being written) point into the
  // caller's chunks.
  struct slot {
    smtp::outgoing_message out;
    std::vector<std::string_view> segments;
  };

  // stream::stream_handler
  void on_input(std::string_view plaintext) override;
  void on_end(stream::end_reason why, std::string_view detail) override;
  void on_secured() override;
  void on_writable() override;

  // Arms the connect timeout and runs `connect` (which calls back once with a stream or an
  // error, possibly before it returns: that report is still deferred to a later turn).
  using connected_fn = stream::byte_stream::connected_fn;
  void open(const std::function<void(connected_fn)>& connect);
  void on_connected(std::unique_ptr<stream::byte_stream> s, std::string_view error);
  void pump();
  void handle(smtp::client_event& ev);
  void flush();
  void begin_tls();
  void write_body();
  void rearm_timer();
  void on_timeout();
  // `loss`: the text for recipients the result leaves without a reply (code 0).
  void message_done(smtp::message_result&& r, const std::string& loss);
  // Ends the connection: closes the socket, answers messages still in flight with
  // 451 4.4.2 `detail`, then on_closed.
  void finish(connection_end why, smtp::reply reply, std::string detail);
  connection_end end_for(const smtp::client_event& ev) const;
  uint32_t timeout_for(smtp::waiting_for w) const;

  net::loop& loop_;
  connection_settings settings_;
  handler& h_;
  smtp::client_settings client_settings_;      // the client keeps a reference to it
  std::optional<smtp::client> client_;
  std::unique_ptr<stream::byte_stream> stream_;
  net::timer timer_;
  // Shared with the connect callback, which may outlive the connection; false once the
  // connection is being destroyed. Callbacks check it after calling the handler too.
  std::shared_ptr<bool> alive_;
  std::deque<std::unique_ptr<slot>> slots_;     // sent, not yet answered, oldest first
  slot* writing_ = nullptr;                     // the message whose body is being written
  size_t next_segment_ = 0;
  std::string remote_name_;
  net::endpoint peer_;
  std::string unix_path_;                       // start_unix: the socket path
  std::string tls_summary_;
  smtp::waiting_for armed_for_ = smtp::waiting_for::none;
  uint64_t armed_replies_ = 0;
  uint64_t messages_sent_ = 0;
  uint64_t body_borrowed_ = 0;
  bool started_ = false;
  bool ready_ = false;
  bool was_ready_ = false;
  bool pumping_ = false;
  bool tls_started_ = false;
  bool finished_ = false;
};

}  // namespace sluice::delivery
