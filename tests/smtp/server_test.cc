// server_test.cc: the SMTP server state machine driven by transcripts, no sockets.
#include <criterion/criterion.h>

#include <random>
#include <string>
#include <vector>

#include "smtp/base64.h"
#include "smtp/dot_stuff.h"
#include "smtp/server.h"

using namespace sluice::smtp;
using namespace std::literals;

namespace {

constexpr const char* queued = "250 2.6.0 <id> Queued mail for delivery\r\n";

class test_delegate final : public server_delegate {
 public:
  std::vector<std::string> commands, replies, bodies;
  std::vector<envelope> envelopes;
  std::vector<std::string> auth_calls;
  int submits_pending = 0;
  int tls_requests = 0;
  bool auth_async = false;  // answer AUTH later through server::auth_done()

  reply check_helo(std::string_view domain) override {
    if (domain == "bad.example") return {550, "5.7.1", "Go away"};
    return {250, "", ""};
  }
  reply check_mail(const envelope& env) override {
    if (env.mail_from == "spammer@bad.example") return {550, "5.7.1", "Sender rejected"};
    return {250, "2.1.0", "Sender OK"};
  }
  reply check_recipient(const envelope&, const recipient& rcpt) override {
    if (rcpt.address.starts_with("nobody@")) return {550, "5.1.1", "User unknown"};
    return {250, "", ""};
  }
  void submit(envelope& env, std::string& body) override {
    envelopes.push_back(env);
    bodies.push_back(std::move(body));
    ++submits_pending;
  }
  void start_tls() override { ++tls_requests; }
  reply check_auth(std::string_view mech, std::string_view authzid, std::string_view user,
                   std::string_view password) override {
    auth_calls.push_back(std::string(mech) + "|" + std::string(authzid) + "|" + std::string(user) + "|" +
                         std::string(password));
    if (auth_async) return {0, "", ""};
    if (user == "alice" && password == "secret") return {235, "", ""};
    return {535, "5.7.8", "Authentication credentials invalid"};
  }
  void on_command(std::string_view line) override { commands.emplace_back(line); }
  void on_reply(std::string_view text) override { replies.emplace_back(text); }
};

server_settings test_settings() {
  server_settings s;
  s.hostname = "mx.test";
  s.banner = "mx.test ESMTP test";
  return s;
}

// One session: feeds input, completes submits at once, collects output.
struct session {
  server_settings settings;
  test_delegate d;
  server srv;
  bool auto_submit = true;
  bool auto_tls = false;

  explicit session(server_settings s = test_settings()) : settings(std::move(s)), srv(settings, d) {}

  void pump() {
    while (auto_submit && d.submits_pending > 0) {
      --d.submits_pending;
      srv.submit_done({250, "2.6.0", "<id> Queued mail for delivery"});
    }
    if (auto_tls && d.tls_requests > 0) {
      d.tls_requests = 0;
      srv.tls_started();
    }
  }
  void feed(std::string_view in) {
    srv.feed(in);
    pump();
  }
  std::string take() {
    std::string o = srv.output();
    srv.consume_output(o.size());
    return o;
  }
  std::string run(std::string_view in) {
    feed(in);
    return take();
  }
};

std::string escaped(std::string_view in) {
  std::string out;
  for (char c : in) {
    if (c == '\r') out += "\\r";
    else if (c == '\n') out += "\\n\n";
    else if (c == '\0') out += "\\0";
    else out += c;
  }
  return out;
}

#define EXPECT_OUT(s, input, want)                                                              \
  do {                                                                                          \
    std::string got_ = (s).run(input);                                                          \
    std::string want_ = (want);                                                                 \
    cr_assert(got_ == want_, "input: %s\ngot:\n%s\nwant:\n%s", #input, escaped(got_).c_str(), \
              escaped(want_).c_str());                                                          \
  } while (0)

std::string ehlo_reply(bool starttls = false, bool auth = false) {
  std::string r = "250-mx.test\r\n250-PIPELINING\r\n250-SIZE 37748736\r\n250-8BITMIME\r\n"
                  "250-ENHANCEDSTATUSCODES\r\n250-DSN\r\n250-CHUNKING\r\n250-BINARYMIME\r\n";
  if (!starttls && !auth) return r + "250 SMTPUTF8\r\n";
  r += "250-SMTPUTF8\r\n";
  if (starttls && auth) return r + "250-STARTTLS\r\n250 AUTH PLAIN LOGIN\r\n";
  return r + (starttls ? "250 STARTTLS\r\n" : "250 AUTH PLAIN LOGIN\r\n");
}

// Everything observable from one run of a transcript.
struct outcome {
  std::string output;
  std::vector<std::string> bodies;
  std::vector<std::string> senders;
  std::vector<std::string> commands;
  bool closing;
};

outcome run_split(const server_settings& settings, std::string_view input, std::vector<size_t> cuts) {
  session s(settings);
  s.auto_tls = true;
  size_t at = 0;
  for (size_t cut : cuts) {
    s.feed(input.substr(at, cut - at));
    at = cut;
  }
  s.feed(input.substr(at));
  outcome o{s.take(), s.d.bodies, {}, s.d.commands, s.srv.closing()};
  for (auto& e : s.d.envelopes) o.senders.push_back(e.mail_from + ">" + std::to_string(e.recipients.size()));
  return o;
}

// Feeds the transcript whole, split at every single byte boundary, and one byte at
// a time; everything observable must be identical.
outcome check_split_invariance(const server_settings& settings, std::string_view input) {
  outcome whole = run_split(settings, input, {});
  auto same = [&](const outcome& o, const char* how, size_t where) {
    cr_assert_str_eq(o.output.c_str(), whole.output.c_str(), "%s %zu", how, where);
    cr_assert_eq(o.bodies, whole.bodies, "%s %zu", how, where);
    cr_assert_eq(o.senders, whole.senders, "%s %zu", how, where);
    cr_assert_eq(o.commands, whole.commands, "%s %zu", how, where);
    cr_assert_eq(o.closing, whole.closing, "%s %zu", how, where);
  };
  for (size_t k = 1; k < input.size(); ++k) same(run_split(settings, input, {k}), "split at", k);
  std::vector<size_t> every;
  for (size_t k = 1; k < input.size(); ++k) every.push_back(k);
  same(run_split(settings, input, every), "byte at a time", 0);
  return whole;
}

}  // namespace

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
  EXPECT_OUT(s, "NOOP 12345678901234\r\nNOOP\r\n", "500 5.5.6 Line too long\r\n250 2.0.0 Ok\r\n");
  // A long line arriving in pieces is dropped as it comes, never buffered.
  std::string junk(1 << 20, 'x');
  s.feed("NOOP ");
  s.feed(junk);
  s.feed(junk);
  cr_assert_str_eq(s.srv.output().c_str(), "");
  EXPECT_OUT(s, "tail\r\nNOOP\r\n", "500 5.5.6 Line too long\r\n250 2.0.0 Ok\r\n");
}

// ---- DATA ----

static std::string one_message(session& s, std::string_view content) {
  s.run("MAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\nDATA\r\n");
  return s.run(content);
}

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
      "500 5.5.2 Error: command not recognized\r\n500 5.5.6 Line too long\r\n"
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
  EXPECT_OUT(s, "NOOP " + pass + "\r\n", "500 5.5.6 Line too long\r\n");
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
