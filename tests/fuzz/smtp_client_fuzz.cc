// smtp_client_fuzz.cc: libFuzzer driver for the SMTP/LMTP client state machine (smtp/client.h).
// Untrusted input: the payload is server bytes (greeting, EHLO reply, per-command replies).
// Covers LMTP (a reply per accepted recipient after the dot) and STARTTLS: replies pipelined
// behind the 220 go-ahead, or sent before the handshake, are an injection and never believed.
// And BDAT (RFC 3030) whenever the server offers CHUNKING: chunks of 1 to 16 octets, BINARYMIME
// content, replies to chunks (refusals, 354s, replies before a chunk is out) anywhere.
#include <algorithm>
#include <cstdint>
#include <deque>
#include <string>
#include <string_view>
#include <vector>

#include "smtp/client.h"
#include "fuzz_util.h"

using sluice::fuzz::bits;
using sluice::fuzz::input_stream;
using namespace sluice::smtp;

namespace {

// What nothing may do before TLS when the settings require it (RFC 3207 5, CVE-2011-0411):
// no envelope, no credentials in clear.
bool sends_mail_or_credentials(std::string_view out) {
  return out.find("MAIL FROM") != out.npos || out.find("RCPT TO") != out.npos || out.find("AUTH ") != out.npos;
}

// The last line of everything fed so far, when the input ends exactly at a line end.
std::string_view last_whole_line(std::string_view fed) {
  if (fed.empty() || fed.back() != '\n') return {};
  fed.remove_suffix(1);
  size_t nl = fed.rfind('\n');
  return nl == fed.npos ? fed : fed.substr(nl + 1);
}

// How many times the client ended data ("." alone on a line, or a BDAT LAST command).
size_t count_ends_of_data(std::string_view out) {
  size_t n = 0;
  for (size_t at = out.find("\r\n.\r\n"); at != out.npos; at = out.find("\r\n.\r\n", at + 3)) ++n;
  for (size_t at = out.find(" LAST\r\n"); at != out.npos; at = out.find(" LAST\r\n", at + 1)) ++n;
  return n;
}

// The size in the BDAT command that output() ends with when a chunk is due.
uint64_t announced_size(std::string_view out) {
  size_t cmd = out.rfind("BDAT ");
  FUZZ_CHECK(cmd != out.npos && out.ends_with("\r\n"));
  uint64_t n = 0;
  for (size_t i = cmd + 5; i < out.size() && out[i] >= '0' && out[i] <= '9'; ++i) n = n * 10 + uint64_t(out[i] - '0');
  return n;
}

// The length of the next line of the input, its LF included (or of the rest).
size_t next_line_length(const input_stream& in) {
  input_stream copy = in;
  std::string_view rest = copy.rest();
  size_t nl = rest.find('\n');
  return nl == rest.npos ? rest.size() : nl + 1;
}

}  // namespace

// Input: flags (bit 0 LMTP, 1 no PIPELINING, 2 pipeline the next message, 3 STARTTLS required,
// 4 AUTH, 5 AUTH only over TLS, 6 start TLS only after the next read, 7 chunked content), two
// seed bytes for the read splits and choices (top bit: one line per read), then the server's bytes.
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  input_stream in(data, size);
  uint8_t flags = in.byte();
  uint64_t seed = (uint64_t{in.byte()} << 8) | in.byte();
  bits b(seed);
  const bool line_reads = seed & 0x8000;  // every read one whole line, as a line-buffered server sends

  client_settings s;
  s.helo = "client.fuzz.test";
  s.lmtp = flags & 1;
  s.pipelining = !(flags & 2);
  s.pipeline_next_message = flags & 4;
  s.starttls = flags & 8;
  if (flags & 16) {
    s.auth_user = "user";
    s.auth_password = "secret";
  }
  s.auth_needs_tls = flags & 32;
  const bool late_tls = flags & 64;
  const bool chunked = flags & 128;
  s.bdat_chunk_size = 1 + (seed & 15);
  static const std::string_view chunk_parts[] = {"Subject: x\r\n", "\r\n", ".line\r\n"};
  // The client keeps pointers to messages until message_done; a deque never moves them.
  std::deque<outgoing_message> msgs;
  client c(s);
  size_t in_total = 0, out_total = 0;
  size_t sent = 0, done = 0;
  bool quit_sent = false;
  bool tls_pending = false;  // need_tls seen, tls_started() not called yet
  bool content_pending = false;
  bool due_bdat = false;                     // the content due is a BDAT chunk: due_octets
  std::vector<std::string_view> due_octets;
  uint64_t due_announced = 0;                // the size in its BDAT command
  std::string fed;           // every server byte so far
  std::string clear_out;     // everything the client wrote before TLS
  std::string all_out;       // everything the client wrote
  size_t accepted = 0;       // messages reported accepted
  auto on_done = [&](const client_event& ev) {
    FUZZ_CHECK(done < sent);
    const outgoing_message& m = msgs[done];
    FUZZ_CHECK(ev.result.recipients.size() == m.recipients.size());
    // A message is accepted only for recipients that were: LMTP's final reply is the first
    // positive per-recipient one, SMTP's end-of-data reply applies to every accepted one.
    if (ev.result.accepted()) FUZZ_CHECK(ev.result.accepted_recipients() > 0);
    // BINARYMIME only ever goes with BDAT, to a server that offers both.
    if (m.binary && ev.result.accepted()) FUZZ_CHECK(c.caps().chunking && c.caps().binarymime && !s.lmtp);
    auto first_ok = std::find_if(ev.result.recipients.begin(), ev.result.recipients.end(),
                                 [](const reply& r) { return r.positive(); });
    const int final_code = ev.result.final.code;
    // LMTP: unless the session ended (0, 421) midway, the message's reply is the first positive
    // per-recipient one when there is one.
    if (s.lmtp && first_ok != ev.result.recipients.end() && final_code != 0 && final_code != 421)
      FUZZ_CHECK(first_ok->code == final_code && first_ok->text == ev.result.final.text);
    if (ev.result.accepted()) {
      // Never accepted unless its content went out: one end of data per accepted message at least.
      ++accepted;
      FUZZ_CHECK(accepted <= count_ends_of_data(all_out + c.output()));
    }
    if (!s.lmtp && ev.result.accepted()) {
      for (const auto& r : ev.result.recipients) FUZZ_CHECK(!r.positive() || r.code == ev.result.final.code);
    }
    if (s.starttls && ev.result.accepted()) FUZZ_CHECK(c.tls_active());  // never delivered in clear
    ++done;
  };
  while (!in.empty()) {
    std::string_view piece = in.chunk(line_reads ? next_line_length(in) : 1 + (b.next() ? b.pick(8) : b.pick(1024)));
    in_total += piece.size();
    fed.append(piece);
    const bool was_closed = c.is_closed();
    c.feed(piece);
    if (tls_pending) {
      // Server bytes between the go-ahead and the handshake: an injection, never a reply.
      FUZZ_CHECK(c.is_closed());
      tls_pending = false;
    }
    client_event ev;
    while (c.next_event(ev)) {
      FUZZ_CHECK(!tls_pending || ev.what == client_event::kind::message_done ||
                 ev.what == client_event::kind::protocol_error || ev.what == client_event::kind::closed);
      switch (ev.what) {
        case client_event::kind::ready:
          FUZZ_CHECK(!s.starttls || c.tls_active());
          if (!quit_sent && sent < 4 && b.pick(4) != 0) {
            outgoing_message& m = msgs.emplace_back();
            m.mail_from = b.next() ? "" : "sender@fuzz.test";
            size_t n = 1 + b.pick(3);
            for (size_t i = 0; i < n; ++i) m.recipients.push_back("rcpt" + std::to_string(i) + "@fuzz.test");
            m.content = b.next() ? "Subject: x\r\n\r\n.line\r\n" : "";
            if (chunked) {
              m.chunks = chunk_parts;
              m.chunked_content = true;
            }
            if (b.next()) m.mail_params = "BODY=8BITMIME";
            else if (b.next()) m.binary = m.eight_bit = true;
            if (b.next()) m.rcpt_params = {"NOTIFY=FAILURE"};
            c.send(m);
            ++sent;
          } else if (!quit_sent) {
            c.quit();
            quit_sent = true;
          }
          break;
        case client_event::kind::message_done:
          on_done(ev);
          break;
        case client_event::kind::need_tls: {
          FUZZ_CHECK(!c.tls_active());
          // The go-ahead must have been the last thing read: bytes pipelined behind it came in
          // clear, so the client may only go on when the read ended with the 220's last line.
          if (!c.is_closed()) {
            std::string_view line = last_whole_line(fed);
            FUZZ_CHECK(line.size() >= 3 && line.substr(0, 3) == "220" && (line.size() == 3 || line[3] != '-'));  // "220" alone is a whole reply
          }
          tls_pending = true;
          break;
        }
        case client_event::kind::content_due:
          FUZZ_CHECK(chunked && ev.message != nullptr && ev.message->chunked_content);
          FUZZ_CHECK(!content_pending);
          if (ev.bdat) {
            due_octets.assign(ev.segments.begin(), ev.segments.end());
            due_announced = announced_size(c.output());
          }
          due_bdat = ev.bdat;
          content_pending = true;
          break;
        default:
          break;
      }
    }
    // The caller writes what is due (with PIPELINING the next BDAT chunk may be due at once).
    while (content_pending && b.pick(4) != 0) {
      if (c.is_closed()) {  // ended under the caller: nothing more is written
        content_pending = false;
        break;
      }
      if (!due_bdat) {
        c.mutable_output().append("Subject: x\r\n\r\n..line\r\n.\r\n");  // the chunks, as the caller writes them
      } else {
        // Exactly the size its command announced follows.
        size_t octets = 0;
        for (std::string_view v : due_octets) octets += v.size();
        FUZZ_CHECK(due_announced == octets);
        for (std::string_view v : due_octets) c.mutable_output().append(v);
      }
      content_pending = false;
      c.content_written();
      while (c.next_event(ev)) {
        if (ev.what == client_event::kind::message_done) on_done(ev);
        if (ev.what == client_event::kind::content_due) {
          FUZZ_CHECK(ev.bdat);
          due_octets.assign(ev.segments.begin(), ev.segments.end());
          due_announced = announced_size(c.output());
          due_bdat = true;
          content_pending = true;
        }
      }
    }
    if (!c.tls_active()) clear_out.append(c.output());
    if (tls_pending && !c.is_closed() && (!late_tls || in.empty())) {
      tls_pending = false;
      all_out += c.output();
      out_total += c.output().size();
      c.consume_output(c.output().size());  // flushed in clear; the EHLO goes over TLS
      c.tls_started();
    }
    if (was_closed) FUZZ_CHECK(c.output().empty());
    all_out += c.output();
    out_total += c.output().size();
    c.consume_output(c.output().size());
    FUZZ_CHECK(c.in_flight() <= 2);
    FUZZ_CHECK(out_total <= 64 * in_total + 4096);
    if (c.is_closed()) break;
  }
  if (s.starttls) FUZZ_CHECK(!sends_mail_or_credentials(clear_out));
  if (s.auth_needs_tls) FUZZ_CHECK(clear_out.find("AUTH ") == clear_out.npos);
  c.connection_lost("fuzz input ended");
  client_event ev;
  while (c.next_event(ev)) {
    if (ev.what == client_event::kind::message_done) on_done(ev);
  }
  FUZZ_CHECK(done == sent);  // every message sent gets exactly one outcome
  return 0;
}
