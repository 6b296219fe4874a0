// server.h: the SMTP server state machine: bytes in, replies and actions out, no I/O.
// Untrusted input: every byte passed to feed() comes from a remote client.
#pragma once
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "smtp/envelope.h"
#include "smtp/reply.h"

namespace sluice::smtp {

// What a receive connector allows a session; fixed for the life of the session.
struct server_settings {
  std::string hostname = "localhost";   // our name in the banner, EHLO and replies
  std::string banner;                   // text after "220 "; "" means "<hostname> ESMTP sluice ready at <date>"
  uint64_t max_message_size = 36u << 20;  // SIZE advertised; larger messages get 552 5.3.4
  size_t max_recipients = 200;          // more get 452 4.5.3 Too many recipients
  size_t max_command_line = 512;        // RFC 5321 4.5.3.1.4, including CRLF
  size_t max_text_line = 1000;          // RFC 5321 4.5.3.1.6, including CRLF
  int max_errors = 10;                  // after this many error replies the session is closed (421)
  bool helo_required = false;           // the seed's telnet session sends MAIL without HELO
  bool pipelining = true;
  bool chunking = true;
  bool smtputf8 = true;
  bool dsn = true;
  bool eightbitmime = true;
  // Seams for TLS and AUTH (the TLS issue fills them in).
  bool starttls_offered = false;        // advertise STARTTLS (only before TLS is active)
  bool starttls_required = false;       // 530 5.7.0 before MAIL until TLS is active
  bool auth_offered = false;            // advertise AUTH PLAIN LOGIN
  bool auth_required = false;           // 530 5.7.0 Authentication required before MAIL
};

// The session's side effects, implemented by the caller (smtpd over a socket, or a test).
// Every check_* call is synchronous and must not call back into the server.
class server_delegate {
 public:
  virtual ~server_delegate() = default;
  // A reply whose code is 250 accepts; any other code is sent as the refusal.
  virtual reply check_helo(std::string_view domain) { (void)domain; return {250, "", ""}; }
  virtual reply check_mail(const envelope& env) { (void)env; return {250, "2.1.0", "Sender OK"}; }
  virtual reply check_recipient(const envelope& env, const recipient& rcpt) = 0;
  // The message is complete, within limits and syntactically clean. The body holds
  // the de-stuffed content with CRLF line ends; the delegate takes it (move out) and
  // later calls server::submit_done() exactly once. Until then no input is processed.
  virtual void submit(envelope& env, std::string& body) = 0;
  // Content is about to arrive (DATA accepted, or the first BDAT chunk of a transaction):
  // returns the trace header to place in front of the body. Written now, as Postfix
  // writes its Received: line when DATA starts, so that it never has to be slid in front
  // of a body of tens of megabytes later. Not counted against max_message_size; submit()
  // gets it as the start of `body`.
  virtual std::string begin_content(const envelope& env) { (void)env; return {}; }
  // The message buffer is about to grow by `bytes` (the trace header, then content).
  // False: no memory may be taken for it now; the message is refused with 452 4.3.1
  // (at DATA itself when even the trace header does not fit) and its buffer freed.
  virtual bool reserve_content(size_t bytes) { (void)bytes; return true; }
  // The server freed its message buffer (a refused message, a reset transaction): every
  // byte reserved for it may be given back. Not called for a body moved out by submit().
  virtual void content_released() {}
  // STARTTLS was accepted (220 already queued): the caller starts the TLS handshake
  // after writing pending output, then calls server::tls_started().
  virtual void start_tls() {}
  // AUTH: called with the mechanism and decoded identity/password once complete.
  // Password hashing costs milliseconds, so the answer may come later: return a reply
  // with code 0 and call server::auth_done() once; no input is processed meanwhile.
  // The views are valid only during the call (copy what the verification needs).
  virtual reply check_auth(std::string_view mechanism, std::string_view authzid,
                           std::string_view user, std::string_view password) {
    (void)mechanism; (void)authzid; (void)user; (void)password;
    return {535, "5.7.8", "Authentication credentials invalid"};
  }
  // Protocol log hooks: a received command line (without CRLF; AUTH secrets masked)
  // and a sent reply (wire form without the final CRLF).
  virtual void on_command(std::string_view line) { (void)line; }
  virtual void on_reply(std::string_view text) { (void)text; }
};

// Decisions worth knowing:
// - Commands may end with a bare LF (as Postfix accepts): a telnet or script client
//   that sends LF is harmless at the command level. The end of DATA, by contrast, is
//   only CRLF.CRLF; a bare CR or LF anywhere in DATA content makes the message
//   refused at its real end (550 5.6.11), which defeats SMTP smuggling through
//   "\n.\n" / "\r.\r" style terminators that other hops might honour.
// - BDAT content is held to the same rule unless the transaction is BODY=BINARYMIME:
//   7BIT and 8BITMIME content is RFC 5321 text whatever carries it, and relayed with
//   DATA it would be a smuggling payload again. A CR ending one chunk pairs with an LF
//   starting the next. The refusal is the same 550 5.6.11, after the octets of BDAT
//   LAST (earlier chunks are read to their announced size and get their 250 as usual),
//   so that, as for DATA, the message gets one verdict at its end.
// - A NUL octet in DATA content, or in BDAT chunks of a transaction that is not
//   BODY=BINARYMIME, is refused the same way (550 5.6.0): RFC 5321 text has no NUL,
//   and a next hop that reads strings up to NUL would see "\0." or ".\0" before the
//   real end as a forged end of data. Only BINARYMIME (RFC 3030) makes NUL content.
// - An over-long command line gets "500 5.5.2 Line too long" (RFC 5321 4.5.3.1.10
//   names 500 for it; X.5.6 is registered for SASL exchange lines only, which get
//   "500 5.5.6") and the rest of the line is skipped without being buffered. AUTH lines
//   may be 12288 octets (RFC 4954 4).
// - An over-long text line in DATA is answered at the end of data with
//   "552 5.6.0 Line too long": 552 is RFC 5321's code for content limits, and a 500
//   there would read as "command unrecognised" to a client that just sent a message.
// - Every 4xx/5xx reply produced by the protocol counts towards max_errors (as
//   Postfix's error limits do); refusals from submit_done() do not, since they are
//   the server's own trouble rather than client misbehaviour, and neither does
//   "452 4.5.3" for recipients past max_recipients: RFC 5321 4.5.3.1.10 has the client
//   send those in another transaction, and a pipelining client sends them all before
//   it sees the first 452.
// - Input arriving while a submit is pending is held in full. The caller is expected
//   to stop reading while submit is outstanding (one read buffer at most arrives
//   meanwhile), which bounds it. Input while waiting for TLS is dropped at once,
//   since RFC 3207 4.2 has it discarded anyway.
class server {
 public:
  server(const server_settings& settings, server_delegate& delegate);

  // Queue the 220 greeting. Call once, before feed().
  void greet();
  // Queue "554 5.7.1 <text>" and close after it (no connector matched the peer, etc.).
  void refuse(std::string_view text);

  // Consume input from the client. Complete command lines are executed in order
  // (pipelining); partial lines and DATA/BDAT content are buffered internally.
  // Input that arrives while a submit or STARTTLS is pending is held until it resolves.
  void feed(std::string_view bytes);

  // Bytes to send to the client. The caller writes them and calls consume_output().
  const std::string& output() const { return out_; }
  void consume_output(size_t n) { out_.erase(0, n); }
  // All pending output, moved out: the caller owns it (no copy on the way to a socket).
  std::string take_output() {
    std::string all;
    all.swap(out_);
    return all;
  }

  // Completes the pending submit: reply is "250 2.6.0 <id> Queued mail for delivery"
  // or a 4xx/5xx refusal. Then executes any pipelined input held meanwhile.
  void submit_done(const reply& r);
  // Completes an AUTH that check_auth() left pending: 235 authenticates the session.
  void auth_done(const reply& r);
  // TLS is active: reset to the just-connected state (RFC 3207 4.2) and drop any
  // plaintext that arrived after the STARTTLS command line.
  void tls_started();

  // True once the session should end: after QUIT, a 421, or refuse(). The caller
  // flushes output() and closes.
  bool closing() const { return closing_; }
  // The daemon is shutting down: input not yet executed is dropped and no more is
  // taken. With a submit pending, submit_done() still sends that message's reply, then
  // the 421; otherwise the 421 is queued now. closing() is true once the 421 is queued.
  void shut_down();
  // Idle/timeout handling by the caller: queue "421 4.4.2 <hostname> Error: timeout exceeded" and close.
  void timeout();

  bool tls_active() const { return tls_active_; }
  // Inside DATA or between BDAT chunks: the caller applies its data timeout then.
  bool receiving_content() const { return state_ == state::data || state_ == state::bdat || bdat_used_; }
  // From an accepted MAIL until the reply to its end of data (or RSET): what a draining
  // daemon lets finish.
  bool in_transaction() const { return mail_given_ || receiving_content() || state_ == state::waiting_submit; }
  bool authenticated() const { return !auth_user_.empty(); }
  const std::string& auth_user() const { return auth_user_; }
  const envelope& current_envelope() const { return env_; }
  uint64_t messages_accepted() const { return messages_accepted_; }

 private:
  // Implementation state (owned by the smtp module); see server.cc.
  friend struct server_commands;  // the command table and its check/apply steps

  enum class state : uint8_t { command, data, bdat, auth, waiting_submit, waiting_auth, waiting_tls, closed };
  const server_settings& settings_;
  server_delegate& delegate_;
  std::string in_;          // unconsumed input
  std::string out_;         // replies not yet taken by the caller
  std::string body_;        // message content being received, after the trace header
  size_t trace_size_ = 0;   // bytes of body_ that begin_content() supplied
  envelope env_;
  state state_ = state::command;
  bool greeted_ = false;    // HELO/EHLO seen
  bool mail_given_ = false;
  bool closing_ = false;
  bool tls_active_ = false;
  bool shutting_down_ = false;  // shut_down(): no input is executed any more
  bool data_bad_ = false;   // DATA/BDAT content had a fault (bare LF/CR, long line, too big)
  reply data_fault_{};
  uint64_t bdat_remaining_ = 0;
  bool bdat_last_ = false;
  bool bdat_used_ = false;
  int errors_ = 0;
  std::string auth_mech_;
  std::string auth_user_;
  std::string auth_pending_user_;
  uint64_t messages_accepted_ = 0;
  size_t in_pos_ = 0;         // in_[0, in_pos_) is consumed; compacted after each feed
  bool discarding_ = false;   // dropping an overlong command line up to its LF
  // DATA content scanner (state survives between feed() calls).
  bool line_start_ = true;    // just after CRLF (or the DATA command)
  bool dot_line_ = false;     // the current line began with a '.' that was removed
  bool pending_cr_ = false;   // a CR was seen; the next byte decides CRLF vs bare CR
  size_t line_len_ = 0;       // wire length of the current line so far, without CRLF
  bool fault_counted_ = false;  // data_fault_ already replied (and counted) once
  // BDAT refused at command time (sequence): replied after its octets are skipped.
  std::optional<reply> chunk_fault_;
  uint64_t bdat_chunk_size_ = 0;
  bool auth_have_user_ = false;  // AUTH LOGIN: username received, password next
};

}  // namespace sluice::smtp
