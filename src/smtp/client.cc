// client.cc: the SMTP/LMTP client state machine (RFC 5321, RFC 2920 pipelining, RFC 3030 BDAT, RFC 2033 LMTP).
// Untrusted input: replies from the remote server, parsed by reply_parser.
#include "smtp/client.h"

#include <algorithm>
#include <cctype>
#include <cstring>

#include "smtp/base64.h"
#include "smtp/dot_stuff.h"

namespace sluice::smtp {

namespace {

bool is_digit(char c) { return c >= '0' && c <= '9'; }

// Length of an RFC 3463 code ("4.7.1") at the start of `s` whose class is `klass`,
// followed by a space or the end; 0 if there is none.
size_t enhanced_length(std::string_view s, char klass) {
  if (s.size() < 5 || s[0] != klass || s[1] != '.') return 0;
  size_t i = 2, n = 0;
  while (i < s.size() && is_digit(s[i]) && n < 3) ++i, ++n;
  if (n == 0 || i >= s.size() || s[i] != '.') return 0;
  ++i;
  n = 0;
  while (i < s.size() && is_digit(s[i]) && n < 3) ++i, ++n;
  if (n == 0) return 0;
  if (i < s.size() && s[i] != ' ') return 0;
  return i;
}

std::string upper(std::string_view s) {
  std::string r(s);
  for (auto& c : r) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return r;
}

}  // namespace

reply_parser::status reply_parser::next(reply& out) {
  size_t p = pos_;
  int code = -1;
  std::string enhanced, text;
  for (;;) {
    size_t nl = buf_.find('\n', p);
    if (nl == std::string::npos) {
      if (buf_.size() - p > max_line) {
        error_ = "reply line too long";
        return status::error;
      }
      if (buf_.size() - pos_ > max_reply) {
        error_ = "reply too long";
        return status::error;
      }
      // Drop consumed bytes once they dominate, so the buffer does not grow forever.
      if (pos_ > 0 && pos_ * 2 >= buf_.size()) {
        buf_.erase(0, pos_);
        pos_ = 0;
      }
      return status::need_more;
    }
    size_t end = nl;
    if (end > p && buf_[end - 1] == '\r') --end;
    std::string_view line(buf_.data() + p, end - p);
    if (line.size() > max_line) {
      error_ = "reply line too long";
      return status::error;
    }
    if (line.size() < 3 || !is_digit(line[0]) || !is_digit(line[1]) || !is_digit(line[2]) ||
        (line.size() > 3 && line[3] != ' ' && line[3] != '-')) {
      error_ = "malformed reply line: " + std::string(line.substr(0, 80));
      return status::error;
    }
    int c = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
    if (code < 0) {
      code = c;
    } else if (c != code) {
      error_ = "reply code changed within a multi-line reply";
      return status::error;
    } else {
      text += '\n';
    }
    std::string_view rest = line.size() > 4 ? line.substr(4) : std::string_view{};
    if (size_t n = enhanced_length(rest, line[0]); n > 0) {
      if (enhanced.empty() && code == c && text.empty()) enhanced.assign(rest.substr(0, n));
      rest.remove_prefix(std::min(rest.size(), n + 1));
    }
    text.append(rest);
    p = nl + 1;
    if (line.size() == 3 || line[3] == ' ') {
      out.code = code;
      out.enhanced = std::move(enhanced);
      out.text = std::move(text);
      pos_ = p;
      if (pos_ == buf_.size()) {
        buf_.clear();
        pos_ = 0;
      }
      return status::complete;
    }
  }
}

bool capabilities::has_auth(std::string_view mech) const {
  return std::find(auth.begin(), auth.end(), mech) != auth.end();
}

capabilities capabilities::parse(std::string_view text) {
  capabilities c;
  c.esmtp = true;
  size_t start = text.find('\n');
  while (start != std::string_view::npos) {
    size_t next = text.find('\n', start + 1);
    std::string_view line = text.substr(start + 1, next == std::string_view::npos ? std::string_view::npos
                                                                                  : next - start - 1);
    start = next;
    size_t sp = line.find_first_of(" =");
    std::string key = upper(line.substr(0, sp));
    std::string_view params = sp == std::string_view::npos ? std::string_view{} : line.substr(sp + 1);
    if (key == "PIPELINING") c.pipelining = true;
    else if (key == "STARTTLS") c.starttls = true;
    else if (key == "CHUNKING") c.chunking = true;
    else if (key == "BINARYMIME") c.binarymime = true;
    else if (key == "8BITMIME") c.eightbitmime = true;
    else if (key == "SMTPUTF8") c.smtputf8 = true;
    else if (key == "DSN") c.dsn = true;
    else if (key == "SIZE") {
      c.size_offered = true;
      uint64_t v = 0;
      for (char ch : params) {
        if (!is_digit(ch)) break;
        v = v * 10 + uint64_t(ch - '0');
      }
      c.size = v;
    } else if (key == "AUTH") {
      while (!params.empty()) {
        size_t e = params.find(' ');
        std::string m = upper(params.substr(0, e));
        if (!m.empty() && !c.has_auth(m)) c.auth.push_back(std::move(m));
        if (e == std::string_view::npos) break;
        params.remove_prefix(e + 1);
      }
    }
  }
  return c;
}

uint64_t outgoing_message::content_size() const {
  if (!chunked_content) return content.size();
  uint64_t n = 0;
  for (std::string_view c : chunks) n += c.size();
  return n;
}

const char* waiting_for_name(waiting_for w) {
  switch (w) {
    case waiting_for::none: return "nothing";
    case waiting_for::greeting: return "greeting";
    case waiting_for::helo: return "EHLO";
    case waiting_for::starttls: return "STARTTLS";
    case waiting_for::auth: return "AUTH";
    case waiting_for::mail: return "MAIL FROM";
    case waiting_for::rcpt: return "RCPT TO";
    case waiting_for::data: return "DATA";
    case waiting_for::content: return "message content";
    case waiting_for::bdat: return "BDAT";
    case waiting_for::final_dot: return "end of data";
    case waiting_for::rset: return "RSET";
    case waiting_for::quit: return "QUIT";
  }
  return "?";
}

size_t message_result::accepted_recipients() const {
  return size_t(std::count_if(recipients.begin(), recipients.end(),
                              [](const reply& r) { return r.code >= 200 && r.code < 300; }));
}

client::client(const client_settings& settings) : settings_(settings) {}

bool client::next_event(client_event& out) {
  if (events_.empty()) return false;
  out = std::move(events_.front());
  events_.pop_front();
  return true;
}

void client::emit(client_event::kind k) {
  events_.emplace_back();
  events_.back().what = k;
}

void client::feed(std::string_view bytes) {
  if (state_ == state::closed) return;
  // RFC 3207 5: nothing the server sends between its 220 to STARTTLS and the handshake
  // may be believed (a man in the middle could have injected it in clear).
  if (state_ == state::waiting_tls && !bytes.empty()) return fail("server bytes after STARTTLS before TLS");
  parser_.feed(bytes);
  reply r;
  while (state_ != state::closed) {
    auto st = parser_.next(r);
    if (st == reply_parser::status::need_more) break;
    if (st == reply_parser::status::error) {
      fail(parser_.error());
      break;
    }
    ++replies_seen_;
    on_reply(r);
  }
}

void client::send_helo() {
  out_ += settings_.lmtp ? "LHLO " : "EHLO ";
  out_ += settings_.helo;
  out_ += "\r\n";
  state_ = state::helo;
}

void client::become_ready() {
  state_ = state::ready;
  // A ready event the caller has not answered with send() yet is not repeated.
  if (ready_emitted_) return;
  ready_emitted_ = true;
  emit(client_event::kind::ready);
}

void client::after_helo() {
  if (!tls_active_ && !tls_declined_ &&
      (settings_.starttls || (settings_.starttls_if_offered && caps_.starttls))) {
    if (!caps_.starttls) return give_up(waiting_for::starttls, "server does not offer STARTTLS");
    out_ += "STARTTLS\r\n";
    state_ = state::starttls;
    return;
  }
  if (!settings_.auth_user.empty() && !authenticated_) return start_auth();
  become_ready();
}

void client::start_auth() {
  if (settings_.auth_needs_tls && !tls_active_)
    return give_up(waiting_for::auth, "no TLS: credentials are not sent in clear");
  if (caps_.has_auth("PLAIN")) {
    std::string cred;
    cred += '\0';
    cred += settings_.auth_user;
    cred += '\0';
    cred += settings_.auth_password;
    out_ += "AUTH PLAIN ";
    base64_encode(cred, out_);
    out_ += "\r\n";
    state_ = state::auth;
    return;
  }
  if (caps_.has_auth("LOGIN")) {
    // No initial response: LOGIN has no standard, and the prompt-by-prompt form is the
    // one every server that offers it understands.
    out_ += "AUTH LOGIN\r\n";
    state_ = state::auth_login_user;
    return;
  }
  give_up(waiting_for::auth, "server offers neither AUTH PLAIN nor AUTH LOGIN");
}

// A refusal outside a transaction ends the session politely.
static void refuse_session(std::string& out) { out += "QUIT\r\n"; }

void client::on_reply(const reply& r) {
  const waiting_for at = waiting();
  if (r.code == 421 && state_ != state::quit) {
    // The server is closing the channel (RFC 5321 3.8): whatever was in flight is over.
    abort_transactions(r);
    state_ = state::closed;
    emit(client_event::kind::closed);
    events_.back().why = r;
    events_.back().at = at;
    return;
  }
  auto end_session = [&] {
    refuse_session(out_);
    state_ = state::closed;
    emit(client_event::kind::closed);
    events_.back().why = r;
    events_.back().at = at;
  };
  switch (state_) {
    case state::greeting:
      if (r.code == 220) return send_helo();
      return end_session();
    case state::helo:
      if (r.code == 250) {
        caps_ = helo_fallback_ ? capabilities{} : capabilities::parse(r.text);
        return after_helo();
      }
      if (!settings_.lmtp && !helo_fallback_ && r.code >= 500) {
        // A pre-ESMTP server: plain HELO, no extensions (RFC 5321 3.2).
        helo_fallback_ = true;
        out_ += "HELO " + settings_.helo + "\r\n";
        return;
      }
      return end_session();
    case state::starttls:
      if (r.code != 220) {
        if (settings_.starttls) return end_session();
        // Opportunistic: a server that offers STARTTLS and then refuses it (454) still
        // takes mail in clear (RFC 3207 4).
        tls_declined_ = true;
        return after_helo();
      }
      // Bytes pipelined behind the 220 were sent in clear before TLS: an injection
      // (CVE-2011-0411), never a reply to anything we send over TLS.
      if (parser_.unparsed() > 0) return fail("server bytes after its STARTTLS reply, before TLS");
      state_ = state::waiting_tls;
      emit(client_event::kind::need_tls);
      return;
    case state::auth:
      if (r.code != 235) return end_session();
      authenticated_ = true;
      return become_ready();
    case state::auth_login_user:
    case state::auth_login_password: {
      if (r.code != 334) return end_session();
      bool user = state_ == state::auth_login_user;
      base64_encode(user ? settings_.auth_user : settings_.auth_password, out_);
      out_ += "\r\n";
      state_ = user ? state::auth_login_password : state::auth;
      return;
    }
    case state::transaction:
      return on_transaction_reply(r);
    case state::rset:
      if (r.code != 250) return end_session();
      if (quit_pending_) {
        state_ = state::quit;
        return;
      }
      return become_ready();
    case state::quit:
      state_ = state::closed;
      emit(client_event::kind::closed);
      events_.back().why = r;
      events_.back().at = at;
      return;
    case state::waiting_tls:
    case state::ready:
      return fail("unexpected reply " + std::to_string(r.code) + " while idle");
    case state::closed:
      return;
  }
}

bool client::can_pipeline_next() const {
  // Not behind BDAT: were its last chunk refused, the transaction would still be open (RFC
  // 3030 wants RSET then) and a MAIL already sent would be refused as nested.
  return settings_.pipeline_next_message && pipelined_ && state_ == state::transaction && txns_.size() == 1 &&
         txns_.front().content_sent && !txns_.front().bdat && !content_due_ && !quit_pending_;
}

waiting_for client::waiting() const {
  switch (state_) {
    case state::greeting: return waiting_for::greeting;
    case state::helo: return waiting_for::helo;
    case state::starttls:
    case state::waiting_tls: return waiting_for::starttls;
    case state::auth:
    case state::auth_login_user:
    case state::auth_login_password: return waiting_for::auth;
    case state::transaction:
      if (content_due_) return waiting_for::content;
      for (const auto& t : txns_) {
        if (t.pending.empty()) continue;
        switch (t.pending.front()) {
          case expect::mail: return waiting_for::mail;
          case expect::rcpt: return waiting_for::rcpt;
          case expect::data: return waiting_for::data;
          case expect::bdat: return waiting_for::bdat;
          case expect::content:
          case expect::lmtp_content:
          case expect::bdat_last: return waiting_for::final_dot;
        }
      }
      return waiting_for::none;
    case state::rset: return waiting_for::rset;
    case state::quit: return waiting_for::quit;
    case state::ready:
    case state::closed: return waiting_for::none;
  }
  return waiting_for::none;
}

bool client::is_ready() const { return state_ == state::ready || can_pipeline_next(); }

void client::send(const outgoing_message& msg) {
  if (state_ == state::closed) {
    // The session ended (a protocol error or 421 in the same read) after a ready event the
    // caller had not yet seen: the message still gets its message_done, or the caller
    // would wait for it forever.
    transaction& t = txns_.emplace_back();
    t.msg = &msg;
    t.failed = true;
    t.result.final = reply{0, "", "session closed before the message was sent"};
    t.result.recipients.assign(msg.recipients.size(), reply{0, "", ""});
    return finish_front();
  }
  if (!is_ready()) return;
  ready_emitted_ = false;
  if (refuse_locally(msg)) return;
  if (state_ == state::ready) {
    state_ = state::transaction;
    pipelined_ = settings_.pipelining && caps_.pipelining;
  }
  transaction& t = txns_.emplace_back();
  t.msg = &msg;
  t.result.final.code = 0;
  t.result.recipients.assign(msg.recipients.size(), reply{0, "", ""});

  compose_mail(msg);
  t.pending.push_back(expect::mail);
  t.bdat = use_bdat();
  if (t.bdat) {
    const std::string_view whole[1] = {msg.content};
    plan_bdat(msg.chunked_content ? msg.chunks : std::span<const std::string_view>(whole), msg.binary,
              settings_.bdat_chunk_size, t.plan);
  }
  if (pipelined_) {
    for (size_t i = 0; i < msg.recipients.size(); ++i) {
      append_rcpt(msg, i);
      t.pending.push_back(expect::rcpt);
    }
    if (!t.bdat) {
      out_ += "DATA\r\n";
      t.pending.push_back(expect::data);
    } else if (t.plan.total() <= bdat_behind_rcpt_max) {
      // Small content rides behind the RCPTs (RFC 3030 with PIPELINING): the server discards
      // a chunk whose transaction failed, and waiting for the RCPT replies costs a round trip.
      start_bdat(t);
    }
    // Larger content waits for the RCPT replies, so it is not sent to nobody.
  }
}

bool client::use_bdat() const { return settings_.chunking && !settings_.lmtp && caps_.chunking; }

void client::start_bdat(transaction& t) {
  t.bdat_started = true;
  send_chunks(t);
}

// Sends BDAT chunks from t.next_chunk: with PIPELINING all of them (each behind the one
// before), else one, whose reply sends the next. Chunked content goes through content_due.
void client::send_chunks(transaction& t) {
  while (!content_due_ && !t.failed && t.next_chunk < t.plan.chunks()) {
    const size_t i = t.next_chunk++;
    out_ += "BDAT ";
    out_ += std::to_string(t.plan.chunk_size[i]);
    out_ += i + 1 == t.plan.chunks() ? " LAST\r\n" : "\r\n";
    if (t.msg->chunked_content) {
      content_due_ = true;
      emit(client_event::kind::content_due);
      client_event& ev = events_.back();
      ev.message = t.msg;
      ev.bdat = true;
      ev.chunk = i;
      const auto octets = t.plan.chunk(i);
      ev.segments.assign(octets.begin(), octets.end());
      return;  // content_written() goes on
    }
    for (std::string_view seg : t.plan.chunk(i)) out_.append(seg);
    chunk_written(t);
    if (!pipelined_) return;
  }
}

// The chunk before t.next_chunk is out: its reply is expected.
void client::chunk_written(transaction& t) {
  const bool last = t.next_chunk == t.plan.chunks();
  t.pending.push_back(last ? expect::bdat_last : expect::bdat);
  if (!last) return;
  t.content_sent = true;
  if (quit_after_content_ && !content_due_) {  // quit() came while chunks were still to go
    quit_after_content_ = false;
    quit();
  }
}

// Content of the newest transaction is still to be written (QUIT must wait behind it).
bool client::content_pending() const {
  if (content_due_) return true;
  if (txns_.empty()) return false;
  const transaction& t = txns_.back();
  return t.bdat && !t.local && !t.failed && !t.content_sent;
}

// A message the server cannot take is not offered at all: the refusal a server would
// give is known, and a MAIL that can only fail would cost a round trip.
bool client::refuse_locally(const outgoing_message& msg) {
  reply why;
  uint64_t size = msg.content_size();
  if (caps_.size_offered && caps_.size > 0 && size > caps_.size) {
    why = {552, "5.3.4", "message size " + std::to_string(size) + " exceeds the server's limit of " +
                             std::to_string(caps_.size)};
  } else if (msg.binary && !(use_bdat() && caps_.binarymime)) {
    why = {554, "5.6.3",
           settings_.lmtp ? "binary content (BODY=BINARYMIME) cannot be sent with DATA, and LMTP here sends no BDAT"
           : !settings_.chunking
               ? "binary content (BODY=BINARYMIME) cannot be sent with DATA, and BDAT is turned off for this server"
               : "binary content (BODY=BINARYMIME) needs BDAT, and the server does not offer CHUNKING and BINARYMIME"};
  } else if (msg.eight_bit && !msg.binary && !caps_.eightbitmime) {
    why = {554, "5.6.3", "8-bit content, and the server does not offer 8BITMIME"};
  } else if (msg.smtputf8 && !caps_.smtputf8) {
    why = {553, "5.6.7", "internationalised message, and the server does not offer SMTPUTF8"};
  } else {
    return false;
  }
  transaction& t = txns_.emplace_back();
  t.msg = &msg;
  t.failed = true;
  t.local = true;
  t.result.final = why;
  t.result.recipients.assign(msg.recipients.size(), why);
  // Behind a transaction still in flight it waits, so message_done stays in send() order.
  if (txns_.size() > 1) return true;
  finish_front();
  become_ready();
  return true;
}

void client::compose_mail(const outgoing_message& msg) {
  out_ += "MAIL FROM:<";
  out_ += msg.mail_from;
  out_ += '>';
  if (caps_.size_offered) {
    out_ += " SIZE=";
    out_ += std::to_string(msg.content_size());
  }
  // refuse_locally() saw BINARYMIME (with BDAT) or 8BITMIME offered.
  if (msg.binary) out_ += " BODY=BINARYMIME";
  else if (msg.eight_bit) out_ += " BODY=8BITMIME";
  if (msg.smtputf8) out_ += " SMTPUTF8";
  if (caps_.dsn && !msg.dsn_mail_params.empty()) {
    out_ += ' ';
    out_ += msg.dsn_mail_params;
  }
  if (!msg.mail_params.empty()) {
    out_ += ' ';
    out_ += msg.mail_params;
  }
  out_ += "\r\n";
}

void client::append_rcpt(const outgoing_message& msg, size_t i) {
  out_ += "RCPT TO:<";
  out_ += msg.recipients[i];
  out_ += '>';
  if (i < msg.rcpt_params.size() && !msg.rcpt_params[i].empty()) {
    out_ += ' ';
    out_ += msg.rcpt_params[i];
  }
  if (caps_.dsn && i < msg.dsn_rcpt_params.size() && !msg.dsn_rcpt_params[i].empty()) {
    out_ += ' ';
    out_ += msg.dsn_rcpt_params[i];
  }
  out_ += "\r\n";
}

void client::send_next_lockstep(transaction& t) {
  if (t.next_rcpt < t.msg->recipients.size()) {
    append_rcpt(*t.msg, t.next_rcpt++);
    t.pending.push_back(expect::rcpt);
  } else if (t.rcpt_accepted > 0) {
    if (t.bdat) return start_bdat(t);
    out_ += "DATA\r\n";
    t.pending.push_back(expect::data);
  }
}

// Replies arrive in command order, so each belongs to the oldest transaction in flight.
void client::on_transaction_reply(const reply& r) {
  // The content is not out yet, so nothing can be its reply. (While a BDAT chunk is being
  // written, replies to what went before it may come.)
  if (content_due_ && (txns_.empty() || !txns_.front().bdat || txns_.front().pending.empty()))
    return fail("reply " + std::to_string(r.code) + " before the content was sent");
  if (txns_.empty() || txns_.front().pending.empty()) return fail("unexpected reply " + std::to_string(r.code));
  transaction& t = txns_.front();
  expect e = t.pending.front();
  t.pending.pop_front();
  switch (e) {
    case expect::mail:
      if (r.positive()) {
        t.mail_ok = true;
        if (!pipelined_) send_next_lockstep(t);
      } else {
        t.failed = true;
        t.result.final = r;
      }
      break;
    case expect::rcpt: {
      size_t idx = t.rcpt_replies++;
      if (idx >= t.result.recipients.size()) return fail("more RCPT replies than recipients");
      if (r.positive() && t.mail_ok) {
        ++t.rcpt_accepted;
        t.accepted_index.push_back(idx);
      } else {
        // After a refused MAIL the 503s to pipelined RCPTs say less than the refusal.
        t.result.recipients[idx] = t.mail_ok ? r : t.result.final;
      }
      if (!pipelined_) {
        send_next_lockstep(t);
      } else if (t.bdat && !t.bdat_started && t.rcpt_replies == t.msg->recipients.size() && t.mail_ok &&
                 t.rcpt_accepted > 0) {
        start_bdat(t);  // larger content: now that a recipient is known to take it
      }
      break;
    }
    case expect::bdat:
      if (r.code >= 200 && r.code < 300) {
        if (!pipelined_) send_chunks(t);
      } else if (r.code < 400) {
        return fail("reply " + std::to_string(r.code) + " to BDAT");
      } else {
        // RFC 3030 2: no further chunk goes after a refused one, and the transaction is
        // reset. The refusal is every accepted recipient's result.
        t.bdat_failed = true;
        if (!t.failed) {
          t.failed = true;
          if (t.rcpt_accepted > 0) t.result.final = r;
        }
      }
      break;
    case expect::bdat_last:
      if (r.code >= 300 && r.code < 400) return fail("reply " + std::to_string(r.code) + " to BDAT LAST");
      if (!r.positive()) t.bdat_failed = true;
      if (!t.failed && t.rcpt_accepted > 0) {
        t.result.final = r;
        for (size_t idx : t.accepted_index) t.result.recipients[idx] = r;
      }
      break;
    case expect::data:
      if (r.code == 354) {
        t.content_sent = true;
        if (t.failed || t.rcpt_accepted == 0) {
          // RFC 2920 3.1: a 354 after every RCPT failed still needs the terminating dot.
          out_ += ".\r\n";
          t.failed = true;
          // An LMTP server answers the dot once per accepted recipient (RFC 2033 4.2): here
          // never, and waiting for a reply would stall the session until its timeout.
          if (!settings_.lmtp || t.rcpt_accepted > 0) t.pending.push_back(expect::content);
        } else {
          if (t.msg->chunked_content) {
            content_due_ = true;
            emit(client_event::kind::content_due);
            events_.back().message = t.msg;
          } else {
            dot_stuff(t.msg->content, out_);
          }
          if (settings_.lmtp) {
            for (size_t i = 0; i < t.rcpt_accepted; ++i) t.pending.push_back(expect::lmtp_content);
          } else {
            t.pending.push_back(expect::content);
          }
        }
        // RFC 2920 3.1 lets the next MAIL share a group with the previous content.
        if (can_pipeline_next() && !ready_emitted_) {
          ready_emitted_ = true;
          emit(client_event::kind::ready);
        }
      } else if (r.positive()) {
        // Only 354 lets the content go; a 250 here would report a message delivered that
        // was never sent (found by tests/fuzz/smtp_client).
        return fail("reply " + std::to_string(r.code) + " to DATA instead of 354");
      } else if (!t.failed) {
        t.failed = true;
        // With every RCPT refused the DATA refusal (503/554) says less than the RCPT one.
        if (t.rcpt_accepted > 0) t.result.final = r;
      }
      break;
    case expect::content:
      if (!t.failed) {
        t.result.final = r;
        for (size_t idx : t.accepted_index) t.result.recipients[idx] = r;
      }
      break;
    case expect::lmtp_content: {
      size_t idx = t.accepted_index[t.lmtp_seen++];
      t.result.recipients[idx] = r;
      break;
    }
  }
  if (!t.pending.empty()) return;
  if (t.bdat && content_due_) return;  // a chunk is being written: its reply is still to come
  if (settings_.lmtp && t.lmtp_seen > 0 && !t.failed) {
    const reply* first_ok = nullptr;
    const reply* first_bad = nullptr;
    for (size_t idx : t.accepted_index) {
      const reply& x = t.result.recipients[idx];
      if (x.positive() && !first_ok) first_ok = &x;
      if (!x.positive() && !first_bad) first_bad = &x;
    }
    t.result.final = first_ok ? *first_ok : *first_bad;
  }
  // The end-of-data reply closes the transaction either way; otherwise a transaction
  // opened by an accepted MAIL must be reset before the next one. (A second
  // transaction only exists once the first has sent its content, so no RSET can be
  // needed while another transaction is in flight.)
  // After BDAT the LAST reply closes it too, unless a chunk was refused (RFC 3030 wants RSET).
  bool need_rset = t.mail_ok && (!t.content_sent || t.bdat_failed);
  finish_front();
  // Messages refused locally behind this one have their turn now.
  while (!txns_.empty() && txns_.front().local) finish_front();
  if (!txns_.empty()) return;
  if (quit_after_content_) {
    // quit() came while BDAT chunks were still to go; none will now (refused, or nobody took them).
    quit_after_content_ = false;
    quit();
  }
  if (need_rset && !quit_pending_) {  // a QUIT already sent ends the transaction anyway
    out_ += "RSET\r\n";
    state_ = state::rset;
  } else if (quit_pending_) {
    state_ = state::quit;
  } else {
    become_ready();
  }
}

void client::finish_front() {
  transaction& t = txns_.front();
  message_result& res = t.result;
  if (res.final.code == 0 && t.rcpt_accepted == 0 && t.rcpt_replies > 0) {
    // Every recipient was refused: the last refusal speaks for the message.
    for (auto it = res.recipients.rbegin(); it != res.recipients.rend(); ++it) {
      if (it->code != 0) {
        res.final = *it;
        break;
      }
    }
  }
  for (auto& x : res.recipients)
    if (x.code == 0) x = res.final;
  ++messages_done_;
  emit(client_event::kind::message_done);
  events_.back().result = std::move(res);
  txns_.pop_front();
}

// Ends every transaction in flight with `why` (unless it already failed otherwise).
void client::abort_transactions(const reply& why) {
  content_due_ = false;
  while (!txns_.empty()) {
    transaction& t = txns_.front();
    if (!t.failed) {
      t.failed = true;
      t.result.final = why;
    }
    finish_front();
  }
}

void client::fail(std::string detail) {
  const waiting_for at = waiting();
  abort_transactions(reply{0, "", "protocol error: " + detail});
  state_ = state::closed;
  emit(client_event::kind::protocol_error);
  events_.back().detail = std::move(detail);
  events_.back().at = at;
}

// The server cannot serve what the settings require: leave politely.
void client::give_up(waiting_for at, std::string detail) {
  abort_transactions(reply{0, "", detail});
  out_ += "QUIT\r\n";
  state_ = state::closed;
  emit(client_event::kind::closed);
  events_.back().why = reply{0, "", detail};
  events_.back().detail = std::move(detail);
  events_.back().at = at;
}

void client::quit() {
  if (state_ == state::closed || state_ == state::quit || quit_pending_) return;
  if (content_pending()) {  // content is still to go (being written, or BDAT chunks): QUIT follows it
    quit_after_content_ = true;
    return;
  }
  out_ += "QUIT\r\n";
  // Behind a transaction still awaiting its end-of-data reply (or an RSET), QUIT
  // takes effect once those replies are in.
  if (state_ == state::transaction || state_ == state::rset) {
    quit_pending_ = true;
  } else {
    state_ = state::quit;
  }
}

void client::tls_started() {
  tls_active_ = true;
  caps_ = capabilities{};
  send_helo();
}

void client::content_written() {
  if (!content_due_) return;
  content_due_ = false;
  if (!txns_.empty() && txns_.back().bdat_started) {
    transaction& t = txns_.back();
    chunk_written(t);
    if (pipelined_) send_chunks(t);
  }
  if (quit_after_content_ && !content_pending()) {
    quit_after_content_ = false;
    quit();
  } else if (can_pipeline_next() && !ready_emitted_) {
    ready_emitted_ = true;
    emit(client_event::kind::ready);
  }
}

void client::connection_lost(std::string_view why) {
  if (state_ == state::closed) return;
  const waiting_for at = waiting();
  abort_transactions(reply{0, "", std::string(why)});
  state_ = state::closed;
  emit(client_event::kind::closed);
  events_.back().why = reply{0, "", std::string(why)};
  events_.back().at = at;
}

}  // namespace sluice::smtp
