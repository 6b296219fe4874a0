// client_ext_test.cc: the client's extensions: SIZE/8BITMIME/SMTPUTF8 checks, MAIL/RCPT parameters, DSN, AUTH LOGIN,
// the reply it waits for, chunked content (content_due), and the STARTTLS injection guard.
// Untrusted input: none (the server replies are the test's own script).
#include <criterion/criterion.h>

#include <string>
#include <string_view>
#include <vector>

#include "client_fixture.h"
#include "smtp/client.h"

using namespace sluice::smtp;
using client_test::drain;
using client_test::take;

namespace {

void greet(client& c, const std::string& ehlo) {
  c.feed("220 mx ESMTP\r\n");
  take(c);
  c.feed(ehlo);
  auto ev = drain(c);
  cr_assert(ev.size() == 1 && ev[0].what == client_event::kind::ready, "not ready after EHLO");
}

const std::string ehlo_all =
    "250-mx hello\r\n250-PIPELINING\r\n250-SIZE 100\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 DSN\r\n";
const std::string ehlo_bare = "250-mx hello\r\n250 PIPELINING\r\n";

outgoing_message message(std::string_view content = "x\r\n") {
  outgoing_message m;
  m.mail_from = "a@x";
  m.recipients = {"b@y", "c@y"};
  m.content = content;
  return m;
}

}  // namespace

Test(smtp_client_ext, message_over_size_limit_gets_552_without_mail) {
  client_settings s;
  client c(s);
  greet(c, ehlo_all);
  std::string big(101, 'x');
  outgoing_message m = message(big);
  c.send(m);
  cr_assert(c.output().empty(), "no MAIL for a message over the server's SIZE: %s", c.output().c_str());
  auto ev = drain(c);
  cr_assert_eq(ev.size(), 2u);
  cr_assert(ev[0].what == client_event::kind::message_done);
  cr_assert_eq(ev[0].result.recipients.size(), 2u);
  for (const auto& r : ev[0].result.recipients) {
    cr_assert_eq(r.code, 552);
    cr_assert_str_eq(r.enhanced.c_str(), "5.3.4");
  }
  cr_assert(ev[1].what == client_event::kind::ready, "the session stays usable");

  // At the limit it goes, with SIZE= and the parameters the server offers.
  std::string fits(100, 'x');
  outgoing_message ok = message(fits);
  ok.eight_bit = ok.smtputf8 = true;
  ok.dsn_mail_params = "RET=HDRS ENVID=abc";
  ok.dsn_rcpt_params = {"NOTIFY=FAILURE ORCPT=rfc822;b@y"};
  ok.rcpt_params = {"", "XTRA=1"};
  c.send(ok);
  std::string out = take(c);
  cr_assert_str_eq(out.c_str(),
                   "MAIL FROM:<a@x> SIZE=100 BODY=8BITMIME SMTPUTF8 RET=HDRS ENVID=abc\r\n"
                   "RCPT TO:<b@y> NOTIFY=FAILURE ORCPT=rfc822;b@y\r\nRCPT TO:<c@y> XTRA=1\r\nDATA\r\n");
}

Test(smtp_client_ext, eight_bit_and_smtputf8_need_the_extension) {
  client_settings s;
  client c(s);
  greet(c, ehlo_bare);
  outgoing_message m8 = message();
  m8.eight_bit = true;
  c.send(m8);
  auto ev = drain(c);
  cr_assert_eq(ev.size(), 2u);
  cr_assert_eq(ev[0].result.recipients[1].code, 554);
  cr_assert_str_eq(ev[0].result.recipients[1].enhanced.c_str(), "5.6.3");
  cr_assert_eq(ev[0].result.final.code, 554);

  outgoing_message mu = message();
  mu.smtputf8 = true;
  c.send(mu);
  ev = drain(c);
  cr_assert_eq(ev.size(), 2u);
  cr_assert_eq(ev[0].result.recipients[0].code, 553);
  cr_assert_str_eq(ev[0].result.recipients[0].enhanced.c_str(), "5.6.7");
  cr_assert(c.output().empty());

  // Without DSN offered, the DSN parameters stay home; without SIZE, no SIZE=.
  outgoing_message md = message();
  md.dsn_mail_params = "RET=FULL";
  md.dsn_rcpt_params = {"NOTIFY=NEVER", "NOTIFY=SUCCESS"};
  c.send(md);
  std::string out = take(c);
  cr_assert_str_eq(out.c_str(), "MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nRCPT TO:<c@y>\r\nDATA\r\n");
}

// BINARYMIME goes only with BDAT (RFC 3030), which the client does not send: even to a server
// offering everything, such a message ends without a command.
Test(smtp_client_ext, binary_content_is_never_sent_with_data) {
  client_settings s;
  client c(s);
  greet(c, ehlo_all);
  outgoing_message mb = message();
  mb.binary = mb.eight_bit = true;
  c.send(mb);
  auto ev = drain(c);
  cr_assert_eq(ev.size(), 2u);
  cr_assert_eq(ev[0].result.final.code, 554);
  cr_assert_str_eq(ev[0].result.recipients[0].enhanced.c_str(), "5.6.3");
  cr_assert(c.output().empty(), "%s", c.output().c_str());
}

Test(smtp_client_ext, local_refusal_behind_a_pipelined_message_keeps_send_order) {
  client_settings s;
  s.pipeline_next_message = true;
  client c(s);
  greet(c, ehlo_all);
  outgoing_message m1 = message("one\r\n");
  std::string big(200, 'x');
  outgoing_message m2 = message(big);
  c.send(m1);
  take(c);
  c.feed("250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n");
  auto ev = drain(c);
  cr_assert(ev.size() == 1 && ev[0].what == client_event::kind::ready);
  c.send(m2);  // too big: refused locally, but only after m1's answer
  cr_assert(drain(c).empty(), "m2's result must wait for m1's");
  c.feed("250 2.6.0 queued\r\n");
  ev = drain(c);
  cr_assert_eq(ev.size(), 3u);
  cr_assert_eq(ev[0].result.final.code, 250);
  cr_assert_eq(ev[1].result.final.code, 552);
  cr_assert(ev[2].what == client_event::kind::ready);
}

Test(smtp_client_ext, auth_login_when_plain_is_not_offered) {
  client_settings s;
  s.auth_user = "user";
  s.auth_password = "secret";
  client c(s);
  c.feed("220 mx\r\n");
  take(c);
  cr_assert(c.waiting() == waiting_for::helo);
  c.feed("250-mx\r\n250 AUTH LOGIN CRAM-MD5\r\n");
  cr_assert_eq(take(c), "AUTH LOGIN\r\n");
  cr_assert(c.waiting() == waiting_for::auth);
  c.feed("334 VXNlcm5hbWU6\r\n");
  cr_assert_eq(take(c), "dXNlcg==\r\n");
  c.feed("334 UGFzc3dvcmQ6\r\n");
  cr_assert_eq(take(c), "c2VjcmV0\r\n");
  cr_assert(drain(c).empty());
  c.feed("235 2.7.0 ok\r\n");
  auto ev = drain(c);
  cr_assert(ev.size() == 1 && ev[0].what == client_event::kind::ready);

  // A refusal ends the session and says it happened at AUTH.
  client d(s);
  d.feed("220 mx\r\n");
  d.feed("250-mx\r\n250 AUTH LOGIN\r\n");
  d.feed("334 VXNlcm5hbWU6\r\n334 UGFzc3dvcmQ6\r\n535 5.7.8 no\r\n");
  ev = drain(d);
  cr_assert(ev.size() == 1 && ev[0].what == client_event::kind::closed);
  cr_assert_eq(ev[0].why.code, 535);
  cr_assert(ev[0].at == waiting_for::auth);
}

Test(smtp_client_ext, credentials_never_go_out_in_clear_when_tls_is_needed) {
  client_settings s;
  s.auth_user = "user";
  s.auth_password = "secret";
  s.auth_needs_tls = true;
  client c(s);
  c.feed("220 mx\r\n");
  take(c);
  c.feed("250-mx\r\n250 AUTH PLAIN LOGIN\r\n");
  std::string out = take(c);
  cr_assert_str_eq(out.c_str(), "QUIT\r\n");
  auto ev = drain(c);
  cr_assert(ev.size() == 1 && ev[0].what == client_event::kind::closed);
  cr_assert_eq(ev[0].why.code, 0);
  cr_assert(ev[0].at == waiting_for::auth);
}

Test(smtp_client_ext, waiting_for_follows_the_session) {
  client_settings s;
  s.pipelining = false;
  client c(s);
  cr_assert(c.waiting() == waiting_for::greeting);
  c.feed("220 mx\r\n");
  cr_assert(c.waiting() == waiting_for::helo);
  c.feed("250 mx\r\n");
  drain(c);
  cr_assert(c.waiting() == waiting_for::none);
  outgoing_message m = message();
  c.send(m);
  cr_assert(c.waiting() == waiting_for::mail);
  c.feed("250 ok\r\n");
  cr_assert(c.waiting() == waiting_for::rcpt);
  c.feed("550 no\r\n");
  c.feed("250 ok\r\n");
  cr_assert(c.waiting() == waiting_for::data);
  c.feed("354 go\r\n");
  cr_assert(c.waiting() == waiting_for::final_dot);
  c.feed("250 done\r\n");
  drain(c);
  c.quit();
  cr_assert(c.waiting() == waiting_for::quit);
  uint64_t seen = c.replies_seen();
  c.feed("221 bye\r\n");
  cr_assert_eq(c.replies_seen(), seen + 1);
  cr_assert(c.waiting() == waiting_for::none);
}

Test(smtp_client_ext, chunked_content_is_written_by_the_caller) {
  client_settings s;
  s.pipeline_next_message = true;
  client c(s);
  greet(c, ehlo_all);
  std::vector<std::string_view> chunks{"ab", "c\r\n"};
  outgoing_message m;
  m.mail_from = "a@x";
  m.recipients = {"b@y"};
  m.chunks = chunks;
  m.chunked_content = true;
  m.content = "ignored: chunks win";
  c.send(m);
  std::string out = take(c);
  cr_assert_str_eq(out.c_str(), "MAIL FROM:<a@x> SIZE=5\r\nRCPT TO:<b@y>\r\nDATA\r\n");
  c.feed("250 ok\r\n250 ok\r\n354 go\r\n");
  auto ev = drain(c);
  cr_assert_eq(ev.size(), 1u, "content_due, and no early ready before the content is written");
  cr_assert(ev[0].what == client_event::kind::content_due);
  cr_assert_eq(ev[0].message, &m);
  cr_assert(c.waiting() == waiting_for::content);
  cr_assert(c.output().empty(), "the client writes nothing of the content itself");
  cr_assert(!c.is_ready());
  c.quit();  // held until the content is written
  cr_assert(c.output().empty());
  c.content_written();
  cr_assert(c.waiting() == waiting_for::final_dot);
  cr_assert_eq(take(c), "QUIT\r\n");
  c.feed("250 2.6.0 queued\r\n221 bye\r\n");
  ev = drain(c);
  cr_assert_eq(ev.size(), 2u);
  cr_assert_eq(ev[0].result.recipients[0].code, 250);
  cr_assert(ev[1].what == client_event::kind::closed);

  // A reply before the content went out cannot belong to it.
  client d(s);
  greet(d, ehlo_all);
  d.send(m);
  d.feed("250 ok\r\n250 ok\r\n354 go\r\n250 too early\r\n");
  ev = drain(d);
  cr_assert(ev.back().what == client_event::kind::protocol_error);
}

Test(smtp_client_ext, early_ready_comes_after_chunked_content_is_written) {
  client_settings s;
  s.pipeline_next_message = true;
  client c(s);
  greet(c, ehlo_all);
  std::vector<std::string_view> chunks{"x\r\n"};
  outgoing_message m;
  m.mail_from = "a@x";
  m.recipients = {"b@y"};
  m.chunks = chunks;
  m.chunked_content = true;
  c.send(m);
  take(c);
  c.feed("250 ok\r\n250 ok\r\n354 go\r\n");
  drain(c);
  c.content_written();
  auto ev = drain(c);
  cr_assert(ev.size() == 1 && ev[0].what == client_event::kind::ready);
  cr_assert(c.is_ready());
}

// RFC 3207 5 / CVE-2011-0411: replies pipelined behind the 220 to STARTTLS were sent in
// clear, so a man in the middle could have put them there; they must not be believed.
Test(smtp_client_ext, reply_injected_before_tls_is_refused) {
  client_settings s;
  s.starttls = true;
  client c(s);
  c.feed("220 mx\r\n");
  take(c);
  c.feed("250-mx\r\n250 STARTTLS\r\n");
  cr_assert_eq(take(c), "STARTTLS\r\n");
  cr_assert(c.waiting() == waiting_for::starttls);
  c.feed("220 go ahead\r\n250-forged\r\n250 AUTH PLAIN\r\n");
  auto ev = drain(c);
  cr_assert_eq(ev.size(), 1u);
  cr_assert(ev[0].what == client_event::kind::protocol_error, "no need_tls: the injection ends the session");
  cr_assert(ev[0].at == waiting_for::starttls);
  cr_assert(c.is_closed());

  // A partial line behind the 220 is just as suspect.
  client d(s);
  d.feed("220 mx\r\n250-mx\r\n250 STARTTLS\r\n220 go ahead\r\n250 for");
  ev = drain(d);
  cr_assert(ev.size() == 1 && ev[0].what == client_event::kind::protocol_error);

  // And so is anything arriving in clear after the 220, before TLS is up.
  client e(s);
  e.feed("220 mx\r\n250-mx\r\n250 STARTTLS\r\n220 go ahead\r\n");
  ev = drain(e);
  cr_assert(ev.size() == 1 && ev[0].what == client_event::kind::need_tls);
  e.feed("250 forged\r\n");
  ev = drain(e);
  cr_assert(ev.size() == 1 && ev[0].what == client_event::kind::protocol_error);
  cr_assert(e.is_closed());
}

Test(smtp_client_ext, opportunistic_starttls_only_when_offered) {
  client_settings s;
  s.starttls_if_offered = true;
  client c(s);
  c.feed("220 mx\r\n");
  take(c);
  c.feed("250-mx\r\n250 PIPELINING\r\n");
  auto ev = drain(c);
  cr_assert(ev.size() == 1 && ev[0].what == client_event::kind::ready, "plaintext when STARTTLS is not offered");

  client d(s);
  d.feed("220 mx\r\n");
  take(d);
  d.feed("250-mx\r\n250 STARTTLS\r\n");
  cr_assert_eq(take(d), "STARTTLS\r\n");
  d.feed("454 4.7.0 TLS not available now\r\n");
  ev = drain(d);
  cr_assert(ev.size() == 1 && ev[0].what == client_event::kind::ready, "refused STARTTLS: on in clear");
  cr_assert(d.output().empty());

  client_settings req;
  req.starttls = true;
  client e(req);
  e.feed("220 mx\r\n");
  take(e);
  e.feed("250-mx\r\n250 PIPELINING\r\n");
  ev = drain(e);
  cr_assert(ev.size() == 1 && ev[0].what == client_event::kind::closed);
  cr_assert(ev[0].at == waiting_for::starttls, "a missing STARTTLS is reported at STARTTLS");
  cr_assert_eq(take(e), "QUIT\r\n");

  // Required, and refused: the session ends there.
  client f(req);
  f.feed("220 mx\r\n250-mx\r\n250 STARTTLS\r\n");
  f.feed("454 4.7.0 TLS not available now\r\n");
  ev = drain(f);
  cr_assert(ev.size() == 1 && ev[0].what == client_event::kind::closed);
  cr_assert_eq(ev[0].why.code, 454);
  cr_assert(ev[0].at == waiting_for::starttls);
}
