// server_session_test.cc: the SMTP server state machine driven by transcripts: pipelining, STARTTLS, AUTH, random splits.
#include "server_fixture.h"

using namespace server_test;

// ---- pipelining and submit ----

Test(smtp_server, submit_done_resumes_pipelined_input) {
  session s;
  s.auto_submit = false;
  s.feed("MAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\nDATA\r\n");
  std::string out = s.take();
  s.feed("one\r\n.\r\nMAIL FROM:<x@b.test>\r\nRCPT TO:<c@d.test>\r\nDATA\r\ntwo\r\n.\r\nQUIT\r\n");
  out = s.take();
  cr_assert_str_eq(out.c_str(), "");  // nothing runs while the submit is pending
  cr_assert_eq(s.d.submits_pending, 1);
  s.feed("NOOP\r\n");  // held too
  cr_assert_str_eq(s.srv.output().c_str(), "");
  s.d.submits_pending = 0;
  s.srv.submit_done({451, "4.3.0", "Temporary queue failure"});
  out = s.take();
  cr_assert_str_eq(out.c_str(), "451 4.3.0 Temporary queue failure\r\n250 2.1.0 Sender OK\r\n"
                                "250 2.1.5 Recipient OK\r\n354 Start mail input; end data with <CR><LF>.<CR><LF>\r\n");
  cr_assert_eq(s.srv.messages_accepted(), 0u);
  cr_assert_eq(s.d.submits_pending, 1);
  cr_assert_str_eq(s.d.envelopes[1].mail_from.c_str(), "x@b.test");
  s.d.submits_pending = 0;
  s.srv.submit_done({250, "2.6.0", "<id2> Queued mail for delivery"});
  out = s.take();
  cr_assert_str_eq(out.c_str(), "250 2.6.0 <id2> Queued mail for delivery\r\n"
                                "221 2.0.0 mx.test Service closing transmission channel\r\n");
  cr_assert_eq(s.srv.messages_accepted(), 1u);
  cr_assert_str_eq(s.d.bodies[1].c_str(), "two\r\n");
  cr_assert(s.srv.closing());
}

static const char* pipelined_transcript =
    "EHLO client.test\r\n"
    "MAIL FROM:<a@b.test> SIZE=100\r\nRCPT TO:<x@y.test> NOTIFY=SUCCESS ORCPT=rfc822;x@y.test\r\n"
    "RCPT TO:<nobody@y.test>\r\nDATA\r\n"
    "Subject: hi\r\n..dot\r\n\r\n.\r\n"
    "MAIL FROM:<>\r\nRCPT TO:<postmaster>\r\nBDAT 10\r\n0123\r\n.\r\n9BDAT 0 LAST\r\n"
    "MAIL FROM:<s@b.test>\r\nRCPT TO:<x@y.test>\r\nDATA\r\nsmuggle\n.\r\nMAIL FROM:<e@b.test>\r\n.\r\n"
    "MAIL FROM:<t@b.test>\r\nRCPT TO:<x@y.test>\r\nDATA\r\n"
    "012345678901234567890123456789012345678901234567890123456789012345678901234567890\r\n.\r\n"
    "NOOP\nRSET\r\nVRFY x\r\nHELP\r\nFOO\r\n"
    "NOOP 0123456789012345678901234567890123456789012345678901234567890123456789\r\n"
    "QUIT\r\nNOOP\r\n";

Test(smtp_server, pipelined_transcript_split_at_every_byte) {
  server_settings st = test_settings();
  st.max_command_line = 64;
  st.max_text_line = 64;
  outcome o = check_split_invariance(st, pipelined_transcript);
  std::string want = ehlo_reply() +
      "250 2.1.0 Sender OK\r\n250 2.1.5 Recipient OK\r\n550 5.1.1 User unknown\r\n"
      "354 Start mail input; end data with <CR><LF>.<CR><LF>\r\n" + queued +
      "250 2.1.0 Sender OK\r\n250 2.1.5 Recipient OK\r\n250 2.0.0 10 octets received\r\n" + queued +
      "250 2.1.0 Sender OK\r\n250 2.1.5 Recipient OK\r\n354 Start mail input; end data with <CR><LF>.<CR><LF>\r\n"
      "550 5.6.11 Bare LF or CR in message not allowed\r\n"
      "250 2.1.0 Sender OK\r\n250 2.1.5 Recipient OK\r\n354 Start mail input; end data with <CR><LF>.<CR><LF>\r\n"
      "552 5.6.0 Line too long\r\n"
      "250 2.0.0 Ok\r\n250 2.0.0 Ok\r\n"
      "252 2.1.5 Cannot VRFY user, but will accept message and attempt delivery\r\n"
      "214 2.0.0 Commands: HELO EHLO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP\r\n"
      "500 5.5.2 Error: command not recognized\r\n500 5.5.2 Line too long\r\n"
      "221 2.0.0 mx.test Service closing transmission channel\r\n";
  cr_assert_str_eq(o.output.c_str(), want.c_str());
  cr_assert_eq(o.bodies.size(), 2u);
  cr_assert_str_eq(o.bodies[0].c_str(), "Subject: hi\r\n.dot\r\n\r\n");
  cr_assert_str_eq(o.bodies[1].c_str(), "0123\r\n.\r\n9");
  cr_assert(o.closing);
}

// ---- STARTTLS ----

Test(smtp_server, starttls_discards_pipelined_plaintext) {
  server_settings st = test_settings();
  st.starttls_offered = true;
  session s(st);
  std::string want = ehlo_reply(true);
  EXPECT_OUT(s, "EHLO c\r\n", want.c_str());
  // An attacker's injected plaintext after STARTTLS must never run.
  EXPECT_OUT(s, "STARTTLS\r\nMAIL FROM:<evil@b.test>\r\nRCPT TO:<c@d.test>\r\n", "220 2.0.0 Ready to start TLS\r\n");
  cr_assert_eq(s.d.tls_requests, 1);
  EXPECT_OUT(s, "RSET\r\n", "");  // still waiting for the handshake: dropped
  s.srv.tls_started();
  cr_assert(s.srv.tls_active());
  cr_assert_str_eq(s.srv.current_envelope().helo.c_str(), "");
  cr_assert_str_eq(s.srv.current_envelope().mail_from.c_str(), "");
  EXPECT_OUT(s, "RCPT TO:<c@d.test>\r\n", "503 5.5.1 Error: need MAIL command\r\n");
  std::string want_tls = ehlo_reply();
  EXPECT_OUT(s, "EHLO c\r\n", want_tls.c_str());  // STARTTLS no longer offered
  EXPECT_OUT(s, "STARTTLS\r\n", "503 5.5.1 Error: TLS already active\r\n");
}

Test(smtp_server, starttls_rules) {
  session plain;
  EXPECT_OUT(plain, "STARTTLS\r\n", "502 5.5.1 Error: command not implemented\r\n");
  server_settings st = test_settings();
  st.starttls_offered = st.starttls_required = true;
  session s(st);
  EXPECT_OUT(s, "EHLO c\r\nMAIL FROM:<a@b.test>\r\n",
             (ehlo_reply(true) + "530 5.7.0 Must issue a STARTTLS command first\r\n").c_str());
  EXPECT_OUT(s, "STARTTLS now\r\n", "501 5.5.4 Syntax: STARTTLS\r\n");
  s.auto_tls = true;
  EXPECT_OUT(s, "STARTTLS\r\n", "220 2.0.0 Ready to start TLS\r\n");
  EXPECT_OUT(s, "EHLO c\r\nMAIL FROM:<a@b.test>\r\n", (ehlo_reply() + "250 2.1.0 Sender OK\r\n").c_str());
  EXPECT_OUT(s, "STARTTLS\r\n", "503 5.5.1 Error: TLS already active\r\n");
}

// ---- AUTH ----

static server_settings auth_settings() {
  server_settings st = test_settings();
  st.auth_offered = true;
  return st;
}

Test(smtp_server, auth_plain_initial_response) {
  session s(auth_settings());
  std::string want = ehlo_reply(false, true);
  EXPECT_OUT(s, "EHLO c\r\n", want.c_str());
  std::string cred = base64_encode(std::string_view("\0alice\0secret", 13));
  EXPECT_OUT(s, "AUTH PLAIN " + cred + "\r\n", "235 2.7.0 Authentication successful\r\n");
  cr_assert(s.srv.authenticated());
  cr_assert_str_eq(s.srv.auth_user().c_str(), "alice");
  cr_assert_eq(s.d.auth_calls.size(), 1u);
  cr_assert_str_eq(s.d.auth_calls[0].c_str(), "PLAIN||alice|secret");
  cr_assert_str_eq(s.d.commands.back().c_str(), "AUTH PLAIN ****");
  for (const auto& c : s.d.commands) cr_assert(c.find(cred) == std::string::npos);
  EXPECT_OUT(s, "AUTH PLAIN " + cred + "\r\n", "503 5.5.1 Error: already authenticated\r\n");
  EXPECT_OUT(s, "EHLO c\r\n", ehlo_reply().c_str());  // no AUTH once authenticated
  EXPECT_OUT(s, "MAIL FROM:<a@b.test> AUTH=alice+40b.test\r\n", "250 2.1.0 Sender OK\r\n");
  cr_assert_str_eq(s.srv.current_envelope().auth_submitter.c_str(), "alice@b.test");
}

Test(smtp_server, auth_plain_challenge_and_failure) {
  session s(auth_settings());
  s.run("EHLO c\r\n");
  EXPECT_OUT(s, "auth plain\r\n", "334 \r\n");
  std::string bad = base64_encode(std::string_view("admin\0alice\0wrong", 17));
  EXPECT_OUT(s, bad + "\r\n", "535 5.7.8 Authentication credentials invalid\r\n");
  cr_assert(!s.srv.authenticated());
  cr_assert_str_eq(s.d.auth_calls[0].c_str(), "PLAIN|admin|alice|wrong");
  cr_assert_str_eq(s.d.commands[1].c_str(), "AUTH plain");
  cr_assert_str_eq(s.d.commands[2].c_str(), "****");
  EXPECT_OUT(s, "AUTH PLAIN\r\n*\r\n", "334 \r\n501 5.0.0 Authentication cancelled\r\n");
  EXPECT_OUT(s, "AUTH PLAIN\r\n!!!!\r\n", "334 \r\n501 5.5.2 Cannot decode response\r\n");
  EXPECT_OUT(s, "AUTH PLAIN " + base64_encode("no-nuls") + "\r\n", "501 5.5.2 Invalid PLAIN response\r\n");
  EXPECT_OUT(s, "AUTH PLAIN =\r\n", "501 5.5.2 Invalid PLAIN response\r\n");
  EXPECT_OUT(s, "AUTH CRAM-MD5\r\n", "504 5.5.4 Unrecognized authentication type\r\n");
  EXPECT_OUT(s, "AUTH\r\n", "501 5.5.4 Syntax: AUTH mechanism [initial-response]\r\n");
}

Test(smtp_server, auth_login_flow_masks_secrets) {
  session s(auth_settings());
  s.run("EHLO c\r\n");
  EXPECT_OUT(s, "AUTH LOGIN\r\n", "334 VXNlcm5hbWU6\r\n");
  EXPECT_OUT(s, base64_encode("alice") + "\r\n", "334 UGFzc3dvcmQ6\r\n");
  EXPECT_OUT(s, base64_encode("secret") + "\r\n", "235 2.7.0 Authentication successful\r\n");
  cr_assert_str_eq(s.d.auth_calls[0].c_str(), "LOGIN||alice|secret");
  std::vector<std::string> want = {"EHLO c", "AUTH LOGIN", "****", "****"};
  cr_assert_eq(s.d.commands, want);
  cr_assert(s.srv.authenticated());
}

Test(smtp_server, auth_login_initial_response_and_cancel) {
  session s(auth_settings());
  s.run("EHLO c\r\n");
  EXPECT_OUT(s, "AUTH LOGIN " + base64_encode("alice") + "\r\n", "334 UGFzc3dvcmQ6\r\n");
  cr_assert_str_eq(s.d.commands.back().c_str(), "AUTH LOGIN ****");
  EXPECT_OUT(s, "*\r\n", "501 5.0.0 Authentication cancelled\r\n");
  cr_assert_eq(s.d.auth_calls.size(), 0u);
  EXPECT_OUT(s, "NOOP\r\n", "250 2.0.0 Ok\r\n");
}

Test(smtp_server, auth_sequence_rules) {
  session s(auth_settings());
  EXPECT_OUT(s, "AUTH PLAIN\r\n", "503 5.5.1 Error: send EHLO first\r\n");
  EXPECT_OUT(s, "HELO c\r\nAUTH PLAIN\r\n", "250 mx.test\r\n503 5.5.1 Error: send EHLO first\r\n");
  EXPECT_OUT(s, "EHLO c\r\nMAIL FROM:<a@b.test>\r\nAUTH PLAIN\r\n",
             (ehlo_reply(false, true) + "250 2.1.0 Sender OK\r\n503 5.5.1 Error: MAIL transaction in progress\r\n").c_str());
  session off;
  EXPECT_OUT(off, "EHLO c\r\nAUTH PLAIN\r\n", (ehlo_reply() + "502 5.5.1 Error: command not implemented\r\n").c_str());
  // Unauthenticated AUTH= on MAIL is accepted but not trusted (RFC 4954 5).
  EXPECT_OUT(s, "RSET\r\nMAIL FROM:<a@b.test> AUTH=<>\r\n", "250 2.0.0 Ok\r\n250 2.1.0 Sender OK\r\n");
  cr_assert_str_eq(s.srv.current_envelope().auth_submitter.c_str(), "");
}

Test(smtp_server, auth_required_and_tls_required) {
  server_settings st = auth_settings();
  st.auth_required = true;
  st.starttls_offered = st.starttls_required = true;
  session s(st);
  // Before TLS: AUTH is not advertised and refused.
  EXPECT_OUT(s, "EHLO c\r\nAUTH PLAIN\r\n",
             (ehlo_reply(true) + "530 5.7.0 Must issue a STARTTLS command first\r\n").c_str());
  s.auto_tls = true;
  s.run("STARTTLS\r\n");
  EXPECT_OUT(s, "EHLO c\r\nMAIL FROM:<a@b.test>\r\n",
             (ehlo_reply(false, true) + "530 5.7.0 Authentication required\r\n").c_str());
  std::string cred = base64_encode(std::string_view("\0alice\0secret", 13));
  EXPECT_OUT(s, "AUTH PLAIN " + cred + "\r\nMAIL FROM:<a@b.test>\r\n",
             "235 2.7.0 Authentication successful\r\n250 2.1.0 Sender OK\r\n");
}

Test(smtp_server, auth_long_initial_response_allowed) {
  server_settings st = auth_settings();
  st.max_command_line = 64;
  session s(st);
  s.run("EHLO c\r\n");
  std::string pass(300, 'p');
  std::string cred = base64_encode(std::string("\0alice\0", 7) + pass);
  EXPECT_OUT(s, "AUTH PLAIN " + cred + "\r\n", "535 5.7.8 Authentication credentials invalid\r\n");
  cr_assert_eq(s.d.auth_calls.size(), 1u);
  EXPECT_OUT(s, "NOOP " + pass + "\r\n", "500 5.5.2 Line too long\r\n");
}

Test(smtp_server, auth_transcript_split_at_every_byte) {
  server_settings st = auth_settings();
  std::string input = "EHLO c\r\nAUTH LOGIN\r\n" + base64_encode("alice") + "\r\n" + base64_encode("secret") +
                      "\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\nBDAT 3 LAST\r\nabcQUIT\r\n";
  outcome o = check_split_invariance(st, input);
  std::string want = ehlo_reply(false, true) + "334 VXNlcm5hbWU6\r\n334 UGFzc3dvcmQ6\r\n"
                     "235 2.7.0 Authentication successful\r\n250 2.1.0 Sender OK\r\n250 2.1.5 Recipient OK\r\n" +
                     queued + "221 2.0.0 mx.test Service closing transmission channel\r\n";
  cr_assert_str_eq(o.output.c_str(), want.c_str());
}

Test(smtp_server, starttls_transcript_split_at_every_byte) {
  server_settings st = test_settings();
  st.starttls_offered = true;
  std::string input = "EHLO c\r\nSTARTTLS\r\n";
  outcome o = check_split_invariance(st, input);
  std::string want = ehlo_reply(true) + "220 2.0.0 Ready to start TLS\r\n";
  cr_assert_str_eq(o.output.c_str(), want.c_str());
}

Test(smtp_server, on_reply_sees_every_reply) {
  session s;
  s.run("NOOP\r\nEHLO c\r\n");
  cr_assert_eq(s.d.replies.size(), 2u);
  cr_assert_str_eq(s.d.replies[0].c_str(), "250 2.0.0 Ok");
  cr_assert(s.d.replies[1].starts_with("250-mx.test\r\n250-PIPELINING"));
  cr_assert(s.d.replies[1].ends_with("250 SMTPUTF8"));
}

// ---- round trip with the client-side dot_stuff ----

Test(smtp_server, dot_stuff_round_trip) {
  const char* bodies[] = {"", ".\r\n", "a\r\n.\r\n..\r\nb\r\n", ".x\r\n.\r\n.", "line\nbare\rcr\r\n"};
  const char* want[] = {"", ".\r\n", "a\r\n.\r\n..\r\nb\r\n", ".x\r\n.\r\n.\r\n", "line\r\nbare\r\ncr\r\n"};
  for (int i = 0; i < 5; ++i) {
    session s;
    std::string payload;
    dot_stuff(bodies[i], payload);
    std::string out = one_message(s, payload);
    cr_assert_str_eq(out.c_str(), queued, "body %d", i);
    cr_assert_str_eq(s.d.bodies[0].c_str(), want[i], "body %d", i);
  }
}

// ---- randomised transcripts: split invariance and no crash on any mix ----

Test(smtp_server, random_transcripts_split_invariant) {
  const char* pieces[] = {
      "EHLO c\r\n", "HELO c\n", "MAIL FROM:<a@b.test>\r\n", "MAIL FROM:<> SIZE=5\r\n", "RCPT TO:<c@d.test>\r\n",
      "RCPT TO:<nobody@d.test>\r\n", "DATA\r\n", "hello\r\n", ".\r\n", "..\r\n", "\n", "\r", ".", "BDAT 3\r\n",
      "BDAT 2 LAST\r\n", "BDAT 0 LAST\r\n", "RSET\r\n", "NOOP\r\n", "x", "\r\n",
      "AUTH PLAIN\r\n", "*\r\n", "STARTTLS\r\n", "VRFY a\r\n", "0123456789012345678901234567890123456789"};
  server_settings st = test_settings();
  st.max_command_line = 48;
  st.max_text_line = 48;
  st.max_message_size = 64;
  st.max_errors = 1000;
  st.auth_offered = true;
  std::mt19937 rng(12345);
  for (int round = 0; round < 200; ++round) {
    std::string input;
    int n = 5 + int(rng() % 40);
    for (int k = 0; k < n; ++k) input += pieces[rng() % (sizeof pieces / sizeof pieces[0])];
    outcome whole = run_split(st, input, {});
    std::vector<size_t> cuts;
    for (size_t at = 1 + rng() % 7; at < input.size(); at += 1 + rng() % 7) cuts.push_back(at);
    outcome split = run_split(st, input, cuts);
    cr_assert_str_eq(split.output.c_str(), whole.output.c_str(), "round %d: %s", round, escaped(input).c_str());
    cr_assert_eq(split.bodies, whole.bodies, "round %d", round);
    for (const auto& b : whole.bodies) cr_assert_leq(b.size(), 64u);
  }
}

Test(smtp_server, auth_answered_later_holds_pipelined_input) {
  session s(auth_settings());
  s.d.auth_async = true;
  s.srv.feed("EHLO c\r\n");
  s.srv.consume_output(s.srv.output().size());
  std::string cred = base64_encode(std::string_view("\0alice\0secret", 13));
  // MAIL is pipelined behind AUTH: it must wait for the verdict, then see the session authenticated.
  s.srv.feed("AUTH PLAIN " + cred + "\r\nMAIL FROM:<a@b.test>\r\n");
  cr_assert(s.srv.output().empty(), "nothing is answered before the verdict: %s", s.srv.output().c_str());
  cr_assert(!s.srv.authenticated());
  s.srv.auth_done({235, "", ""});
  std::string out = s.srv.output();
  cr_assert_str_eq(out.c_str(), "235 2.7.0 Authentication successful\r\n250 2.1.0 Sender OK\r\n");
  cr_assert(s.srv.authenticated());
  s.srv.auth_done({235, "", ""});  // a stray second answer changes nothing
  cr_assert_str_eq(s.srv.output().c_str(), out.c_str());
}

// Found with tests/fuzz/smtp_server: while an AUTH verdict (or a submit) is pending every
// byte fed was held, without limit. Up to a message plus its commands is still held (a
// BDAT pipeliner may send that much); beyond it the session ends with 421.
Test(smtp_server, input_held_during_pending_auth_is_bounded) {
  server_settings st = auth_settings();
  st.max_message_size = 4096;
  session s(st);
  s.d.auth_async = true;
  s.srv.feed("EHLO c\r\n");
  s.srv.consume_output(s.srv.output().size());
  std::string cred = base64_encode(std::string_view("\0alice\0secret", 13));
  s.srv.feed("AUTH PLAIN " + cred + "\r\nMAIL FROM:<a@b.test>\r\n");
  s.srv.feed(std::string(4000, 'x'));  // within the limit: held quietly
  cr_assert(s.srv.output().empty());
  cr_assert_not(s.srv.closing());
  std::string flood(1 << 20, 'x');
  for (int i = 0; i < 64 && !s.srv.closing(); ++i) s.srv.feed(flood);
  cr_assert(s.srv.closing());
  std::string out = s.srv.output();
  cr_assert(out.rfind("421 4.7.0 ", 0) == 0, "got %s", out.c_str());
  s.srv.auth_done({235, "", ""});  // the late verdict changes nothing
  cr_assert_str_eq(s.srv.output().c_str(), out.c_str());
}
