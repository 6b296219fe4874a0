// client_bdat_test.cc: the client's BDAT (RFC 3030): chunk planning, pipelined and lock-step chunks, BINARYMIME, hostile replies.
// Untrusted input: none (the server replies are the test's own script).
#include <criterion/criterion.h>

#include <string>
#include <string_view>
#include <vector>

#include "client_fixture.h"
#include "smtp/client.h"
#include "smtp/data_segments.h"

using namespace sluice::smtp;
using namespace std::literals;
using client_test::drain;
using client_test::take;

namespace {

const std::string ehlo_chunking =
    "250-mx hello\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-CHUNKING\r\n250 BINARYMIME\r\n";
const std::string ehlo_lockstep = "250-mx hello\r\n250-8BITMIME\r\n250-CHUNKING\r\n250 BINARYMIME\r\n";

void greet(client& c, const std::string& ehlo) {
  c.feed("220 mx ESMTP\r\n");
  take(c);
  c.feed(ehlo);
  auto ev = drain(c);
  cr_assert(ev.size() == 1 && ev[0].what == client_event::kind::ready, "not ready after EHLO");
}

outgoing_message message(std::string_view content, std::vector<std::string> rcpts = {"b@y", "c@y"}) {
  outgoing_message m;
  m.mail_from = "a@x";
  m.recipients = std::move(rcpts);
  m.content = content;
  return m;
}

std::string joined(std::span<const std::string_view> segs) {
  std::string s;
  for (auto v : segs) s += v;
  return s;
}

}  // namespace

Test(smtp_bdat_plan, binary_is_cut_as_it_is_and_text_repaired_without_stuffing) {
  const std::string_view parts[] = {"ab\0\n."sv, "\rcd"sv, ""sv, "efgh"sv};
  bdat_plan p;
  plan_bdat(parts, true, 4, p);
  cr_assert_eq(p.chunks(), 3u);
  cr_assert_eq(p.chunk_size[0], 4u);
  cr_assert_eq(p.chunk_size[1], 4u);
  cr_assert_eq(p.chunk_size[2], 4u);
  cr_assert_eq(joined(p.chunk(0)), "ab\0\n"s);
  cr_assert_eq(joined(p.chunk(1)), ".\rcd");
  cr_assert_eq(joined(p.chunk(2)), "efgh", "content that fills its chunks exactly: the last full one is LAST");
  cr_assert_eq(p.total(), 12u);

  // Text: bare LF and CR completed, NUL out, no dot doubled, a final CRLF, no terminator.
  plan_bdat(parts, false, 1000, p);
  cr_assert_eq(p.chunks(), 1u);
  cr_assert_eq(joined(p.chunk(0)), "ab\r\n.\r\ncdefgh\r\n");
  cr_assert_eq(p.chunk_size[0], joined(p.chunk(0)).size());

  // Empty content: one chunk of 0 octets.
  plan_bdat({}, false, 10, p);
  cr_assert_eq(p.chunks(), 1u);
  cr_assert_eq(p.chunk_size[0], 0u);
  cr_assert(p.chunk(0).empty());
}

// Small content rides behind the RCPTs in one write: MAIL, RCPT, BDAT n LAST and the octets.
Test(smtp_client_bdat, small_message_is_one_bdat_last_behind_the_rcpts) {
  client_settings s;
  client c(s);
  greet(c, ehlo_chunking);
  outgoing_message m = message("Subject: x\r\n\r\n.dot\r\n");
  c.send(m);
  const std::string sent = take(c);
  cr_assert_str_eq(sent.c_str(),
                   "MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nRCPT TO:<c@y>\r\nBDAT 20 LAST\r\nSubject: x\r\n\r\n.dot\r\n");
  cr_assert(c.waiting() == waiting_for::mail);
  c.feed("250 ok\r\n250 ok\r\n550 5.1.1 no c\r\n");
  cr_assert(c.waiting() == waiting_for::final_dot);
  c.feed("250 2.0.0 queued\r\n");
  auto ev = drain(c);
  cr_assert_eq(ev.size(), 2u);
  cr_assert(ev[0].what == client_event::kind::message_done);
  cr_assert_eq(ev[0].result.recipients[0].code, 250);
  cr_assert_eq(ev[0].result.recipients[1].code, 550);
  cr_assert(ev[1].what == client_event::kind::ready, "no RSET after a LAST that was taken");
  cr_assert(c.output().empty(), "%s", c.output().c_str());
}

// BINARYMIME goes only to a server offering CHUNKING and BINARYMIME, as it is, with BODY=BINARYMIME.
Test(smtp_client_bdat, binarymime_needs_chunking_and_binarymime) {
  const std::string content = "bin\0\n\r.\r\n"s;
  for (const std::string& ehlo :
       {"250-mx\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 CHUNKING\r\n"s, "250-mx\r\n250-PIPELINING\r\n250 BINARYMIME\r\n"s}) {
    client_settings s;
    client c(s);
    greet(c, ehlo);
    outgoing_message m = message(content);
    m.binary = m.eight_bit = true;
    c.send(m);
    auto ev = drain(c);
    cr_assert_eq(ev.size(), 2u);
    cr_assert_eq(ev[0].result.final.code, 554);
    cr_assert_str_eq(ev[0].result.recipients[1].enhanced.c_str(), "5.6.3");
    cr_assert(c.output().empty(), "%s", c.output().c_str());
  }
  // Turned off in the settings: refused even where offered.
  client_settings off;
  off.chunking = false;
  client o(off);
  greet(o, ehlo_chunking);
  outgoing_message mo = message(content);
  mo.binary = mo.eight_bit = true;
  o.send(mo);
  auto ev = drain(o);
  cr_assert_eq(ev[0].result.final.code, 554);
  cr_assert(o.output().empty());
  outgoing_message text = message("t\r\n");
  o.send(text);
  cr_assert(take(o).ends_with("DATA\r\n"), "chunking off: text goes with DATA");

  client_settings s;
  client c(s);
  greet(c, ehlo_chunking);
  outgoing_message m = message(content);
  m.binary = m.eight_bit = true;
  c.send(m);
  cr_assert_eq(take(c), "MAIL FROM:<a@x> BODY=BINARYMIME\r\nRCPT TO:<b@y>\r\nRCPT TO:<c@y>\r\nBDAT 9 LAST\r\n" + content);
}

// Content larger than what rides behind the RCPTs waits for their replies; then every chunk
// goes pipelined, each written by the caller (content_due per chunk, the command already in
// output()), and replies to earlier chunks may come while a later one is written.
Test(smtp_client_bdat, chunked_content_in_pipelined_chunks) {
  client_settings s;
  s.bdat_chunk_size = 40'000;
  client c(s);
  greet(c, ehlo_chunking);
  const std::string body(100'000, 'x');
  const std::string_view parts[] = {std::string_view(body).substr(0, 30'000), std::string_view(body).substr(30'000)};
  outgoing_message m = message("");
  m.binary = m.eight_bit = true;
  m.chunks = parts;
  m.chunked_content = true;
  c.send(m);
  const std::string sent = take(c);
  cr_assert_str_eq(sent.c_str(), "MAIL FROM:<a@x> BODY=BINARYMIME\r\nRCPT TO:<b@y>\r\nRCPT TO:<c@y>\r\n");
  cr_assert(drain(c).empty());
  c.feed("250 ok\r\n250 ok\r\n250 ok\r\n");
  auto ev = drain(c);
  cr_assert_eq(ev.size(), 1u);
  cr_assert(ev[0].what == client_event::kind::content_due && ev[0].bdat && ev[0].chunk == 0);
  cr_assert_eq(take(c), "BDAT 40000\r\n");
  cr_assert_eq(joined(ev[0].segments).size(), 40'000u);
  cr_assert_eq(ev[0].segments.size(), 2u, "a chunk spanning two body chunks points into both");
  cr_assert(c.waiting() == waiting_for::content);
  c.content_written();
  ev = drain(c);
  cr_assert(ev.size() == 1 && ev[0].chunk == 1, "pipelined: the next chunk at once");
  cr_assert_eq(take(c), "BDAT 40000\r\n");
  c.feed("250 2.0.0 chunk 1\r\n");  // the first chunk's reply while the second is written
  cr_assert(drain(c).empty());
  c.content_written();
  ev = drain(c);
  cr_assert(ev.size() == 1 && ev[0].chunk == 2);
  cr_assert_eq(take(c), "BDAT 20000 LAST\r\n");
  cr_assert_eq(joined(ev[0].segments), std::string(20'000, 'x'));
  c.content_written();
  cr_assert(drain(c).empty());
  cr_assert(c.waiting() == waiting_for::bdat, "the second chunk's reply: the data-block timeout");
  c.feed("250 2.0.0 chunk 2\r\n");
  cr_assert(c.waiting() == waiting_for::final_dot, "the LAST chunk's reply: the final-dot timeout");
  c.feed("250 2.0.0 queued\r\n");
  ev = drain(c);
  cr_assert_eq(ev.size(), 2u);
  cr_assert_eq(ev[0].result.accepted_recipients(), 2u);
  cr_assert(ev[1].what == client_event::kind::ready);
}

// Without PIPELINING each chunk waits for the reply to the one before.
Test(smtp_client_bdat, lock_step_chunks_wait_for_each_reply) {
  client_settings s;
  s.bdat_chunk_size = 4;
  client c(s);
  greet(c, ehlo_lockstep);
  outgoing_message m = message("abcdefghij", {"b@y"});
  c.send(m);
  cr_assert_eq(take(c), "MAIL FROM:<a@x>\r\n");
  c.feed("250 ok\r\n");
  cr_assert_eq(take(c), "RCPT TO:<b@y>\r\n");
  c.feed("250 ok\r\n");
  cr_assert_eq(take(c), "BDAT 4\r\nabcd");
  cr_assert(c.waiting() == waiting_for::bdat);
  c.feed("250 ok\r\n");
  cr_assert_eq(take(c), "BDAT 4\r\nefgh");
  c.feed("250 ok\r\n");
  cr_assert_eq(take(c), "BDAT 4 LAST\r\nij\r\n", "text: a final CRLF added (4 octets with it)");
  c.feed("250 2.0.0 queued\r\n");
  auto ev = drain(c);
  cr_assert_eq(ev[0].result.recipients[0].code, 250);
}

// Hostile: a 5xx to a middle chunk ends the message for every accepted recipient with that
// reply; no chunk follows it, later pipelined replies are ignored, and RSET comes before
// anything else (RFC 3030: the transaction is still open).
Test(smtp_client_bdat, refused_middle_chunk_is_every_recipients_outcome_then_rset) {
  for (bool pipelining : {true, false}) {
    client_settings s;
    s.bdat_chunk_size = 4;
    client c(s);
    greet(c, pipelining ? ehlo_chunking : ehlo_lockstep);
    const std::string body(100'000, 'y');
    outgoing_message m = message(body, {"b@y", "c@y", "d@y"});
    c.send(m);
    take(c);
    if (!pipelining) {
      c.feed("250 ok\r\n");
      c.feed("250 ok\r\n");
      c.feed("550 5.1.1 no c\r\n");
      c.feed("250 ok\r\n");
    } else {
      c.feed("250 ok\r\n250 ok\r\n550 5.1.1 no c\r\n250 ok\r\n");
    }
    std::string out = take(c);
    cr_assert(out.find("BDAT 4\r\nyyyy") != std::string::npos, "%s", out.substr(0, 80).c_str());
    const std::size_t sent = pipelining ? 25'001 : 1;  // chunks out before any reply
    c.feed("250 ok\r\n554 5.6.0 chunk refused\r\n");
    out = take(c);
    if (!pipelining) cr_assert_eq(out, "BDAT 4\r\nyyyy" "RSET\r\n");
    for (std::size_t i = 2; i < sent; ++i) c.feed("503 5.5.1 after refusal\r\n");
    auto ev = drain(c);
    cr_assert_eq(ev.size(), 1u, "pipelining %d: %zu events, first %d %s", pipelining, ev.size(),
                 ev.empty() ? -1 : int(ev.back().what), ev.empty() ? "" : ev.back().detail.c_str());
    cr_assert(ev[0].what == client_event::kind::message_done);
    const auto& r = ev[0].result.recipients;
    cr_assert_eq(r[0].code, 554);
    cr_assert_str_eq(r[0].text.c_str(), "chunk refused");
    cr_assert_eq(r[1].code, 550);
    cr_assert_eq(r[2].code, 554);
    if (pipelining) cr_assert_eq(take(c), "RSET\r\n");
    cr_assert(c.waiting() == waiting_for::rset);
    c.feed("250 ok\r\n");
    ev = drain(c);
    cr_assert(ev.size() == 1 && ev[0].what == client_event::kind::ready);
  }
}

// A refused LAST also needs RSET; a 4xx is every accepted recipient's result.
Test(smtp_client_bdat, refused_last_chunk_then_rset) {
  client_settings s;
  client c(s);
  greet(c, ehlo_chunking);
  outgoing_message m = message("x\r\n");
  c.send(m);
  take(c);
  c.feed("250 ok\r\n250 ok\r\n250 ok\r\n452 4.3.1 no room\r\n");
  auto ev = drain(c);
  cr_assert_eq(ev[0].result.recipients[0].code, 452);
  cr_assert_eq(ev[0].result.recipients[1].code, 452);
  cr_assert_eq(take(c), "RSET\r\n");
}

// Hostile: the connection lost after LAST went out, before its reply: every accepted
// recipient ends without a reply (the caller makes that 451 4.4.2).
Test(smtp_client_bdat, connection_lost_after_last_leaves_no_recipient_delivered) {
  client_settings s;
  client c(s);
  greet(c, ehlo_chunking);
  outgoing_message m = message("x\r\n");
  c.send(m);
  take(c);
  c.feed("250 ok\r\n250 ok\r\n550 5.1.1 no c\r\n");
  cr_assert(c.waiting() == waiting_for::final_dot);
  c.connection_lost("connection reset");
  auto ev = drain(c);
  cr_assert_eq(ev.size(), 2u);
  cr_assert(ev[0].what == client_event::kind::message_done);
  cr_assert_eq(ev[0].result.recipients[0].code, 0);
  cr_assert_eq(ev[0].result.recipients[1].code, 550, "the RCPT refusal stays");
  cr_assert(!ev[0].result.accepted());
  cr_assert(ev[1].what == client_event::kind::closed);
}

// Hostile: a reply that comes before the chunk it would answer is out, or a 354 to BDAT,
// is a protocol error: nothing is believed delivered.
Test(smtp_client_bdat, reply_before_the_chunk_is_sent_is_a_protocol_error) {
  client_settings s;
  client c(s);
  greet(c, ehlo_chunking);
  const std::string body(70'000, 'z');
  const std::string_view parts[] = {body};
  outgoing_message m = message("");
  m.chunks = parts;
  m.chunked_content = true;
  c.send(m);
  take(c);
  c.feed("250 ok\r\n250 ok\r\n250 ok\r\n");
  auto ev = drain(c);
  cr_assert(ev.size() == 1 && ev[0].what == client_event::kind::content_due);
  c.feed("250 2.0.0 queued before the octets\r\n");
  ev = drain(c);
  cr_assert_eq(ev.size(), 2u);
  cr_assert(ev[0].what == client_event::kind::message_done);
  cr_assert(!ev[0].result.accepted());
  cr_assert_eq(ev[0].result.recipients[0].code, 0);
  cr_assert(ev[1].what == client_event::kind::protocol_error);

  client d(s);
  greet(d, ehlo_chunking);
  outgoing_message small = message("x\r\n");
  d.send(small);
  d.feed("250 ok\r\n250 ok\r\n250 ok\r\n354 go ahead\r\n");
  ev = drain(d);
  cr_assert(ev.back().what == client_event::kind::protocol_error);
  cr_assert_eq(ev[0].result.recipients[0].code, 0);
}

// QUIT asked for while chunks are still to go waits behind the LAST one.
Test(smtp_client_bdat, quit_waits_for_the_last_chunk) {
  client_settings s;
  s.bdat_chunk_size = 2;
  client c(s);
  greet(c, ehlo_lockstep);
  outgoing_message m = message("abcd", {"b@y"});
  c.send(m);
  c.feed("250 ok\r\n250 ok\r\n");
  take(c);
  c.quit();
  cr_assert(c.output().empty(), "QUIT must not go between chunks: %s", c.output().c_str());
  c.feed("250 ok\r\n");
  cr_assert_eq(take(c), "BDAT 2\r\ncd");
  c.feed("250 ok\r\n");
  cr_assert_eq(take(c), "BDAT 2 LAST\r\n\r\nQUIT\r\n");
  c.feed("250 queued\r\n221 bye\r\n");
  auto ev = drain(c);
  cr_assert_eq(ev.size(), 2u);
  cr_assert_eq(ev[0].result.recipients[0].code, 250);
  cr_assert(ev[1].what == client_event::kind::closed);
}

// LMTP stays on DATA even when the server offers CHUNKING.
Test(smtp_client_bdat, lmtp_keeps_data) {
  client_settings s;
  s.lmtp = true;
  client c(s);
  greet(c, ehlo_chunking);
  outgoing_message m = message("x\r\n");
  c.send(m);
  cr_assert(take(c).ends_with("DATA\r\n"));
}

// Found by tests/fuzz/smtp_client: the reply that makes a chunk due and a reply that ends the
// session in one read. The content_due event is still handled first, after the transaction is
// gone: its segments are the event's own, pointing only into the message's chunks.
Test(smtp_client_bdat, chunk_due_event_outlives_its_transaction) {
  client_settings s;
  client c(s);
  greet(c, ehlo_chunking);
  const std::string body(70'000, 'q');
  const std::string_view parts[] = {body};
  outgoing_message m = message("");
  m.binary = m.eight_bit = true;
  m.chunks = parts;
  m.chunked_content = true;
  c.send(m);
  take(c);
  c.feed("250 ok\r\n250 ok\r\n250 ok\r\nnot a reply\r\n");
  auto ev = drain(c);
  cr_assert_eq(ev.size(), 3u);
  cr_assert(ev[0].what == client_event::kind::content_due);
  cr_assert(ev[1].what == client_event::kind::message_done);
  cr_assert(ev[2].what == client_event::kind::protocol_error);
  std::vector<std::string> filler(64, std::string(48, 'f'));  // reuse what the transaction freed
  cr_assert_eq(joined(ev[0].segments), body);
}

// QUIT asked for while a large message waits for its RCPT replies, and nobody takes it: no
// chunk is sent, and QUIT goes instead of RSET.
Test(smtp_client_bdat, quit_while_waiting_for_rcpts_that_all_fail) {
  client_settings s;
  client c(s);
  greet(c, ehlo_chunking);
  const std::string body(70'000, 'w');
  outgoing_message m = message(body);
  c.send(m);
  take(c);
  c.quit();
  cr_assert(c.output().empty());
  c.feed("250 ok\r\n550 no\r\n550 no\r\n");
  cr_assert_eq(take(c), "QUIT\r\n");
  c.feed("221 bye\r\n");
  auto ev = drain(c);
  cr_assert_eq(ev.size(), 2u);
  cr_assert_eq(ev[0].result.recipients[0].code, 550);
  cr_assert(ev[1].what == client_event::kind::closed);
}
