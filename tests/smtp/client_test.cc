// client_test.cc: the SMTP/LMTP client state machine against scripted server replies.
#include <criterion/criterion.h>

#include <string>
#include <vector>

#include "client_fixture.h"
#include "smtp/client.h"

using namespace sluice::smtp;
using client_test::drain;
using client_test::take;

namespace {

const char* ehlo_pipelining =
    "250-mx.example.com hello\r\n250-PIPELINING\r\n250-SIZE 1000000\r\n250-8BITMIME\r\n"
    "250-AUTH PLAIN LOGIN\r\n250 STARTTLS\r\n";
const char* ehlo_plain = "250-mx.example.com hello\r\n250 8BITMIME\r\n";

// Greets the client through EHLO and returns it ready.
void greet(client& c, const char* ehlo) {
  c.feed("220 mx.example.com ESMTP\r\n");
  std::string out = take(c);
  cr_assert(out == "EHLO localhost\r\n" || out == "LHLO localhost\r\n", "greeting answered with %s", out.c_str());
  c.feed(ehlo);
  auto ev = drain(c);
  cr_assert_eq(ev.size(), 1u);
  cr_assert(ev[0].what == client_event::kind::ready);
}

}  // namespace

Test(smtp_client_reply, multi_line_split_at_every_byte) {
  const std::string wire = "250-mx.example.com\r\n250-PIPELINING\r\n250 2.0.0 SIZE 10\r\n354 go\n";
  reply_parser p;
  std::vector<reply> got;
  for (char ch : wire) {
    p.feed(std::string_view(&ch, 1));
    reply r;
    reply_parser::status st;
    while ((st = p.next(r)) == reply_parser::status::complete) got.push_back(r);
    cr_assert(st == reply_parser::status::need_more);
  }
  cr_assert_eq(got.size(), 2u);
  cr_assert_eq(got[0].code, 250);
  std::string t = got[0].text;
  cr_assert_str_eq(t.c_str(), "mx.example.com\nPIPELINING\nSIZE 10");
  cr_assert_eq(got[1].code, 354);
}

Test(smtp_client_reply, enhanced_code_is_split_off) {
  reply_parser p;
  p.feed("550-5.1.1 no such\r\n550 5.1.1 user here\r\n");
  reply r;
  cr_assert(p.next(r) == reply_parser::status::complete);
  cr_assert_eq(r.code, 550);
  std::string e = r.enhanced, t = r.text;
  cr_assert_str_eq(e.c_str(), "5.1.1");
  cr_assert_str_eq(t.c_str(), "no such\nuser here");
}

Test(smtp_client_reply, mismatched_codes_and_garbage_are_errors) {
  reply_parser a;
  a.feed("250-one\r\n251 two\r\n");
  reply r;
  cr_assert(a.next(r) == reply_parser::status::error);
  reply_parser b;
  b.feed("hello\r\n");
  cr_assert(b.next(r) == reply_parser::status::error);
  reply_parser c;
  c.feed(std::string(reply_parser::max_line + 10, '2'));
  cr_assert(c.next(r) == reply_parser::status::error);
}

Test(smtp_client_caps, ehlo_keywords_parsed) {
  auto caps = capabilities::parse(
      "mx\nPIPELINING\nSIZE 35882577\nAUTH PLAIN LOGIN\nSTARTTLS\nCHUNKING\nSMTPUTF8\nDSN\n8BITMIME");
  cr_assert(caps.pipelining && caps.starttls && caps.chunking && caps.smtputf8 && caps.dsn && caps.eightbitmime);
  cr_assert(caps.size_offered);
  cr_assert_eq(caps.size, 35882577u);
  cr_assert(caps.has_auth("PLAIN") && caps.has_auth("LOGIN") && !caps.has_auth("CRAM-MD5"));
  auto none = capabilities::parse("mx only");
  cr_assert(!none.pipelining && !none.size_offered && none.auth.empty());
}

Test(smtp_client_session, pipelined_message_in_one_write) {
  client_settings s;
  client c(s);
  greet(c, ehlo_pipelining);
  outgoing_message m{"a@x", {"b@y", "c@y"}, "Subject: t\r\n\r\n.hi\r\n", ""};
  c.send(m);
  std::string out = take(c);
  cr_assert_str_eq(out.c_str(), "MAIL FROM:<a@x> SIZE=19\r\nRCPT TO:<b@y>\r\nRCPT TO:<c@y>\r\nDATA\r\n");
  c.feed("250 2.1.0 ok\r\n250 2.1.5 ok\r\n250 2.1.5 ok\r\n354 go\r\n");
  out = take(c);
  cr_assert_str_eq(out.c_str(), "Subject: t\r\n\r\n..hi\r\n.\r\n");
  cr_assert(drain(c).empty());
  c.feed("250 2.6.0 ABC123 Queued mail for delivery\r\n");
  auto ev = drain(c);
  cr_assert_eq(ev.size(), 2u);
  cr_assert(ev[0].what == client_event::kind::message_done);
  cr_assert(ev[0].result.accepted());
  std::string text = ev[0].result.final.text;
  cr_assert_str_eq(text.c_str(), "ABC123 Queued mail for delivery");
  cr_assert_eq(ev[0].result.accepted_recipients(), 2u);
  cr_assert(ev[1].what == client_event::kind::ready);
  c.quit();
  out = take(c);
  cr_assert_str_eq(out.c_str(), "QUIT\r\n");
  c.feed("221 2.0.0 bye\r\n");
  ev = drain(c);
  cr_assert(ev.size() == 1 && ev[0].what == client_event::kind::closed);
}

Test(smtp_client_session, lock_step_without_pipelining) {
  client_settings s;
  client c(s);
  greet(c, ehlo_plain);
  outgoing_message m{"a@x", {"b@y", "c@y"}, "body\r\n", ""};
  c.send(m);
  std::string out = take(c);
  cr_assert_str_eq(out.c_str(), "MAIL FROM:<a@x>\r\n");
  c.feed("250 ok\r\n");
  out = take(c);
  cr_assert_str_eq(out.c_str(), "RCPT TO:<b@y>\r\n");
  c.feed("550 5.1.1 unknown\r\n");
  out = take(c);
  cr_assert_str_eq(out.c_str(), "RCPT TO:<c@y>\r\n");
  c.feed("250 ok\r\n");
  out = take(c);
  cr_assert_str_eq(out.c_str(), "DATA\r\n");
  c.feed("354 go\r\n");
  out = take(c);
  cr_assert_str_eq(out.c_str(), "body\r\n.\r\n");
  c.feed("250 queued\r\n");
  auto ev = drain(c);
  cr_assert_eq(ev.size(), 2u);
  cr_assert(ev[0].result.accepted());
  cr_assert_eq(ev[0].result.recipients[0].code, 550);
  cr_assert_eq(ev[0].result.recipients[1].code, 250);
}

Test(smtp_client_session, refused_mail_needs_no_rset_and_all_rcpts_refused_does) {
  client_settings s;
  client c(s);
  greet(c, ehlo_pipelining);
  outgoing_message m{"a@x", {"b@y"}, "x\r\n", ""};
  c.send(m);
  take(c);
  c.feed("451 4.3.0 try later\r\n503 5.5.1 no mail\r\n554 5.5.1 no valid recipients\r\n");
  auto ev = drain(c);
  cr_assert_eq(ev.size(), 2u);
  cr_assert_eq(ev[0].result.final.code, 451);
  cr_assert_eq(ev[0].result.recipients[0].code, 451);
  cr_assert(ev[1].what == client_event::kind::ready);
  cr_assert(c.output().empty(), "no RSET after a refused MAIL");

  c.send(m);
  take(c);
  c.feed("250 ok\r\n550 5.1.1 no such user\r\n554 5.5.1 no valid recipients\r\n");
  ev = drain(c);
  cr_assert_eq(ev.size(), 1u);
  cr_assert_eq(ev[0].result.final.code, 550, "the RCPT refusal speaks for the message");
  std::string out = take(c);
  cr_assert_str_eq(out.c_str(), "RSET\r\n");
  c.feed("250 2.0.0 ok\r\n");
  ev = drain(c);
  cr_assert(ev.size() == 1 && ev[0].what == client_event::kind::ready);
}

Test(smtp_client_session, refused_data_end_reply_is_the_result) {
  client_settings s;
  client c(s);
  greet(c, ehlo_pipelining);
  outgoing_message m{"a@x", {"b@y"}, "x\r\n", ""};
  c.send(m);
  take(c);
  c.feed("250 ok\r\n250 ok\r\n354 go\r\n552 5.3.4 too big\r\n");
  auto ev = drain(c);
  cr_assert_eq(ev.size(), 2u);
  cr_assert(!ev[0].result.accepted());
  cr_assert_eq(ev[0].result.final.code, 552);
  std::string enh = ev[0].result.final.enhanced;
  cr_assert_str_eq(enh.c_str(), "5.3.4");
  std::string out = take(c);
  cr_assert_str_eq(out.c_str(), "x\r\n.\r\n", "no RSET after an end-of-data reply");
}

Test(smtp_client_session, lmtp_one_reply_per_accepted_recipient) {
  client_settings s;
  s.lmtp = true;
  client c(s);
  greet(c, ehlo_pipelining);
  outgoing_message m{"a@x", {"b@y", "c@y", "d@y"}, "x\r\n", ""};
  c.send(m);
  take(c);
  c.feed("250 ok\r\n250 ok\r\n550 5.1.1 no\r\n250 ok\r\n354 go\r\n250 2.0.0 b delivered\r\n");
  cr_assert(drain(c).empty(), "one LMTP reply per accepted recipient is still missing");
  c.feed("452 4.2.2 d over quota\r\n");
  auto ev = drain(c);
  cr_assert_eq(ev.size(), 2u);
  const auto& r = ev[0].result;
  cr_assert_eq(r.recipients[0].code, 250);
  cr_assert_eq(r.recipients[1].code, 550);
  cr_assert_eq(r.recipients[2].code, 452);
  cr_assert_eq(r.final.code, 250);
  cr_assert_eq(r.accepted_recipients(), 1u);
}

Test(smtp_client_session, replies_split_at_every_byte_boundary) {
  // The server answers the session setup, then (after the client's commands) the
  // pipelined transaction; each part is cut at every byte boundary in turn.
  const std::string setup = "220 hi\r\n" + std::string(ehlo_pipelining);
  const std::string txn = "250 ok\r\n250-ok\r\n250 more\r\n354 go\r\n250-2.6.0 queued\r\n250 2.6.0 as Q1\r\n";
  for (int phase = 0; phase < 3; ++phase) {
    const std::string& part = phase == 0 ? setup : txn;
    for (size_t cut = 1; cut < part.size(); ++cut) {
      client_settings s;
      client c(s);
      outgoing_message m{"a@x", {"b@y"}, "x\r\n", ""};
      std::vector<client_event> all;
      auto pump = [&](std::string_view bytes) {
        if (phase == 2) {  // one byte at a time
          for (char ch : bytes) c.feed(std::string_view(&ch, 1));
        } else {
          c.feed(bytes);
        }
        for (auto& e : drain(c)) {
          if (e.what == client_event::kind::ready && all.empty()) c.send(m);
          all.push_back(std::move(e));
        }
      };
      if (phase == 0) {
        pump(std::string_view(setup).substr(0, cut));
        pump(std::string_view(setup).substr(cut));
        pump(txn);
      } else {
        pump(setup);
        pump(std::string_view(txn).substr(0, cut));
        pump(std::string_view(txn).substr(cut));
      }
      cr_assert_eq(all.size(), 3u, "phase %d cut at %zu", phase, cut);
      cr_assert(all[1].what == client_event::kind::message_done);
      std::string t = all[1].result.final.text;
      cr_assert_str_eq(t.c_str(), "queued\nas Q1", "phase %d cut at %zu", phase, cut);
      if (phase == 2) break;
    }
  }
}

Test(smtp_client_session, starttls_then_auth_plain) {
  client_settings s;
  s.starttls = true;
  s.auth_user = "u";
  s.auth_password = "p";
  client c(s);
  c.feed("220 hi\r\n");
  take(c);
  c.feed(ehlo_pipelining);
  std::string out = take(c);
  cr_assert_str_eq(out.c_str(), "STARTTLS\r\n");
  c.feed("220 go ahead\r\n");
  auto ev = drain(c);
  cr_assert(ev.size() == 1 && ev[0].what == client_event::kind::need_tls);
  c.tls_started();
  out = take(c);
  cr_assert_str_eq(out.c_str(), "EHLO localhost\r\n");
  c.feed(ehlo_pipelining);
  out = take(c);
  cr_assert_str_eq(out.c_str(), "AUTH PLAIN AHUAcA==\r\n");
  c.feed("235 2.7.0 ok\r\n");
  ev = drain(c);
  cr_assert(ev.size() == 1 && ev[0].what == client_event::kind::ready);
  cr_assert(c.tls_active());
}

Test(smtp_client_session, closing_421_and_lost_connection_end_the_message) {
  client_settings s;
  client c(s);
  greet(c, ehlo_pipelining);
  outgoing_message m{"a@x", {"b@y"}, "x\r\n", ""};
  c.send(m);
  c.feed("421 4.3.2 shutting down\r\n");
  auto ev = drain(c);
  cr_assert_eq(ev.size(), 2u);
  cr_assert_eq(ev[0].result.final.code, 421);
  cr_assert(ev[1].what == client_event::kind::closed);
  cr_assert(c.is_closed());

  client d(s);
  greet(d, ehlo_pipelining);
  d.send(m);
  d.connection_lost("reset");
  ev = drain(d);
  cr_assert_eq(ev.size(), 2u);
  cr_assert_eq(ev[0].result.final.code, 0);
  cr_assert(ev[1].what == client_event::kind::closed);
}

Test(smtp_client_session, refused_greeting_and_ehlo_fallback) {
  client_settings s;
  client c(s);
  c.feed("554 5.7.1 go away\r\n");
  auto ev = drain(c);
  cr_assert(ev.size() == 1 && ev[0].what == client_event::kind::closed);
  cr_assert_eq(ev[0].why.code, 554);

  client d(s);
  d.feed("220 old server\r\n");
  take(d);
  d.feed("500 what?\r\n");
  std::string out = take(d);
  cr_assert_str_eq(out.c_str(), "HELO localhost\r\n");
  d.feed("250 hello\r\n");
  ev = drain(d);
  cr_assert(ev.size() == 1 && ev[0].what == client_event::kind::ready);
  cr_assert(!d.caps().pipelining);
}

Test(smtp_client_session, mail_and_rcpt_parameters) {
  client_settings s;
  client c(s);
  greet(c, ehlo_plain);
  outgoing_message m{"", {"b@y", "c@y"}, "x\r\n", "BODY=8BITMIME", {"NOTIFY=FAILURE ORCPT=rfc822;b@y"}};
  c.send(m);
  std::string out = take(c);
  cr_assert_str_eq(out.c_str(), "MAIL FROM:<> BODY=8BITMIME\r\n", "no SIZE when the server did not offer it");
  c.feed("250 ok\r\n");
  out = take(c);
  cr_assert_str_eq(out.c_str(), "RCPT TO:<b@y> NOTIFY=FAILURE ORCPT=rfc822;b@y\r\n");
  c.feed("250 ok\r\n");
  out = take(c);
  cr_assert_str_eq(out.c_str(), "RCPT TO:<c@y>\r\n");
}

Test(smtp_client_session, hostile_server_bytes_never_crash) {
  // Random replies, garbage and over-long lines: the machine must end in a closed or
  // protocol_error state (or keep going) without crashing or growing without bound.
  uint64_t x = 88172645463325252ull;
  auto next = [&] {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return x;
  };
  const char* pieces[] = {"220 hi\r\n", "250-PIPELINING\r\n", "250 ok\r\n", "354 go\r\n", "421 bye\r\n",
                          "550 no\r\n", "250-", "\r\n", "xyz", "999 odd\r\n", "2", "\n", "250 2.6.0 q\r\n"};
  for (int round = 0; round < 300; ++round) {
    client_settings s;
    s.lmtp = round % 2;
    s.pipeline_next_message = round % 3 == 0;
    client c(s);
    outgoing_message m{"a@x", {"b@y", "c@y"}, "x\r\n", ""};
    for (int i = 0; i < 200 && !c.is_closed(); ++i) {
      std::string chunk;
      if (next() % 10 == 0) {
        chunk.assign(next() % 5000, char('0' + next() % 75));
      } else {
        chunk = pieces[next() % (sizeof pieces / sizeof *pieces)];
      }
      c.feed(chunk);
      // Whatever arrives, what is held is one unfinished reply at most (plus the bytes
      // of this feed not yet dropped), never the whole stream.
      cr_assert_leq(c.buffered_input(), 2 * reply_parser::max_reply + chunk.size(),
                    "round %d: %zu bytes held", round, c.buffered_input());
      client_event ev;
      while (c.next_event(ev))
        if (ev.what == client_event::kind::ready) c.send(m);
      c.consume_output(c.output().size());
    }
  }
}

Test(smtp_client_session, endless_multiline_reply_is_refused_not_held) {
  client_settings s;
  client c(s);
  c.feed("220 hi\r\n");
  std::string line = "250-" + std::string(60, 'x') + "\r\n";
  size_t fed = 0;
  for (int i = 0; i < 100000 && !c.is_closed(); ++i) {
    c.feed(line);
    fed += line.size();
    cr_assert_leq(c.buffered_input(), reply_parser::max_reply + line.size());
  }
  cr_assert(c.is_closed(), "a %zu-byte EHLO reply must end the session", fed);
  cr_assert_lt(fed, 2 * reply_parser::max_reply, "refused once past the limit, not later");
}

Test(smtp_client_session, next_mail_rides_with_the_end_of_data) {
  client_settings s;
  s.pipeline_next_message = true;
  client c(s);
  greet(c, ehlo_pipelining);
  outgoing_message m1{"a@x", {"b@y"}, "one\r\n", ""};
  outgoing_message m2{"a@x", {"c@y"}, "two\r\n", ""};
  c.send(m1);
  take(c);
  c.feed("250 ok\r\n250 ok\r\n354 go\r\n");
  auto ev = drain(c);
  cr_assert(ev.size() == 1 && ev[0].what == client_event::kind::ready, "ready as soon as the content is out");
  cr_assert(c.is_ready());
  c.send(m2);
  cr_assert(!c.is_ready(), "two transactions at most");
  std::string out = take(c);
  cr_assert_str_eq(out.c_str(), "one\r\n.\r\nMAIL FROM:<a@x> SIZE=5\r\nRCPT TO:<c@y>\r\nDATA\r\n");
  c.feed("250 2.6.0 Q1 queued\r\n250 ok\r\n250 ok\r\n354 go\r\n");
  ev = drain(c);
  cr_assert_eq(ev.size(), 2u);
  cr_assert(ev[0].what == client_event::kind::message_done);
  std::string t1 = ev[0].result.final.text;
  cr_assert_str_eq(t1.c_str(), "Q1 queued");
  cr_assert(ev[1].what == client_event::kind::ready);
  c.quit();
  out = take(c);
  cr_assert_str_eq(out.c_str(), "two\r\n.\r\nQUIT\r\n");
  c.feed("250 2.6.0 Q2 queued\r\n221 bye\r\n");
  ev = drain(c);
  cr_assert_eq(ev.size(), 2u);
  std::string t2 = ev[0].result.final.text;
  cr_assert_str_eq(t2.c_str(), "Q2 queued");
  cr_assert(ev[1].what == client_event::kind::closed);
}

Test(smtp_client_session, early_ready_is_not_repeated_and_421_ends_both) {
  client_settings s;
  s.pipeline_next_message = true;
  client c(s);
  greet(c, ehlo_pipelining);
  outgoing_message m1{"a@x", {"b@y"}, "one\r\n", ""};
  outgoing_message m2{"a@x", {"c@y"}, "two\r\n", ""};
  c.send(m1);
  c.feed("250 ok\r\n250 ok\r\n354 go\r\n");
  cr_assert_eq(drain(c).size(), 1u);
  c.feed("250 queued\r\n");
  auto ev = drain(c);
  cr_assert(ev.size() == 1 && ev[0].what == client_event::kind::message_done, "no second ready");
  cr_assert(c.is_ready());
  c.send(m1);
  c.feed("250 ok\r\n250 ok\r\n354 go\r\n");
  drain(c);
  c.send(m2);
  c.feed("421 4.3.2 going down\r\n");
  ev = drain(c);
  cr_assert_eq(ev.size(), 3u);
  cr_assert_eq(ev[0].result.final.code, 421);
  cr_assert_eq(ev[1].result.final.code, 421);
  cr_assert(ev[2].what == client_event::kind::closed);
}

// Found by tests/fuzz/smtp_client: a reply that breaks the session arrives in the same
// read as the one that made it ready; the caller answers the queued ready event with
// send(), and that message must still get its message_done (code 0), not vanish.
Test(smtp_client_session, send_after_session_failed_in_same_read_still_completes) {
  client_settings s;
  client c(s);
  c.feed("220 mx ESMTP\r\n");
  take(c);
  c.feed("250 mx\r\n250 unexpected\r\n");  // EHLO accepted, then a reply to nothing
  outgoing_message m{"a@x", {"b@y", "c@y"}, "x\r\n", ""};
  client_event ev;
  bool saw_ready = false;
  int done = 0;
  std::vector<client_event> later;
  while (c.next_event(ev)) {
    if (ev.what == client_event::kind::ready) {
      saw_ready = true;
      c.send(m);
    } else if (ev.what == client_event::kind::message_done) {
      ++done;
      cr_assert_eq(ev.result.final.code, 0);
      cr_assert_eq(ev.result.recipients.size(), 2u);
      cr_assert_not(ev.result.accepted());
    }
  }
  cr_assert(saw_ready);
  cr_assert(c.is_closed());
  cr_assert_eq(done, 1);
  cr_assert_eq(c.in_flight(), 0u);
}

// Found by tests/fuzz/smtp_client: a server answering DATA with 250 instead of 354 made the
// message count as delivered although its content never went out. Only 354 lets the content
// go; any other positive reply to DATA is a protocol error, and the message is not accepted.
Test(smtp_client_session, positive_reply_to_data_other_than_354_is_not_delivery) {
  for (bool lmtp : {false, true}) {
    client_settings s;
    s.lmtp = lmtp;
    client c(s);
    greet(c, ehlo_pipelining);
    outgoing_message m{"a@x", {"b@y"}, "body\r\n", ""};
    c.send(m);
    cr_assert_eq(take(c), "MAIL FROM:<a@x> SIZE=6\r\nRCPT TO:<b@y>\r\nDATA\r\n");
    c.feed("250 ok\r\n250 ok\r\n250 go ahead\r\n");
    std::string out = take(c);
    cr_assert_eq(out.find("body"), std::string::npos, "content sent without 354");
    auto ev = drain(c);
    int done = 0;
    for (const auto& e : ev) {
      if (e.what != client_event::kind::message_done) continue;
      ++done;
      cr_assert_not(e.result.accepted(), "lmtp=%d: message accepted without its content", lmtp);
      cr_assert_eq(e.result.accepted_recipients(), 0u);
    }
    cr_assert_eq(done, 1);
    cr_assert(c.is_closed());
  }
}
