// smtp_client_fuzz.cc: libFuzzer driver for the SMTP/LMTP client state machine (smtp/client.h).
// Untrusted input: the payload is server bytes (greeting, EHLO reply, per-command replies).
#include <cstdint>
#include <deque>
#include <string>

#include "smtp/client.h"
#include "fuzz_util.h"

using sluice::fuzz::bits;
using sluice::fuzz::input_stream;
using namespace sluice::smtp;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  input_stream in(data, size);
  uint8_t flags = in.byte();
  uint64_t seed = (uint64_t{in.byte()} << 8) | in.byte();
  bits b(seed);

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
  // The client keeps pointers to messages until message_done; a deque never moves them.
  std::deque<outgoing_message> msgs;
  client c(s);
  size_t in_total = 0, out_total = 0;
  size_t sent = 0, done = 0;
  bool quit_sent = false;
  while (!in.empty()) {
    std::string_view piece = in.chunk(1 + (b.next() ? b.pick(8) : b.pick(1024)));
    in_total += piece.size();
    c.feed(piece);
    client_event ev;
    while (c.next_event(ev)) {
      switch (ev.what) {
        case client_event::kind::ready:
          if (!quit_sent && sent < 4 && b.pick(4) != 0) {
            outgoing_message& m = msgs.emplace_back();
            m.mail_from = b.next() ? "" : "sender@fuzz.test";
            size_t n = 1 + b.pick(3);
            for (size_t i = 0; i < n; ++i) m.recipients.push_back("rcpt" + std::to_string(i) + "@fuzz.test");
            m.content = b.next() ? "Subject: x\r\n\r\n.line\r\n" : "";
            if (b.next()) m.mail_params = "BODY=8BITMIME";
            if (b.next()) m.rcpt_params = {"NOTIFY=FAILURE"};
            c.send(m);
            ++sent;
          } else if (!quit_sent) {
            c.quit();
            quit_sent = true;
          }
          break;
        case client_event::kind::message_done:
          FUZZ_CHECK(done < sent);
          FUZZ_CHECK(ev.result.recipients.size() == msgs[done].recipients.size());
          ++done;
          break;
        case client_event::kind::need_tls:
          c.tls_started();
          break;
        default:
          break;
      }
    }
    out_total += c.output().size();
    c.consume_output(c.output().size());
    FUZZ_CHECK(c.in_flight() <= 2);
    FUZZ_CHECK(out_total <= 64 * in_total + 4096);
    if (c.is_closed()) break;
  }
  c.connection_lost("fuzz input ended");
  client_event ev;
  while (c.next_event(ev)) {
    if (ev.what == client_event::kind::message_done) ++done;
  }
  FUZZ_CHECK(done == sent);  // every message sent gets exactly one outcome
  return 0;
}
