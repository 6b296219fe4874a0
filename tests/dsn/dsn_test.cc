// dsn_test.cc: every kind of DSN composed and read back by Python's email package (parse_report.py), the
// hostile-text, size, line-end and boundary cases, and the NOTIFY rule table of wanted().
// Untrusted input: none (the tests build hostile inputs themselves).
#include "dsn/dsn.h"

#include <criterion/criterion.h>

#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "report_reader.h"

using namespace sluice;
using dsn_test::count;
using dsn_test::field;
using dsn_test::json;
using dsn_test::parse_report;

namespace {

constexpr int64_t now_ms = 1'764'597'399'000;  // Mon, 01 Dec 2025 13:56:39 UTC
constexpr std::string_view now_text = "Mon, 01 Dec 2025 13:56:39 +0000";
constexpr int64_t arrived_ms = 1'764'590'000'000;      // Mon, 01 Dec 2025 11:53:20 UTC
constexpr int64_t retry_until_ms = 1'765'000'000'000;  // Sat, 06 Dec 2025 05:46:40 UTC

const std::string original =
    "From: Sender <sender@example.org>\r\n"
    "To: user@example.com\r\n"
    "Subject: Hello there\r\n"
    "\r\n"
    "Body line 1\r\n"
    ".dot line\r\n";

smtp::envelope envelope_to(std::vector<std::string> rcpts) {
  smtp::envelope e;
  e.helo = "client.example.org";
  e.esmtp = true;
  e.mail_from = "sender@example.org";
  for (auto& a : rcpts) e.recipients.push_back(smtp::recipient{std::move(a), smtp::notify_unspecified, ""});
  return e;
}

// One original, its chunks kept alive for the call.
struct fixture {
  smtp::envelope env = envelope_to({"user@example.com"});
  std::vector<std::string_view> chunks{original};
  dsn::settings s{"mta.example.net", 50'000};

  dsn::original_message message() const {
    dsn::original_message m;
    m.envelope = &env;
    m.queue_id = "0000000000ABCDEF";
    m.received_at_ms = arrived_ms;
    m.body = chunks;
    return m;
  }
  dsn::report compose(const std::vector<dsn::recipient_report>& rs, std::string_view id = "dsn-1") const {
    return dsn::compose(message(), rs, s, now_ms, id);
  }
};

dsn::recipient_report rcpt(std::string address, dsn::action what, std::string status, std::string remote = "",
                           std::string diagnostic = "") {
  dsn::recipient_report r;
  r.final_recipient = std::move(address);
  r.what = what;
  r.status = std::move(status);
  r.remote_mta = std::move(remote);
  r.diagnostic = std::move(diagnostic);
  return r;
}

dsn::recipient_report failed_rcpt() {
  dsn::recipient_report r = rcpt("user@example.com", dsn::action::failed, "5.1.1", "mx1.example.net[192.0.2.1]:25",
                                 "550 5.1.1 <user@example.com>: no such user");
  r.last_attempt_ms = now_ms - 1000;
  return r;
}

// The explanation with its wrapping undone, so phrases are found wherever the lines broke.
std::string flat(const json& j) {
  std::string out;
  for (const char c : j["text"].s) {
    const bool blank = c == '\n' || c == ' ';
    if (blank && (out.empty() || out.back() == ' ')) continue;
    out.push_back(blank ? ' ' : c);
  }
  return out;
}

// Each named field of a block holds exactly one value, the one given.
void expect_fields(const json& block, std::initializer_list<std::pair<std::string_view, std::string_view>> want) {
  for (const auto& [name, value] : want) {
    cr_assert_eq(count(block, name), 1u, "one %s field", name.data());
    cr_assert_eq(field(block, name), value, "%s: %s", name.data(), field(block, name).c_str());
  }
}

// What every report must be, whatever its kind: a clean multipart/report in CRLF lines SMTP can carry.
void assert_well_formed(const json& j, std::string_view status_type = "message/delivery-status") {
  cr_assert_eq(j["content_type"].s, "multipart/report");
  cr_assert_eq(j["report_type"].s, "delivery-status");
  cr_assert_eq(j["defects"].size(), 0u, "the MIME parser found defects: %s", j["defects"][0].s.c_str());
  cr_assert_eq(j["parts"].size(), 3u);
  cr_assert_eq(j["parts"][0].s, "text/plain");
  cr_assert_eq(j["text_charset"].s, "utf-8");
  cr_assert_eq(j["parts"][1].s, status_type);
  cr_assert(!j["bare_lf"].b && !j["bare_cr"].b, "every line ends in CRLF");
  cr_assert(j["ends_crlf"].b);
  cr_assert_lt(j["max_line"].n, 999, "longest line %g octets", j["max_line"].n);
  const json& h = j["headers"];
  cr_assert_eq(field(h, "from"), "Mail Delivery System <MAILER-DAEMON@mta.example.net>");
  cr_assert_eq(field(h, "auto-submitted"), "auto-replied");
  cr_assert_eq(field(h, "mime-version"), "1.0");
  cr_assert_eq(field(h, "date"), now_text);
  cr_assert_eq(j["message"]["reporting-mta"][0].s, "dns; mta.example.net");
}

}  // namespace

Test(dsn, failure_echoes_envid_orcpt_and_returns_the_whole_message) {
  fixture f;
  f.env.envid = "QQ314159";
  f.env.recipients[0].orcpt = "rfc822;User@Example.com";
  auto r = failed_rcpt();
  r.original_recipient = "rfc822;User@Example.com";
  const dsn::report rep = f.compose({r});
  cr_assert_eq(rep.recipient, "sender@example.org");
  cr_assert(!rep.eight_bit && !rep.smtputf8);

  const json j = parse_report(rep.content);
  assert_well_formed(j);
  const json& h = j["headers"];
  cr_assert_eq(field(h, "to"), "<sender@example.org>");
  cr_assert_eq(field(h, "subject"), "Undelivered Mail Returned to Sender");
  cr_assert_eq(field(h, "message-id"), "<dsn-1@mta.example.net>");

  expect_fields(j["message"], {{"original-envelope-id", "QQ314159"},
                               {"arrival-date", "Mon, 01 Dec 2025 11:53:20 +0000"},
                               {"received-from-mta", "dns; client.example.org"},
                               {"x-sluice-queue-id", "0000000000ABCDEF"}});
  cr_assert_eq(j["recipients"].size(), 1u);
  const json& rc = j["recipients"][0];
  expect_fields(rc, {{"original-recipient", "rfc822;User@Example.com"},
                     {"final-recipient", "rfc822; user@example.com"},
                     {"action", "failed"},
                     {"status", "5.1.1"},
                     {"remote-mta", "dns; mx1.example.net"},
                     {"diagnostic-code", "smtp; 550 5.1.1 <user@example.com>: no such user"},
                     {"last-attempt-date", "Mon, 01 Dec 2025 13:56:38 +0000"}});
  cr_assert(!rc.has("will-retry-until"));

  const json& ret = j["returned"];
  cr_assert_eq(ret["type"].s, "message/rfc822", "RET absent on a failure returns the whole message");
  cr_assert_eq(ret["subject"].s, "Hello there");
  cr_assert_eq(ret["body"].s, "Body line 1\n.dot line\n", "body returned as it was: %s", ret["body"].s.c_str());

  const std::string text = flat(j);
  cr_assert(text.find("<user@example.com>") != std::string::npos, "%s", text.c_str());
  cr_assert(text.find("no such user") != std::string::npos);
  cr_assert(text.find("mx1.example.net[192.0.2.1]:25") != std::string::npos);
  cr_assert(text.find("attached below") != std::string::npos);
}

Test(dsn, envid_and_orcpt_absent_leave_their_fields_out) {
  fixture f;
  dsn::recipient_report r = failed_rcpt();
  r.remote_mta.clear();
  r.diagnostic.clear();
  r.last_attempt_ms = 0;
  r.status = "bogus";
  const json j = parse_report(f.compose({r}).content);
  assert_well_formed(j);
  cr_assert(!j["message"].has("original-envelope-id"));
  const json& rc = j["recipients"][0];
  cr_assert(!rc.has("original-recipient"));
  cr_assert(!rc.has("remote-mta"));
  cr_assert(!rc.has("diagnostic-code"));
  cr_assert(!rc.has("last-attempt-date"));
  cr_assert_eq(field(rc, "status"), "5.0.0", "a malformed status becomes the action's x.0.0");
}

Test(dsn, ret_hdrs_returns_only_the_header_section) {
  fixture f;
  f.env.ret = smtp::dsn_ret::headers;
  const json j = parse_report(f.compose({failed_rcpt()}).content);
  assert_well_formed(j);
  const json& ret = j["returned"];
  cr_assert_eq(ret["type"].s, "text/rfc822-headers");
  cr_assert_eq(field(ret["headers"], "subject"), "Hello there");
  cr_assert_eq(field(ret["headers"], "from"), "Sender <sender@example.org>");
  cr_assert(ret["text"].s.find("Body line") == std::string::npos, "no body: %s", ret["text"].s.c_str());
  cr_assert(flat(j).find("only the headers") != std::string::npos, "%s", flat(j).c_str());
}

Test(dsn, original_over_the_limit_returns_headers_and_says_why) {
  fixture f;
  f.env.ret = smtp::dsn_ret::full;
  f.s.return_content_limit = 1000;
  std::string big = original;
  for (int i = 0; i < 100; ++i) big += "0123456789012345678901234567890123456789012345678\r\n";
  f.chunks = {big};
  const json j = parse_report(f.compose({failed_rcpt()}).content);
  assert_well_formed(j);
  cr_assert_eq(j["returned"]["type"].s, "text/rfc822-headers");
  cr_assert_eq(field(j["returned"]["headers"], "subject"), "Hello there");
  const std::string text = flat(j);
  cr_assert(text.find(std::to_string(big.size()) + " bytes") != std::string::npos, "%s", text.c_str());
  cr_assert(text.find("1000 bytes") != std::string::npos, "%s", text.c_str());

  // The stored size counts even when the caller hands over fewer bytes than it.
  fixture g;
  g.s.return_content_limit = 1000;
  dsn::original_message m = g.message();
  m.body_size = 5000;
  const json k = parse_report(dsn::compose(m, std::vector{failed_rcpt()}, g.s, now_ms, "dsn-2").content);
  cr_assert_eq(k["returned"]["type"].s, "text/rfc822-headers");

  // At the limit exactly it still goes back whole.
  fixture e;
  e.s.return_content_limit = original.size();
  cr_assert_eq(parse_report(e.compose({failed_rcpt()}).content)["returned"]["type"].s, "message/rfc822");
}

Test(dsn, body_lines_smtp_cannot_carry_return_headers_only) {
  fixture f;
  const std::string body = original + std::string(1500, 'x') + "\r\n";
  f.chunks = {body};
  const json j = parse_report(f.compose({failed_rcpt()}).content);
  assert_well_formed(j);
  cr_assert_eq(j["returned"]["type"].s, "text/rfc822-headers");
  cr_assert(flat(j).find("cannot carry") != std::string::npos, "%s", flat(j).c_str());
}

Test(dsn, oversized_header_section_is_cut_after_a_whole_line) {
  fixture f;
  f.env.ret = smtp::dsn_ret::headers;
  std::string headers = "Subject: many headers\r\n";
  while (headers.size() < 200'000) headers += "X-Filler: " + std::string(60, 'f') + "\r\n";
  f.chunks = {headers};  // no blank line at all: every byte is header section
  const json j = parse_report(f.compose({failed_rcpt()}).content);
  assert_well_formed(j);
  const json& ret = j["returned"];
  cr_assert_eq(ret["type"].s, "text/rfc822-headers");
  cr_assert_eq(field(ret["headers"], "subject"), "many headers");
  const std::string& kept = ret["text"].s;
  cr_assert(kept.size() > 60'000 && kept.size() <= 64 * 1024, "%zu bytes kept", kept.size());
  cr_assert(kept.ends_with(std::string(60, 'f') + "\n"), "cut after a whole line");
  cr_assert(flat(j).find("cut short") != std::string::npos, "%s", flat(j).c_str());
}

Test(dsn, delay_reports_will_retry_until_and_headers_only) {
  fixture f;
  dsn::recipient_report r = failed_rcpt();
  r.what = dsn::action::delayed;
  r.status = "4.4.1";
  r.diagnostic = "421 4.4.1 try again later";
  r.will_retry_until_ms = retry_until_ms;
  const json j = parse_report(f.compose({r}).content);
  assert_well_formed(j);
  cr_assert_eq(field(j["headers"], "subject"), "Delayed Mail (still being retried)");
  expect_fields(j["recipients"][0], {{"action", "delayed"},
                                     {"status", "4.4.1"},
                                     {"diagnostic-code", "smtp; 421 4.4.1 try again later"},
                                     {"will-retry-until", "Sat, 06 Dec 2025 05:46:40 +0000"}});
  cr_assert_eq(j["returned"]["type"].s, "text/rfc822-headers", "a delay without RET=FULL returns headers");
  cr_assert(flat(j).find("Sat, 06 Dec 2025 05:46:40 +0000") != std::string::npos, "%s", flat(j).c_str());

  f.env.ret = smtp::dsn_ret::full;
  const json full = parse_report(f.compose({r}).content);
  cr_assert_eq(full["returned"]["type"].s, "message/rfc822", "RET=FULL returns the whole message");
  cr_assert_eq(full["returned"]["subject"].s, "Hello there");
}

Test(dsn, success_reports_delivered_and_relayed_together) {
  fixture f;
  f.env = envelope_to({"a@example.com", "b@example.com"});
  const dsn::recipient_report a = rcpt("a@example.com", dsn::action::delivered, "2.1.5", "mx.example.com[192.0.2.7]:25",
                                       "250 2.0.0 Ok: queued as 4F3");
  dsn::recipient_report b = rcpt("b@example.com", dsn::action::relayed, "");
  b.will_retry_until_ms = retry_until_ms;  // meaningless unless delayed: must not appear
  const json j = parse_report(f.compose({a, b}).content);
  assert_well_formed(j);
  cr_assert_eq(field(j["headers"], "subject"), "Successful Mail Delivery Report");
  cr_assert_eq(j["recipients"].size(), 2u);
  expect_fields(j["recipients"][0], {{"final-recipient", "rfc822; a@example.com"},
                                     {"action", "delivered"},
                                     {"status", "2.1.5"},
                                     {"remote-mta", "dns; mx.example.com"},
                                     {"diagnostic-code", "smtp; 250 2.0.0 Ok: queued as 4F3"}});
  const json& rb = j["recipients"][1];
  expect_fields(rb, {{"final-recipient", "rfc822; b@example.com"}, {"action", "relayed"}, {"status", "2.0.0"}});
  cr_assert(!rb.has("will-retry-until"));
  cr_assert_eq(j["returned"]["type"].s, "text/rfc822-headers");
}

Test(dsn, hostile_text_cannot_add_fields_or_headers) {
  fixture f;
  f.env.mail_from = "sender@example.org\r\nBcc: victim@example.net";
  f.env.envid = "id\r\nAction: delivered";
  f.env.helo = "evil\r\nX-Injected: helo";
  dsn::recipient_report r = failed_rcpt();
  r.diagnostic = "550 5.1.1 bad\r\nAction: delivered\r\n\r\nFinal-Recipient: rfc822; evil@example.net\r\n";
  r.remote_mta = "mx.evil\r\nX-Injected: 1[192.0.2.9]:25";
  r.final_recipient = "user@example.com\nStatus: 2.0.0";
  r.original_recipient = "rfc822;x@example.com\r\nX-Injected: orcpt";
  const dsn::report rep = f.compose({r});
  const json j = parse_report(rep.content);
  assert_well_formed(j);
  cr_assert(!j["headers"].has("bcc"), "no header from the sender address");
  cr_assert_eq(j["recipients"].size(), 1u, "no recipient block from the diagnostic");
  const json& rc = j["recipients"][0];
  expect_fields(rc, {{"action", "failed"}, {"status", "5.1.1"}});
  cr_assert_eq(count(rc, "final-recipient"), 1u);
  cr_assert(!rc.has("x-injected") && !j["message"].has("x-injected") && !j["message"].has("action"));
  cr_assert_eq(field(rc, "diagnostic-code"),
               "smtp; 550 5.1.1 bad Action: delivered Final-Recipient: rfc822; evil@example.net");
  cr_assert_eq(field(j["message"], "original-envelope-id"), "id+0D+0AAction:+20delivered",
               "a decoded ENVID that is not printable goes back as xtext");
  cr_assert_eq(field(rc, "original-recipient"), "rfc822;x@example.com+0D+0AX-Injected:+20orcpt");
  const std::string& raw = j["text"].s;
  cr_assert(raw.find("\nAction: delivered") == std::string::npos, "the reply stays on its line: %s", raw.c_str());
  cr_assert(flat(j).find("reply: 550 5.1.1 bad Action: delivered") != std::string::npos, "%s", raw.c_str());
}

Test(dsn, long_diagnostics_are_folded_below_998_octets) {
  fixture f;
  dsn::recipient_report r = failed_rcpt();
  r.diagnostic = "550 5.7.1";
  for (int i = 0; i < 300; ++i) r.diagnostic += " word" + std::to_string(i);
  const std::string unbroken(1500, 'z');
  r.diagnostic += " " + unbroken;
  const json j = parse_report(f.compose({r}).content);
  assert_well_formed(j);
  const std::string code = field(j["recipients"][0], "diagnostic-code");
  cr_assert(code.starts_with("smtp; 550 5.7.1 word0 word1 word2"), "%s", code.c_str());
  cr_assert(code.find("word298 word299 zzz") != std::string::npos, "folds unfold to the same words");
  cr_assert_eq(count(j["recipients"][0], "action"), 1u);

  // Past 4000 octets the reply is cut, and says so.
  r.diagnostic = "550 " + std::string(9000, 'y');
  const json k = parse_report(f.compose({r}).content);
  assert_well_formed(k);
  const std::string cut = field(k["recipients"][0], "diagnostic-code");
  cr_assert(cut.ends_with("..."), "%s", cut.c_str());
  cr_assert_lt(cut.size(), 4100u);
}

Test(dsn, smtputf8_addresses_use_the_global_types) {
  fixture f;
  f.env.smtputf8 = true;
  f.env.mail_from = "délia@exämple.org";
  f.env.recipients = {smtp::recipient{"用户@例子.广告", smtp::notify_unspecified, "utf-8;用户@例子.广告"}};
  const std::string body = "From: délia@exämple.org\r\nSubject: Grüße\r\n\r\nHallo 用户\r\n";
  f.chunks = {body};
  dsn::recipient_report r = failed_rcpt();
  r.final_recipient = "用户@例子.广告";
  r.original_recipient = "utf-8;用户@例子.广告";
  r.diagnostic = "550 5.1.1 <用户@例子.广告>: unknown";
  const dsn::report rep = f.compose({r});
  cr_assert(rep.smtputf8);
  cr_assert(rep.eight_bit);
  cr_assert_eq(rep.recipient, "délia@exämple.org");
  const json j = parse_report(rep.content);
  assert_well_formed(j, "message/global-delivery-status");
  cr_assert_eq(field(j["headers"], "to"), "<délia@exämple.org>");
  expect_fields(j["recipients"][0], {{"final-recipient", "utf-8; 用户@例子.广告"},
                                     {"original-recipient", "utf-8;用户@例子.广告"},
                                     {"diagnostic-code", "smtp; 550 5.1.1 <用户@例子.广告>: unknown"}});
  cr_assert_eq(j["returned"]["type"].s, "message/global");
  cr_assert_eq(j["returned"]["subject"].s, "Grüße");
  cr_assert_eq(j["returned"]["body"].s, "Hallo 用户\n");
  cr_assert(flat(j).find("用户@例子.广告") != std::string::npos);

  // Headers only: RFC 6533's message/global-headers.
  f.env.ret = smtp::dsn_ret::headers;
  const json h = parse_report(f.compose({r}).content);
  cr_assert_eq(h["returned"]["type"].s, "message/global-headers");
  cr_assert_eq(field(h["returned"]["headers"], "subject"), "Grüße");
}

Test(dsn, eight_bit_content_without_smtputf8_stays_plain_delivery_status) {
  fixture f;
  const std::string body = "Subject: plain\r\n\r\ncaf\xc3\xa9\r\n";
  f.chunks = {body};
  const dsn::report rep = f.compose({failed_rcpt()});
  cr_assert(rep.eight_bit);
  cr_assert(!rep.smtputf8);
  const json j = parse_report(rep.content);
  assert_well_formed(j);
  cr_assert_eq(j["returned"]["type"].s, "message/rfc822");
  cr_assert_eq(j["returned"]["cte"].s, "8bit");
  cr_assert_eq(field(j["headers"], "content-transfer-encoding"), "8bit");
}

Test(dsn, boundary_is_changed_when_the_content_holds_it) {
  fixture f;
  const std::string first = parse_report(f.compose({failed_rcpt()}).content)["boundary"].s;
  cr_assert(!first.empty());
  const std::string body = "Subject: trap\r\n\r\nbefore\r\n--" + first +
                           "\r\nContent-Type: text/plain\r\n\r\nfake\r\n--" + first + "--\r\nafter\r\n";
  f.chunks = {body};
  const json j = parse_report(f.compose({failed_rcpt()}).content);
  assert_well_formed(j);
  cr_assert_neq(j["boundary"].s, first);
  cr_assert_eq(j["returned"]["subject"].s, "trap");
  cr_assert_eq(j["returned"]["body"].s,
               "before\n--" + first + "\nContent-Type: text/plain\n\nfake\n--" + first + "--\nafter\n",
               "returned intact: %s", j["returned"]["body"].s.c_str());

  // A reply can carry it too.
  fixture g;
  dsn::recipient_report r = failed_rcpt();
  r.diagnostic = "550 5.1.1 --" + first + "--";
  const json k = parse_report(g.compose({r}).content);
  assert_well_formed(k);
  cr_assert_neq(k["boundary"].s, first);
}

Test(dsn, all_header_originals_and_bare_lf_give_valid_reports) {
  fixture f;
  const std::string headers_only = "Subject: only headers\nX-Foo: bar";
  f.chunks = {headers_only};
  const json j = parse_report(f.compose({failed_rcpt()}).content);
  assert_well_formed(j);
  cr_assert_eq(j["returned"]["type"].s, "message/rfc822");
  cr_assert_eq(j["returned"]["subject"].s, "only headers");
  cr_assert_eq(field(j["returned"]["headers"], "x-foo"), "bar");
  cr_assert_eq(j["returned"]["body"].s, "");

  f.env.ret = smtp::dsn_ret::headers;
  const json h = parse_report(f.compose({failed_rcpt()}).content);
  assert_well_formed(h);
  cr_assert_eq(h["returned"]["type"].s, "text/rfc822-headers");
  cr_assert_eq(field(h["returned"]["headers"], "x-foo"), "bar");

  // Bare LF, a bare CR, and CRLF split across chunks.
  fixture g;
  const std::string a = "Subject: split\r", b = "\nX-A: 1\n\nline one\rline two\r", c = "\nend";
  g.chunks = {a, b, c};
  const json k = parse_report(g.compose({failed_rcpt()}).content);
  assert_well_formed(k);
  cr_assert_eq(k["returned"]["subject"].s, "split");
  cr_assert_eq(field(k["returned"]["headers"], "x-a"), "1");
  cr_assert_eq(k["returned"]["body"].s, "line one\nline two\nend\n", "%s", k["returned"]["body"].s.c_str());
}

Test(dsn, empty_original_and_missing_envelope_still_parse) {
  fixture f;
  f.chunks.clear();
  const json j = parse_report(f.compose({failed_rcpt()}).content);
  assert_well_formed(j);
  cr_assert_eq(j["parts"][2].s, "message/rfc822");

  dsn::original_message m = f.message();
  m.envelope = nullptr;
  const dsn::report rep = dsn::compose(m, std::vector{failed_rcpt()}, f.s, now_ms, "x y<z>");
  cr_assert_eq(rep.recipient, "");
  const json k = parse_report(rep.content);
  assert_well_formed(k);
  cr_assert_eq(field(k["headers"], "message-id"), "<xyz@mta.example.net>");
}

Test(dsn, wanted_follows_the_notify_rules) {
  using smtp::notify_delay;
  using smtp::notify_failure;
  using smtp::notify_never;
  using smtp::notify_success;
  using smtp::notify_unspecified;
  struct row {
    uint8_t notify;
    bool failed, delayed_default_on, delayed_default_off, success;
  };
  const row rows[] = {
      {notify_unspecified, true, true, false, false},
      {notify_never, false, false, false, false},
      {notify_failure, true, false, false, false},
      {notify_delay, false, true, true, false},
      {notify_success, false, false, false, true},
      {notify_failure | notify_delay, true, true, true, false},
      {notify_failure | notify_success, true, false, false, true},
      {notify_delay | notify_success, false, true, true, true},
      {notify_failure | notify_delay | notify_success, true, true, true, true},
  };
  for (const row& r : rows) {
    smtp::envelope e = envelope_to({"a@example.com"});
    e.recipients[0].notify = r.notify;
    cr_assert_eq(dsn::wanted(e, 0, dsn::action::failed, true), r.failed, "notify %d failed", r.notify);
    cr_assert_eq(dsn::wanted(e, 0, dsn::action::delayed, true), r.delayed_default_on, "notify %d delay", r.notify);
    cr_assert_eq(dsn::wanted(e, 0, dsn::action::delayed, false), r.delayed_default_off, "notify %d", r.notify);
    cr_assert_eq(dsn::wanted(e, 0, dsn::action::delivered, true), r.success, "notify %d delivered", r.notify);
    cr_assert_eq(dsn::wanted(e, 0, dsn::action::relayed, false), r.success, "notify %d relayed", r.notify);
    cr_assert(!dsn::wanted(e, 1, dsn::action::failed, true), "no recipient 1");
    e.mail_from.clear();  // the null sender: a DSN about a DSN is never sent
    for (const auto a : {dsn::action::failed, dsn::action::delayed, dsn::action::delivered, dsn::action::relayed})
      cr_assert(!dsn::wanted(e, 0, a, true), "null sender, notify %d", r.notify);
  }
  // Each recipient is judged by its own NOTIFY.
  smtp::envelope e = envelope_to({"a@example.com", "b@example.com"});
  e.recipients[1].notify = notify_never;
  cr_assert(dsn::wanted(e, 0, dsn::action::failed, false));
  cr_assert(!dsn::wanted(e, 1, dsn::action::failed, false));
}
