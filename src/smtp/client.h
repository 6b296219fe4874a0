// client.h: the SMTP/LMTP client state machine: server bytes in, commands and events out, no I/O.
// Untrusted input: every byte passed to feed() comes from a remote server.
#pragma once
#include <cstddef>
#include <cstdint>
#include <deque>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "smtp/data_segments.h"
#include "smtp/reply.h"

namespace sluice::smtp {

// Splits a byte stream into complete (possibly multi-line) replies. Lines may end in
// CRLF or a bare LF; a reply whose lines disagree on the code is a protocol error.
class reply_parser {
 public:
  enum class status : uint8_t { need_more, complete, error };
  void feed(std::string_view bytes) { buf_.append(bytes); }
  // Extracts the next complete reply into `out`. The enhanced code (RFC 2034) is taken
  // from the first line when its class digit matches the reply code, and stripped from
  // every line of `out.text`; lines are joined with '\n'.
  status next(reply& out);
  const std::string& error() const { return error_; }
  // Bytes held: the unparsed tail plus consumed bytes not yet dropped.
  size_t buffered() const { return buf_.size(); }
  // Bytes received but not yet part of a complete reply.
  size_t unparsed() const { return buf_.size() - pos_; }

  static constexpr size_t max_line = 4096;  // RFC 5321 allows 512; be lenient, not unbounded
  // One reply, all its lines together: an endless "250-" continuation from a hostile
  // server would otherwise be held whole while waiting for its last line.
  static constexpr size_t max_reply = 64 * 1024;

 private:
  std::string buf_;
  size_t pos_ = 0;     // start of the unparsed part of buf_
  std::string error_;
};

// What the server offered in its EHLO/LHLO reply.
struct capabilities {
  bool esmtp = false;
  bool pipelining = false;
  bool starttls = false;
  bool chunking = false;             // RFC 3030 BDAT
  bool binarymime = false;           // RFC 3030 BODY=BINARYMIME (only meaningful with CHUNKING)
  bool eightbitmime = false;
  bool smtputf8 = false;
  bool dsn = false;
  bool size_offered = false;
  uint64_t size = 0;                 // 0: no limit announced
  std::vector<std::string> auth;     // mechanisms, upper case
  bool has_auth(std::string_view mech) const;
  // Parses the EHLO reply text (lines after the first are keywords).
  static capabilities parse(std::string_view ehlo_text);
};

struct client_settings {
  std::string helo = "localhost";    // EHLO/LHLO argument
  bool lmtp = false;                 // LHLO, and one reply per accepted recipient after DATA
  bool pipelining = true;            // use PIPELINING when the server offers it
  bool pipeline_next_message = false;  // next MAIL right after the end of data (RFC 2920 3.1; DATA only)
  // BDAT (RFC 3030) instead of DATA when the server offers CHUNKING; off for peers whose
  // CHUNKING is broken. Never over LMTP, which stays on DATA. A BDAT transaction needs the
  // reply to its last chunk before the next MAIL (a failed chunk must be followed by RSET).
  bool chunking = true;
  uint64_t bdat_chunk_size = 1024 * 1024;  // octets per BDAT chunk (the last one may be shorter)
  bool starttls = false;             // require STARTTLS before any message
  // STARTTLS when the server offers it; plaintext when it does not, or refuses it.
  bool starttls_if_offered = false;
  // AUTH when non-empty (after TLS if any): PLAIN if offered, else LOGIN.
  std::string auth_user;
  std::string auth_password;
  bool auth_needs_tls = false;       // never send credentials in clear: end the session instead
};

// One message to send. The client keeps a pointer to it: the caller keeps the object
// and everything it refers to (content or chunks included) valid and unchanged until
// that message's message_done event. Content is not yet dot-stuffed.
struct outgoing_message {
  std::string mail_from;             // without angle brackets; "" for the null sender
  std::vector<std::string> recipients;
  std::string_view content;
  std::string mail_params;           // extra MAIL FROM parameters, always sent, "" if none
  // RCPT TO parameters per recipient ("NOTIFY=FAILURE ORCPT=rfc822;a@b"), by index;
  // missing or empty entries mean none. Always sent.
  std::vector<std::string> rcpt_params;
  // The content as chunks the caller writes itself (zero-copy, see content_due) instead
  // of `content`, which is then ignored.
  std::span<const std::string_view> chunks;
  bool chunked_content = false;
  // What the content needs of the server. A message the server cannot take ends at once,
  // without a MAIL command, with the same reply for every recipient: larger than its
  // SIZE: 552 5.3.4; eight_bit without 8BITMIME: 554 5.6.3 (no downgrade); smtputf8
  // without SMTPUTF8: 553 5.6.7. Otherwise MAIL carries SIZE=, BODY=8BITMIME and
  // SMTPUTF8 as they apply.
  bool eight_bit = false;
  bool smtputf8 = false;
  // BODY=BINARYMIME content (RFC 3030): it goes only with BDAT, as it is, to a server offering
  // CHUNKING and BINARYMIME (and with chunking on in the settings); DATA would corrupt it (line
  // ends repaired, NUL left out, see dot_stuff). Elsewhere it ends at once with 554 5.6.3, as a
  // server without BINARYMIME would refuse it. Other content sent with BDAT has its line ends
  // repaired as for DATA (smtp::plan_bdat).
  bool binary = false;
  // Sent only when the server offers DSN (RFC 3461): "RET=HDRS ENVID=x", and per
  // recipient by index "NOTIFY=FAILURE ORCPT=rfc822;a@b".
  std::string dsn_mail_params;
  std::vector<std::string> dsn_rcpt_params;

  uint64_t content_size() const;     // bytes of content (or of all chunks)
};

// Which reply the client waits for now, so the caller can apply the RFC 5321 4.5.3.2
// timeout of that command. `content` is the caller writing chunked content (between
// content_due and content_written()); `bdat` the reply to a BDAT chunk that is not the last
// (the data-block timeout applies); `final_dot` the reply to the end of data or to BDAT LAST.
enum class waiting_for : uint8_t {
  none, greeting, helo, starttls, auth, mail, rcpt, data, content, bdat, final_dot, rset, quit
};
const char* waiting_for_name(waiting_for w);  // "greeting", "EHLO", "DATA", "BDAT", "end of data" ...

struct message_result {
  // SMTP: the end-of-data (or BDAT LAST) reply, or the reply that stopped the transaction
  // (MAIL, DATA, a refused BDAT chunk, the last RCPT refusal when none was accepted). LMTP: the first positive per-
  // recipient reply if any, else the first refusal. code 0: the session ended first.
  reply final;
  // One entry per recipient, in order: the RCPT refusal, or the final delivery reply
  // (SMTP: the end-of-data reply for all; LMTP: that recipient's own reply).
  std::vector<reply> recipients;
  bool accepted() const { return final.code >= 200 && final.code < 300; }
  size_t accepted_recipients() const;
};

struct client_event {
  enum class kind : uint8_t {
    ready,           // greeted (and TLS/AUTH done): send() may be called
    message_done,    // `result` holds the outcome of the oldest message sent
    need_tls,        // STARTTLS accepted: flush output, start TLS, then call tls_started()
    // Session over (221 after QUIT, 421, a refused greeting, EHLO, STARTTLS or AUTH);
    // `why` is that reply. Code 0: the connection was lost, or the server lacks what the
    // settings require (STARTTLS, an AUTH mechanism, TLS for AUTH), and QUIT is queued.
    closed,
    protocol_error,  // unparseable or unexpected reply; `detail` explains; the caller closes
    // Chunked content is due: flush output(), write it, then call content_written().
    // DATA (354 came, a recipient was accepted): the transmission of `message`'s chunks
    // (smtp::data_segments). BDAT: output() ends with the command "BDAT n [LAST]", and
    // `segments` are exactly its n octets (one content_due per chunk).
    content_due,
  };
  kind what;
  message_result result;
  reply why;
  std::string detail;
  // closed, protocol_error: the reply the session was waiting for when it ended, so a
  // caller can tell a refused greeting, EHLO, STARTTLS or AUTH from a later end.
  waiting_for at = waiting_for::none;
  const outgoing_message* message = nullptr;  // content_due: whose content
  // content_due for a BDAT chunk: which one (from 0), and its octets. The segments point into
  // the message's chunks and static storage, so they stay valid until the message's
  // message_done. The event holds its own list: the transaction may be gone (a reply parsed in
  // the same feed() ended the session) by the time the caller handles the event.
  bool bdat = false;
  size_t chunk = 0;
  std::vector<std::string_view> segments;
};

class client {
 public:
  explicit client(const client_settings& settings);

  // With PIPELINING, BDAT content up to this size goes right behind the RCPTs; larger
  // content waits for their replies, so that it is not sent when nobody takes it.
  static constexpr uint64_t bdat_behind_rcpt_max = 64 * 1024;

  // Consume server bytes; complete replies advance the session and queue events.
  void feed(std::string_view bytes);
  // Events in the order they happened; the caller drains them after each feed()/send().
  bool next_event(client_event& out);

  // Bytes to send. The caller writes them and calls consume_output().
  const std::string& output() const { return out_; }
  std::string& mutable_output() { return out_; }  // for callers that move the buffer out
  void consume_output(size_t n) { out_.erase(0, n); }

  // Only after a ready event. Normally one message at a time: the next ready event
  // follows its message_done. With pipeline_next_message (and PIPELINING offered) the
  // ready event comes as soon as the content is sent, so the next MAIL rides in the
  // same write as the end of data; message_done events still come in send() order.
  // A message the server cannot take (see outgoing_message) gets its message_done, and
  // the next ready, without a command being sent.
  void send(const outgoing_message& msg);
  // Queue QUIT; a closed event follows the 221 (or the caller just closes).
  void quit();
  // TLS is now active: the session restarts with EHLO (RFC 3207 4.2).
  void tls_started();
  // The chunked content announced by content_due has been written: the client goes on
  // as if it had put that content in output() itself (with BDAT and PIPELINING the next
  // chunk's content_due may follow at once). A server reply may come in while the caller
  // writes a BDAT chunk: it answers an earlier chunk (or MAIL, RCPT), never this one.
  void content_written();
  // The connection dropped: the message in flight (if any) ends with code 0 and a
  // closed event is queued.
  void connection_lost(std::string_view why);

  bool is_ready() const;
  size_t in_flight() const { return txns_.size(); }
  bool is_closed() const { return state_ == state::closed; }
  const capabilities& caps() const { return caps_; }
  bool tls_active() const { return tls_active_; }
  // Server bytes held while a reply is incomplete (bounded by reply_parser's limits).
  size_t buffered_input() const { return parser_.buffered(); }
  uint64_t messages_done() const { return messages_done_; }
  waiting_for waiting() const;
  // Complete replies consumed so far: a caller restarts its reply timer when it moves.
  uint64_t replies_seen() const { return replies_seen_; }

 private:
  enum class state : uint8_t {
    greeting, helo, starttls, waiting_tls, auth, auth_login_user, auth_login_password, ready, transaction, rset,
    quit, closed
  };
  // In a transaction, which reply comes next.
  enum class expect : uint8_t { mail, rcpt, data, content, lmtp_content, bdat, bdat_last };

  void on_reply(const reply& r);
  void on_transaction_reply(const reply& r);
  void send_helo();
  void after_helo();
  void start_auth();
  void compose_mail(const outgoing_message& msg);
  bool refuse_locally(const outgoing_message& msg);
  void become_ready();
  struct transaction;
  void send_next_lockstep(transaction& t);
  bool use_bdat() const;
  void start_bdat(transaction& t);
  void send_chunks(transaction& t);
  void chunk_written(transaction& t);
  bool content_pending() const;
  void append_rcpt(const outgoing_message& msg, size_t i);
  void finish_front();
  void abort_transactions(const reply& why);
  bool can_pipeline_next() const;
  void fail(std::string detail);
  void give_up(waiting_for at, std::string detail);  // `at`: the step that cannot be taken
  void emit(client_event::kind k);

  const client_settings& settings_;
  reply_parser parser_;
  std::string out_;
  std::deque<client_event> events_;
  capabilities caps_;
  state state_ = state::greeting;
  bool tls_active_ = false;
  bool authenticated_ = false;
  bool helo_fallback_ = false;  // EHLO refused: retried with HELO
  bool tls_declined_ = false;   // opportunistic STARTTLS refused: the session goes on in clear

  struct transaction {
    const outgoing_message* msg = nullptr;
    std::deque<expect> pending;    // replies still expected, oldest first
    size_t next_rcpt = 0;          // lock-step: next recipient to send
    size_t rcpt_replies = 0;       // RCPT replies seen so far
    size_t rcpt_accepted = 0;
    std::vector<size_t> accepted_index;  // which recipients await a final reply
    size_t lmtp_seen = 0;
    bool mail_ok = false;
    bool failed = false;           // the transaction cannot deliver any more
    bool content_sent = false;     // 354 came and the content (or a lone dot) went out
    bool local = false;            // refused before any command; waits only for its turn
    // BDAT (RFC 3030): the content as chunks; content_sent once LAST is written.
    bool bdat = false;
    bool bdat_started = false;
    bool bdat_failed = false;      // a chunk was refused: RSET before the next transaction
    size_t next_chunk = 0;         // the next chunk to send
    bdat_plan plan;
    message_result result;
  };
  std::deque<transaction> txns_;   // in flight, oldest first; two at most
  bool pipelined_ = false;
  bool ready_emitted_ = false;     // a ready event not yet answered by send()
  bool quit_pending_ = false;      // QUIT queued behind replies still expected
  bool content_due_ = false;       // content_due emitted, content_written() not yet called
  bool quit_after_content_ = false;  // quit() came while content (DATA, or BDAT chunks) was still to go
  uint64_t messages_done_ = 0;
  uint64_t replies_seen_ = 0;
};

}  // namespace sluice::smtp
