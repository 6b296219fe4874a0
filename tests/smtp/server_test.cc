// server_test.cc: the SMTP server state machine driven by transcripts, no sockets: greeting, HELO/EHLO, MAIL/RCPT, DATA, BDAT.
#include "server_fixture.h"

using namespace server_test;

// ---- greeting, closing ----

Test(smtp_server, greeting_default_banner_has_date) {
  server_settings st;
  st.hostname = "mx.test";
  test_delegate d;
  server srv(st, d);
  srv.greet();
  std::string out = srv.output();
  cr_assert(out.starts_with("220 mx.test ESMTP sluice ready at "), "%s", out.c_str());
  cr_assert(out.ends_with("\r\n"));
  cr_assert(out.find(", ") != std::string::npos);  // "Sat, 28 Nov 2026 ..."
  cr_assert_eq(d.replies.size(), 1u);
  cr_assert_eq(d.replies[0], out.substr(0, out.size() - 2));
}

Test(smtp_server, greeting_custom_banner) {
  session s;
  s.srv.greet();
  std::string out = s.take();
  cr_assert_str_eq(out.c_str(), "220 mx.test ESMTP test\r\n");
}

Test(smtp_server, quit_closes) {
  session s;
  EXPECT_OUT(s, "QUIT\r\n", "221 2.0.0 mx.test Service closing transmission channel\r\n");
  cr_assert(s.srv.closing());
  EXPECT_OUT(s, "NOOP\r\n", "");
}

Test(smtp_server, refuse_and_timeout) {
  session a;
  a.srv.refuse("Connection refused by policy");
  std::string out = a.take();
  cr_assert_str_eq(out.c_str(), "554 5.7.1 Connection refused by policy\r\n");
  cr_assert(a.srv.closing());
  session b;
  b.srv.timeout();
  out = b.take();
  cr_assert_str_eq(out.c_str(), "421 4.4.2 mx.test Error: timeout exceeded\r\n");
  cr_assert(b.srv.closing());
}

// ---- HELO / EHLO ----

Test(smtp_server, helo_and_ehlo) {
  session s;
  EXPECT_OUT(s, "HELO client.test\r\n", "250 mx.test\r\n");
  cr_assert_str_eq(s.srv.current_envelope().helo.c_str(), "client.test");
  cr_assert(!s.srv.current_envelope().esmtp);
  std::string want = ehlo_reply();
  EXPECT_OUT(s, "EHLO client.test\r\n", want.c_str());
  cr_assert(s.srv.current_envelope().esmtp);
  EXPECT_OUT(s, "HELO\r\n", "501 5.5.4 Syntax: HELO hostname\r\n");
  EXPECT_OUT(s, "ehlo\r\n", "501 5.5.4 Syntax: EHLO hostname\r\n");
  EXPECT_OUT(s, "EHLO bad.example\r\n", "550 5.7.1 Go away\r\n");
}

Test(smtp_server, ehlo_respects_settings) {
  server_settings st = test_settings();
  st.pipelining = st.chunking = st.smtputf8 = st.dsn = st.eightbitmime = false;
  st.max_message_size = 1000;
  session s(st);
  EXPECT_OUT(s, "EHLO c\r\n", "250-mx.test\r\n250-SIZE 1000\r\n250 ENHANCEDSTATUSCODES\r\n");
  EXPECT_OUT(s, "MAIL FROM:<a@b.test> BODY=8BITMIME\r\n", "501 5.5.4 Bad BODY syntax\r\n");
  EXPECT_OUT(s, "MAIL FROM:<a@b.test> SMTPUTF8\r\n", "555 5.5.4 Unsupported option\r\n");
  EXPECT_OUT(s, "MAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\nBDAT 0 LAST\r\n",
             "250 2.1.0 Sender OK\r\n250 2.1.5 Recipient OK\r\n502 5.5.1 Error: command not implemented\r\n");
}

Test(smtp_server, ehlo_resets_transaction) {
  session s;
  s.run("EHLO c\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\n");
  cr_assert_eq(s.srv.current_envelope().recipients.size(), 1u);
  s.run("EHLO again\r\n");
  cr_assert_eq(s.srv.current_envelope().recipients.size(), 0u);
  EXPECT_OUT(s, "RCPT TO:<c@d.test>\r\n", "503 5.5.1 Error: need MAIL command\r\n");
}

// ---- the seed's telnet session ----

static const char* telnet_session =
    "MAIL FROM:guy@yourplace.com\r\n"
    "RCPT TO:guy@yourplace.com NOTIFY=success,failure\r\n"
    "DATA\r\n"
    "Subject: Test from Guy\r\n"
    "\r\n"
    "This is Guy\xE2\x80\x99s message\r\n"
    "\r\n"
    ".\r\n"
    "QUIT\r\n";

static const char* telnet_replies =
    "250 2.1.0 Sender OK\r\n"
    "250 2.1.5 Recipient OK\r\n"
    "354 Start mail input; end data with <CR><LF>.<CR><LF>\r\n"
    "250 2.6.0 <id> Queued mail for delivery\r\n"
    "221 2.0.0 mx.test Service closing transmission channel\r\n";

static void check_telnet(const std::string& input) {
  session s;
  // Typed one line at a time, as telnet sends it.
  std::string out;
  size_t at = 0;
  while (at < input.size()) {
    size_t nl = input.find('\n', at);
    s.feed(std::string_view(input).substr(at, nl + 1 - at));
    at = nl + 1;
  }
  out = s.take();
  cr_assert_str_eq(out.c_str(), telnet_replies);
  cr_assert_eq(s.d.bodies.size(), 1u);
  cr_assert_str_eq(s.d.bodies[0].c_str(), "Subject: Test from Guy\r\n\r\nThis is Guy\xE2\x80\x99s message\r\n\r\n");
  const envelope& e = s.d.envelopes[0];
  cr_assert_str_eq(e.mail_from.c_str(), "guy@yourplace.com");
  cr_assert_eq(e.recipients.size(), 1u);
  cr_assert_str_eq(e.recipients[0].address.c_str(), "guy@yourplace.com");
  cr_assert_eq(e.recipients[0].notify, notify_success | notify_failure);
  cr_assert(s.srv.closing());
  cr_assert_eq(s.srv.messages_accepted(), 1u);
}

Test(smtp_server, seed_telnet_session_exactly_as_typed) { check_telnet(telnet_session); }

Test(smtp_server, seed_telnet_session_lowercase_verbs) {
  check_telnet(
      "mail from:guy@yourplace.com\r\n"
      "rcpt to:guy@yourplace.com notify=success,failure\r\n"
      "data\r\n"
      "Subject: Test from Guy\r\n"
      "\r\n"
      "This is Guy\xE2\x80\x99s message\r\n"
      "\r\n"
      ".\r\n"
      "quit\r\n");
}

Test(smtp_server, seed_telnet_session_split_everywhere) {
  outcome o = check_split_invariance(test_settings(), telnet_session);
  cr_assert_str_eq(o.output.c_str(), telnet_replies);
}

Test(smtp_server, lf_terminated_commands_accepted) {
  session s;
  EXPECT_OUT(s, "HELO c\nNOOP\n", "250 mx.test\r\n250 2.0.0 Ok\r\n");
}

// ---- MAIL / RCPT ----

Test(smtp_server, mail_syntax_and_sequence) {
  session s;
  EXPECT_OUT(s, "MAIL\r\n", "501 5.5.4 Syntax: MAIL FROM:<address>\r\n");
  EXPECT_OUT(s, "MAIL TO:<a@b.test>\r\n", "501 5.5.4 Syntax: MAIL FROM:<address>\r\n");
  EXPECT_OUT(s, "MAIL FROM:<a@>\r\n", "501 5.1.7 Bad sender address syntax\r\n");
  EXPECT_OUT(s, "MAIL FROM: <a@b.test>\r\n", "250 2.1.0 Sender OK\r\n");
  EXPECT_OUT(s, "MAIL FROM:<a@b.test>\r\n", "503 5.5.1 Error: nested MAIL command\r\n");
  EXPECT_OUT(s, "RSET\r\nMAIL FROM:<>\r\n", "250 2.0.0 Ok\r\n250 2.1.0 Sender OK\r\n");
  cr_assert_str_eq(s.srv.current_envelope().mail_from.c_str(), "");
  EXPECT_OUT(s, "RSET\r\nMAIL FROM:<spammer@bad.example>\r\n", "250 2.0.0 Ok\r\n550 5.7.1 Sender rejected\r\n");
  EXPECT_OUT(s, "RCPT TO:<c@d.test>\r\n", "503 5.5.1 Error: need MAIL command\r\n");
  EXPECT_OUT(s, "MAIL FROM:<a@b.test> FOO=1\r\n", "555 5.5.4 Unsupported option\r\n");
  EXPECT_OUT(s, "MAIL FROM:<a@b.test> SIZE=1 SIZE=1\r\n", "555 5.5.4 Duplicate option\r\n");
}

Test(smtp_server, helo_required) {
  server_settings st = test_settings();
  st.helo_required = true;
  session s(st);
  EXPECT_OUT(s, "MAIL FROM:<a@b.test>\r\n", "503 5.5.1 Error: send HELO/EHLO first\r\n");
  EXPECT_OUT(s, "HELO c\r\nMAIL FROM:<a@b.test>\r\n", "250 mx.test\r\n250 2.1.0 Sender OK\r\n");
}

Test(smtp_server, mail_size_limit) {
  server_settings st = test_settings();
  st.max_message_size = 1000;
  session s(st);
  EXPECT_OUT(s, "MAIL FROM:<a@b.test> SIZE=1001\r\n",
             "552 5.3.4 Message size exceeds fixed maximum message size\r\n");
  EXPECT_OUT(s, "MAIL FROM:<a@b.test> SIZE=1000\r\n", "250 2.1.0 Sender OK\r\n");
  cr_assert_eq(*s.srv.current_envelope().declared_size, 1000u);
}

Test(smtp_server, rcpt_variants) {
  session s;
  s.run("MAIL FROM:<a@b.test>\r\n");
  EXPECT_OUT(s, "RCPT TO:<nobody@d.test>\r\n", "550 5.1.1 User unknown\r\n");
  EXPECT_OUT(s, "RCPT TO:<postmaster>\r\n", "250 2.1.5 Recipient OK\r\n");
  EXPECT_OUT(s, "RCPT TO:<@relay.test:c@d.test>\r\n", "250 2.1.5 Recipient OK\r\n");
  EXPECT_OUT(s, "RCPT TO:<c@[192.0.2.7]>\r\n", "250 2.1.5 Recipient OK\r\n");
  EXPECT_OUT(s, "RCPT TO:<>\r\n", "501 5.1.3 Bad recipient address syntax\r\n");
  EXPECT_OUT(s, "RCPT FROM:<c@d.test>\r\n", "501 5.5.4 Syntax: RCPT TO:<address>\r\n");
  EXPECT_OUT(s, "RCPT TO:<c@d.test> NOTIFY=NEVER,DELAY\r\n", "501 5.5.4 Bad NOTIFY syntax\r\n");
  const auto& r = s.srv.current_envelope().recipients;
  cr_assert_eq(r.size(), 3u);
  cr_assert_str_eq(r[1].address.c_str(), "c@d.test");
}

Test(smtp_server, dsn_parameters_in_envelope) {
  session s;
  s.run("EHLO c\r\nMAIL FROM:<a@b.test> RET=HDRS ENVID=abc+2Bdef BODY=8BITMIME\r\n"
        "RCPT TO:<c@d.test> NOTIFY=FAILURE,DELAY ORCPT=rfc822;C+40d.test\r\n"
        "RCPT TO:<e@d.test> NOTIFY=NEVER\r\nDATA\r\nhi\r\n.\r\n");
  cr_assert_eq(s.d.envelopes.size(), 1u);
  const envelope& e = s.d.envelopes[0];
  cr_assert_eq(e.ret, dsn_ret::headers);
  cr_assert_str_eq(e.envid.c_str(), "abc+def");
  cr_assert_eq(e.body, body_type::eight_bit_mime);
  cr_assert_str_eq(e.helo.c_str(), "c");
  cr_assert(e.esmtp);
  cr_assert_eq(e.recipients[0].notify, notify_failure | notify_delay);
  cr_assert_str_eq(e.recipients[0].orcpt.c_str(), "rfc822;C@d.test");
  cr_assert_eq(e.recipients[1].notify, notify_never);
  cr_assert_str_eq(e.recipients[1].orcpt.c_str(), "");
}

Test(smtp_server, smtputf8) {
  session s;
  EXPECT_OUT(s, "MAIL FROM:<jos\xC3\xA9@b.test>\r\n", "553 5.6.7 Non-ASCII address requires SMTPUTF8\r\n");
  EXPECT_OUT(s, "MAIL FROM:<a@b.test>\r\nRCPT TO:<m\xC3\xBCller@d.test>\r\nRSET\r\n",
             "250 2.1.0 Sender OK\r\n553 5.6.7 Non-ASCII address requires SMTPUTF8\r\n250 2.0.0 Ok\r\n");
  EXPECT_OUT(s, "MAIL FROM:<jos\xC3\xA9@b.test> SMTPUTF8\r\nRCPT TO:<m\xC3\xBCller@b\xC3\xBC\x63her.test>\r\n",
             "250 2.1.0 Sender OK\r\n250 2.1.5 Recipient OK\r\n");
  cr_assert(s.srv.current_envelope().smtputf8);
  cr_assert_str_eq(s.srv.current_envelope().recipients[0].address.c_str(), "m\xC3\xBCller@b\xC3\xBC\x63her.test");
}

Test(smtp_server, max_recipients) {
  server_settings st = test_settings();
  st.max_recipients = 2;
  session s(st);
  EXPECT_OUT(s, "MAIL FROM:<a@b.test>\r\nRCPT TO:<x@d.test>\r\nRCPT TO:<y@d.test>\r\nRCPT TO:<z@d.test>\r\n",
             "250 2.1.0 Sender OK\r\n250 2.1.5 Recipient OK\r\n250 2.1.5 Recipient OK\r\n"
             "452 4.5.3 Too many recipients\r\n");
  cr_assert_eq(s.srv.current_envelope().recipients.size(), 2u);
}

// A pipelining client sends every recipient before it sees a 452: the excess is refused
// one by one, never counted as errors that would close the session and lose the rest.
Test(smtp_server, recipients_past_the_limit_are_not_errors) {
  server_settings st = test_settings();
  st.max_recipients = 1;
  st.max_errors = 2;
  session s(st);
  EXPECT_OUT(s, "MAIL FROM:<a@b.test>\r\nRCPT TO:<x@d.test>\r\nRCPT TO:<y@d.test>\r\nRCPT TO:<z@d.test>\r\n"
                "RCPT TO:<w@d.test>\r\n",
             "250 2.1.0 Sender OK\r\n250 2.1.5 Recipient OK\r\n452 4.5.3 Too many recipients\r\n"
             "452 4.5.3 Too many recipients\r\n452 4.5.3 Too many recipients\r\n");
  cr_assert(!s.srv.closing());
  cr_assert_eq(s.srv.current_envelope().recipients.size(), 1u);
}

// ---- simple verbs and errors ----

Test(smtp_server, simple_verbs) {
  session s;
  EXPECT_OUT(s, "NOOP\r\n", "250 2.0.0 Ok\r\n");
  EXPECT_OUT(s, "noop anything\r\n", "250 2.0.0 Ok\r\n");
  EXPECT_OUT(s, "RSET\r\n", "250 2.0.0 Ok\r\n");
  EXPECT_OUT(s, "RSET x\r\n", "501 5.5.4 Syntax: RSET\r\n");
  EXPECT_OUT(s, "VRFY bob\r\n", "252 2.1.5 Cannot VRFY user, but will accept message and attempt delivery\r\n");
  EXPECT_OUT(s, "VRFY\r\n", "501 5.5.4 Syntax: VRFY address\r\n");
  EXPECT_OUT(s, "HELP\r\n", "214 2.0.0 Commands: HELO EHLO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP\r\n");
  EXPECT_OUT(s, "EXPN list\r\n", "502 5.5.1 Error: command not implemented\r\n");
  EXPECT_OUT(s, "FROB\r\n", "500 5.5.2 Error: command not recognized\r\n");
  EXPECT_OUT(s, "\r\n", "500 5.5.2 Error: bad syntax\r\n");
  EXPECT_OUT(s, "DATA\r\n", "503 5.5.1 Error: need MAIL command\r\n");
  EXPECT_OUT(s, "MAIL FROM:<a@b.test>\r\nDATA\r\n", "250 2.1.0 Sender OK\r\n554 5.5.1 No valid recipients\r\n");
  EXPECT_OUT(s, "DATA now\r\n", "501 5.5.4 Syntax: DATA\r\n");
  cr_assert(!s.srv.closing());
}

Test(smtp_server, max_errors_closes) {
  server_settings st = test_settings();
  st.max_errors = 3;
  session s(st);
  EXPECT_OUT(s, "FOO\r\nNOOP\r\nBAR\r\nBAZ\r\nNOOP\r\n",
             "500 5.5.2 Error: command not recognized\r\n250 2.0.0 Ok\r\n"
             "500 5.5.2 Error: command not recognized\r\n500 5.5.2 Error: command not recognized\r\n"
             "421 4.7.0 mx.test Error: too many errors\r\n");
  cr_assert(s.srv.closing());
}

Test(smtp_server, command_line_too_long) {
  server_settings st = test_settings();
  st.max_command_line = 20;
  session s(st);
  // 18 characters + CRLF = 20 is fine, 21 is not.
  EXPECT_OUT(s, "NOOP 1234567890123\r\n", "250 2.0.0 Ok\r\n");
  EXPECT_OUT(s, "NOOP 12345678901234\r\nNOOP\r\n", "500 5.5.2 Line too long\r\n250 2.0.0 Ok\r\n");
  // A long line arriving in pieces is dropped as it comes, never buffered.
  std::string junk(1 << 20, 'x');
  s.feed("NOOP ");
  s.feed(junk);
  s.feed(junk);
  cr_assert_str_eq(s.srv.output().c_str(), "");
  EXPECT_OUT(s, "tail\r\nNOOP\r\n", "500 5.5.2 Line too long\r\n250 2.0.0 Ok\r\n");
}

// ---- DATA ----

Test(smtp_server, data_dot_unstuffing) {
  session s;
  std::string out = one_message(s, "..leading\r\n.\tx\r\nmid.dle\r\n..\r\n...\r\n.\r\n");
  cr_assert_str_eq(out.c_str(), queued);
  cr_assert_str_eq(s.d.bodies[0].c_str(), ".leading\r\n\tx\r\nmid.dle\r\n.\r\n..\r\n");
}

Test(smtp_server, data_empty_message) {
  session s;
  std::string out = one_message(s, ".\r\n");
  cr_assert_str_eq(out.c_str(), queued);
  cr_assert_str_eq(s.d.bodies[0].c_str(), "");
}

Test(smtp_server, data_bare_lf_refused) {
  session s;
  std::string out = one_message(s, "line one\nline two\r\n.\r\n");
  cr_assert_str_eq(out.c_str(), "550 5.6.11 Bare LF or CR in message not allowed\r\n");
  cr_assert_eq(s.d.bodies.size(), 0u);
  EXPECT_OUT(s, "RCPT TO:<c@d.test>\r\n", "503 5.5.1 Error: need MAIL command\r\n");
}

Test(smtp_server, data_bare_cr_refused) {
  session s;
  std::string out = one_message(s, "a\rb\r\n.\r\n");
  cr_assert_str_eq(out.c_str(), "550 5.6.11 Bare LF or CR in message not allowed\r\n");
  cr_assert_eq(s.d.bodies.size(), 0u);
}

Test(smtp_server, smuggling_payloads_do_not_end_data) {
  const char* payloads[] = {"\r\n.\n", "\n.\r\n", "\n.\n", "\r.\r", "\r\n.\r", "\r.\r\n"};
  for (const char* p : payloads) {
    session s;
    std::string content = std::string("Subject: a\r\n\r\nx") + p +
                          "MAIL FROM:<evil@b.test>\r\nRCPT TO:<victim@d.test>\r\nDATA\r\nspoof\r\n.\r\n";
    std::string out = one_message(s, content);
    // The smuggled MAIL/RCPT/DATA are content: one refusal, nothing submitted.
    cr_assert_str_eq(out.c_str(), "550 5.6.11 Bare LF or CR in message not allowed\r\n", "payload %s", p);
    cr_assert_eq(s.d.bodies.size(), 0u);
    cr_assert_eq(s.srv.messages_accepted(), 0u);
  }
}

Test(smtp_server, data_text_line_too_long) {
  server_settings st = test_settings();
  st.max_text_line = 10;
  session s(st);
  // 8 + CRLF fits; a stuffed dot counts towards the wire length.
  std::string out = one_message(s, "12345678\r\n..234567\r\n.\r\n");
  cr_assert_str_eq(out.c_str(), queued);
  out = one_message(s, "123456789\r\nok\r\n.\r\n");
  cr_assert_str_eq(out.c_str(), "552 5.6.0 Line too long\r\n");
  cr_assert_eq(s.d.bodies.size(), 1u);
}

Test(smtp_server, data_content_size_limit) {
  server_settings st = test_settings();
  st.max_message_size = 10;
  session s(st);
  std::string out = one_message(s, "1234\r\n78\r\n.\r\n");  // exactly 10 octets
  cr_assert_str_eq(out.c_str(), queued);
  out = one_message(s, "123456\r\n789\r\nmore\r\nand more\r\n.\r\nNOOP\r\n");
  cr_assert_str_eq(out.c_str(), "552 5.3.4 Message size exceeds fixed maximum message size\r\n250 2.0.0 Ok\r\n");
  cr_assert_eq(s.d.bodies.size(), 1u);
}

Test(smtp_server, data_with_8bit_kept) {
  session s;
  std::string out = one_message(s, "caf\xC3\xA9 x\r\n.\r\n");
  cr_assert_str_eq(out.c_str(), queued);
  cr_assert_str_eq(s.d.bodies[0].c_str(), "caf\xC3\xA9 x\r\n");
}

static constexpr const char* nul_refused = "550 5.6.0 NUL character in message not allowed\r\n";

Test(smtp_server, data_nul_refused_and_session_continues) {
  // "\0." and ".\0" just before the real end read as "." to a C-string next hop.
  std::string_view payloads[] = {"x\r\n\0.\r\n.\r\n"sv, "x\r\n.\0\r\n.\r\n"sv, "a\0b\r\n.\r\n"sv,
                                 "\0\r\n.\r\n"sv, "x\0\r\n.\r\n"sv, "..\0\r\n.\r\n"sv};
  for (std::string_view p : payloads) {
    session s;
    std::string out = one_message(s, p);
    cr_assert_str_eq(out.c_str(), nul_refused, "payload %s", escaped(p).c_str());
    cr_assert_eq(s.d.bodies.size(), 0u);
    EXPECT_OUT(s, "RCPT TO:<c@d.test>\r\n", "503 5.5.1 Error: need MAIL command\r\n");
    std::string next = one_message(s, "clean\r\n.\r\n");
    cr_assert_str_eq(next.c_str(), queued);
    cr_assert_eq(s.d.bodies.size(), 1u);
  }
}

Test(smtp_server, data_nul_smuggled_commands_stay_content) {
  session s;
  std::string content = "Subject: a\r\n\r\nx\r\n\0.\r\nMAIL FROM:<evil@b.test>\r\nRCPT TO:<victim@d.test>\r\n"
                        "DATA\r\nspoof\r\n.\0\r\n.\r\nNOOP\r\n"s;
  std::string out = one_message(s, content);
  std::string want = std::string(nul_refused) + "250 2.0.0 Ok\r\n";
  cr_assert_str_eq(out.c_str(), want.c_str());
  cr_assert_eq(s.srv.messages_accepted(), 0u);
}

Test(smtp_server, data_nul_outranks_size_limit) {
  server_settings st = test_settings();
  st.max_message_size = 4;
  session s(st);
  std::string out = one_message(s, "123456789\r\n\0\r\n.\r\n"sv);
  cr_assert_str_eq(out.c_str(), nul_refused);
}

Test(smtp_server, data_nul_split_at_every_byte) {
  outcome o = check_split_invariance(test_settings(),
      "MAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\nDATA\r\nx\r\n\0.\r\n.\0\r\n.\r\nQUIT\r\n"sv);
  cr_assert(o.output.find(nul_refused) != std::string::npos, "%s", escaped(o.output).c_str());
  cr_assert_eq(o.bodies.size(), 0u);
}

Test(smtp_server, data_requires_bdat_free_transaction_and_no_binarymime) {
  session s;
  EXPECT_OUT(s, "MAIL FROM:<a@b.test> BODY=BINARYMIME\r\nRCPT TO:<c@d.test>\r\nDATA\r\n",
             "250 2.1.0 Sender OK\r\n250 2.1.5 Recipient OK\r\n503 5.5.1 Error: BINARYMIME requires BDAT\r\n");
}

// ---- BDAT ----

Test(smtp_server, bdat_multiple_chunks) {
  session s;
  EXPECT_OUT(s, "EHLO c\r\nMAIL FROM:<a@b.test> BODY=BINARYMIME\r\nRCPT TO:<c@d.test>\r\n"
                "BDAT 7\r\nab\r\n.\r\nBDAT 5\r\n\0\r\n.\n"sv, (ehlo_reply() +
             "250 2.1.0 Sender OK\r\n250 2.1.5 Recipient OK\r\n250 2.0.0 7 octets received\r\n"
             "250 2.0.0 5 octets received\r\n").c_str());
  EXPECT_OUT(s, "BDAT 3 LAST\r\nxyzNOOP\r\n", (std::string(queued) + "250 2.0.0 Ok\r\n").c_str());
  cr_assert_eq(s.d.bodies.size(), 1u);
  cr_assert_eq(s.d.bodies[0], std::string("ab\r\n.\r\n\0\r\n.\nxyz", 15));
  cr_assert_eq(s.d.envelopes[0].body, body_type::binary_mime);
  cr_assert_eq(s.srv.messages_accepted(), 1u);
}

Test(smtp_server, bdat_nul_refused_unless_binarymime) {
  for (const char* body : {"", " BODY=7BIT", " BODY=8BITMIME"}) {
    session s;
    s.run(std::string("EHLO c\r\nMAIL FROM:<a@b.test>") + body + "\r\nRCPT TO:<c@d.test>\r\n");
    EXPECT_OUT(s, "BDAT 4\r\nab\r\n", "250 2.0.0 4 octets received\r\n");
    EXPECT_OUT(s, "BDAT 3\r\n\0.\n"sv, nul_refused);
    // Later chunks of the refused transaction repeat the refusal; the last ends it.
    EXPECT_OUT(s, "BDAT 2 LAST\r\nok", nul_refused);
    cr_assert_eq(s.d.bodies.size(), 0u, "body%s", body);
    EXPECT_OUT(s, "MAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\nBDAT 2 LAST\r\nok",
               (std::string("250 2.1.0 Sender OK\r\n250 2.1.5 Recipient OK\r\n") + queued).c_str());
  }
  session bin;
  bin.run("EHLO c\r\nMAIL FROM:<a@b.test> BODY=BINARYMIME\r\nRCPT TO:<c@d.test>\r\n");
  EXPECT_OUT(bin, "BDAT 3 LAST\r\n\0.\n"sv, queued);
  cr_assert_eq(bin.d.bodies[0], "\0.\n"s);
}

// BDAT content that is not BINARYMIME is text, held to DATA's rule on line ends (issue 13):
// a bare LF or CR anywhere, a CR that ends one chunk without an LF starting the next
// included, refuses the message with DATA's reply after BDAT LAST. The chunks before it
// are read to their sizes and answered as usual, and the session goes on in step.
Test(smtp_server, bdat_bare_line_ends_refused_at_last_unless_binarymime) {
  const char* bare = "550 5.6.11 Bare LF or CR in message not allowed\r\n";
  struct transcript {
    const char* name;
    std::vector<std::string> chunks;  // the last one is sent with LAST
  };
  const std::vector<transcript> faulty = {
      {"bare LF", {"ab\r\n", "x\ny", "ok"}},
      {"bare CR", {"ab\r\n", "x\ry", "ok"}},
      {"forged LF.LF ending", {"hi\n.\nMAIL FROM:<e@v.test>\r\n"}},
      {"CR ending a chunk, no LF after it", {"ab\r", "cd\r\n"}},
      {"LF starting a chunk, no CR before it", {"ab", "\ncd\r\n"}},
      {"lone CR ending the message", {"ab\r\n", "cd\r"}},
      {"bare LF in the first chunk only", {"a\nb", "cd\r\n", "ef\r\n"}},
  };
  for (const char* body : {"", " BODY=7BIT", " BODY=8BITMIME"}) {
    for (const auto& t : faulty) {
      session s;
      s.run(std::string("EHLO c\r\nMAIL FROM:<a@b.test>") + body + "\r\nRCPT TO:<c@d.test>\r\n");
      std::string want;
      for (std::size_t i = 0; i < t.chunks.size(); ++i) {
        const bool last = i + 1 == t.chunks.size();
        const std::string& chunk = t.chunks[i];
        const std::string got = s.run("BDAT " + std::to_string(chunk.size()) + (last ? " LAST" : "") + "\r\n" + chunk);
        want = last ? bare : "250 2.0.0 " + std::to_string(chunk.size()) + " octets received\r\n";
        cr_assert_str_eq(got.c_str(), want.c_str(), "%s, body%s, chunk %zu: %s", t.name, body, i,
                         escaped(got).c_str());
      }
      cr_assert_eq(s.d.bodies.size(), 0u, "%s, body%s: nothing is submitted", t.name, body);
      // The chunks were read to their sizes: the next transaction is understood.
      EXPECT_OUT(s, "MAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\nBDAT 4 LAST\r\nok\r\n",
                 (std::string("250 2.1.0 Sender OK\r\n250 2.1.5 Recipient OK\r\n") + queued).c_str());
      cr_assert_eq(s.d.bodies[0], "ok\r\n");
    }
  }
  // The same octets are data in BINARYMIME, taken as they are.
  session bin;
  bin.run("EHLO c\r\nMAIL FROM:<a@b.test> BODY=BINARYMIME\r\nRCPT TO:<c@d.test>\r\n");
  EXPECT_OUT(bin, "BDAT 4\r\na\nb\r", "250 2.0.0 4 octets received\r\n");
  EXPECT_OUT(bin, "BDAT 3 LAST\r\nc\rd", queued);
  cr_assert_eq(bin.d.bodies[0], "a\nb\rc\rd");
}

Test(smtp_server, bdat_crlf_split_between_chunks_is_a_line_end) {
  session s;
  s.run("EHLO c\r\nMAIL FROM:<a@b.test> BODY=8BITMIME\r\nRCPT TO:<c@d.test>\r\n");
  EXPECT_OUT(s, "BDAT 3\r\nab\r", "250 2.0.0 3 octets received\r\n");
  EXPECT_OUT(s, "BDAT 0\r\n", "250 2.0.0 0 octets received\r\n");  // an empty chunk between them
  EXPECT_OUT(s, "BDAT 5 LAST\r\n\ncd\r\n", queued);
  cr_assert_eq(s.d.bodies[0], "ab\r\ncd\r\n");
}

// Pipelined, split at every byte: one refusal after LAST however the chunks arrive, the
// bare-line-end refusal counted once towards max_errors.
Test(smtp_server, bdat_bare_lf_pipelined_split_invariant) {
  server_settings st = test_settings();
  const std::string input =
      "EHLO c\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\nBDAT 3\r\na\r\rBDAT 4\r\n\nb\r\nBDAT 2 LAST\r\nc\n"
      "MAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\nBDAT 3\r\nab\rBDAT 3 LAST\r\n\nc\n";
  outcome o = check_split_invariance(st, input);
  const std::string want = ehlo_reply() +
                           "250 2.1.0 Sender OK\r\n250 2.1.5 Recipient OK\r\n250 2.0.0 3 octets received\r\n"
                           "250 2.0.0 4 octets received\r\n550 5.6.11 Bare LF or CR in message not allowed\r\n"
                           "250 2.1.0 Sender OK\r\n250 2.1.5 Recipient OK\r\n250 2.0.0 3 octets received\r\n"
                           "550 5.6.11 Bare LF or CR in message not allowed\r\n";
  cr_assert_str_eq(o.output.c_str(), want.c_str(), "%s", escaped(o.output).c_str());
  cr_assert(o.bodies.empty());
  st.max_errors = 2;
  outcome limited = run_split(st, input, {});
  cr_assert(limited.output.ends_with("550 5.6.11 Bare LF or CR in message not allowed\r\n421 4.7.0 mx.test Error: too many errors\r\n"),
            "%s", escaped(limited.output).c_str());
}

Test(smtp_server, bdat_zero_last_and_data_after_bdat) {
  session s;
  s.run("MAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\n");
  EXPECT_OUT(s, "BDAT 2\r\nhi", "250 2.0.0 2 octets received\r\n");
  EXPECT_OUT(s, "DATA\r\n", "503 5.5.1 Error: DATA not allowed after BDAT\r\n");
  EXPECT_OUT(s, "BDAT 0 LAST\r\n", queued);
  cr_assert_str_eq(s.d.bodies[0].c_str(), "hi");
  s.run("MAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\n");
  EXPECT_OUT(s, "bdat 0 last\r\n", queued);
  cr_assert_str_eq(s.d.bodies[1].c_str(), "");
}

Test(smtp_server, bdat_refused_still_skips_chunk) {
  session s;
  // Without MAIL the chunk is consumed, not run as commands.
  EXPECT_OUT(s, "BDAT 6\r\nQUIT\r\nNOOP\r\n", "503 5.5.1 Error: need MAIL command\r\n250 2.0.0 Ok\r\n");
  EXPECT_OUT(s, "MAIL FROM:<a@b.test>\r\nBDAT 4 LAST\r\nRSET", "250 2.1.0 Sender OK\r\n554 5.5.1 No valid recipients\r\n");
  EXPECT_OUT(s, "BDAT x\r\n", "501 5.5.4 Syntax: BDAT chunk-size [LAST]\r\n");
  EXPECT_OUT(s, "BDAT 1 FIRST\r\n", "501 5.5.4 Syntax: BDAT chunk-size [LAST]\r\n");
  cr_assert(!s.srv.closing());
}

Test(smtp_server, bdat_size_limit_across_chunks) {
  server_settings st = test_settings();
  st.max_message_size = 10;
  session s(st);
  s.run("MAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\n");
  EXPECT_OUT(s, "BDAT 6\r\n123456", "250 2.0.0 6 octets received\r\n");
  EXPECT_OUT(s, "BDAT 6\r\n789012", "552 5.3.4 Message size exceeds fixed maximum message size\r\n");
  EXPECT_OUT(s, "BDAT 2 LAST\r\nzz", "552 5.3.4 Message size exceeds fixed maximum message size\r\n");
  cr_assert_eq(s.d.bodies.size(), 0u);
  EXPECT_OUT(s, "MAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\nBDAT 10 LAST\r\n1234567890",
             (std::string("250 2.1.0 Sender OK\r\n250 2.1.5 Recipient OK\r\n") + queued).c_str());
}
