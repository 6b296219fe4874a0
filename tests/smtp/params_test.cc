// params_test.cc: ESMTP MAIL/RCPT parameters and xtext.
#include <criterion/criterion.h>

#include <string>

#include "smtp/params.h"

using namespace sluice::smtp;

namespace {
int mail_code(std::string_view text, param_extensions ext = {}) {
  mail_params p;
  auto r = parse_mail_params(text, ext, p);
  return r ? r->code : 0;
}
int rcpt_code(std::string_view text, param_extensions ext = {}) {
  rcpt_params p;
  auto r = parse_rcpt_params(text, ext, p);
  return r ? r->code : 0;
}
}  // namespace

Test(smtp_params, mail_all_parameters) {
  param_extensions ext;
  ext.auth = true;
  mail_params p;
  auto r = parse_mail_params("SIZE=12345 body=8bitmime SMTPUTF8 RET=hdrs ENVID=QQ+2B1 AUTH=a+2Bb@example.com", ext, p);
  cr_assert(!r.has_value());
  cr_assert(p.size.has_value());
  cr_assert_eq(*p.size, 12345u);
  cr_assert_eq(p.body, body_type::eight_bit_mime);
  cr_assert(p.smtputf8);
  cr_assert_eq(p.ret, dsn_ret::headers);
  cr_assert_str_eq(p.envid.c_str(), "QQ+1");
  cr_assert(p.auth.has_value());
  cr_assert_str_eq(p.auth->c_str(), "a+b@example.com");
}

Test(smtp_params, mail_body_values) {
  mail_params p;
  cr_assert(!parse_mail_params("BODY=7BIT", {}, p));
  cr_assert_eq(p.body, body_type::seven_bit);
  mail_params q;
  cr_assert(!parse_mail_params("BODY=BINARYMIME RET=FULL", {}, q));
  cr_assert_eq(q.body, body_type::binary_mime);
  cr_assert_eq(q.ret, dsn_ret::full);
  cr_assert_eq(mail_code("BODY=9BIT"), 501);
  param_extensions no_chunking;
  no_chunking.binarymime = false;
  cr_assert_eq(mail_code("BODY=BINARYMIME", no_chunking), 501);
}

Test(smtp_params, unknown_and_duplicate_are_555) {
  mail_params p;
  auto r = parse_mail_params("FOO=bar", {}, p);
  cr_assert(r.has_value());
  cr_assert_eq(r->code, 555);
  cr_assert_str_eq(r->enhanced.c_str(), "5.5.4");
  cr_assert_eq(mail_code("SIZE=1 SIZE=2"), 555);
  cr_assert_eq(mail_code("SMTPUTF8 smtputf8"), 555);
  cr_assert_eq(rcpt_code("NOTIFY=NEVER NOTIFY=NEVER"), 555);
  cr_assert_eq(rcpt_code("SIZE=10"), 555);
  cr_assert_eq(mail_code("NOTIFY=NEVER"), 555);
  cr_assert_eq(mail_code("AUTH=<>"), 555);  // AUTH not offered
  param_extensions no_dsn;
  no_dsn.dsn = false;
  cr_assert_eq(mail_code("RET=FULL", no_dsn), 555);
  cr_assert_eq(rcpt_code("NOTIFY=NEVER", no_dsn), 555);
  param_extensions no_utf8;
  no_utf8.smtputf8 = false;
  cr_assert_eq(mail_code("SMTPUTF8", no_utf8), 555);
}

Test(smtp_params, malformed_values_are_501) {
  cr_assert_eq(mail_code("SIZE=abc"), 501);
  cr_assert_eq(mail_code("SIZE"), 501);
  cr_assert_eq(mail_code("SIZE="), 501);
  cr_assert_eq(mail_code("RET=SOME"), 501);
  cr_assert_eq(mail_code("ENVID=a+ZZ"), 501);
  cr_assert_eq(mail_code("ENVID=" + std::string(101, 'x')), 501);
  cr_assert_eq(mail_code("SMTPUTF8=yes"), 501);
  cr_assert_eq(mail_code("=x"), 501);
  cr_assert_eq(mail_code("-X=1"), 501);
}

Test(smtp_params, size_saturates) {
  mail_params p;
  cr_assert(!parse_mail_params("SIZE=99999999999999999999999999", {}, p));
  cr_assert_eq(*p.size, UINT64_MAX);
}

Test(smtp_params, notify_rules) {
  rcpt_params p;
  cr_assert(!parse_rcpt_params("NOTIFY=success,Failure,DELAY", {}, p));
  cr_assert_eq(p.notify, notify_success | notify_failure | notify_delay);
  rcpt_params q;
  cr_assert(!parse_rcpt_params("notify=never", {}, q));
  cr_assert_eq(q.notify, notify_never);
  cr_assert_eq(rcpt_code("NOTIFY=NEVER,SUCCESS"), 501);
  cr_assert_eq(rcpt_code("NOTIFY=SUCCESS,"), 501);
  cr_assert_eq(rcpt_code("NOTIFY=SOMETIMES"), 501);
}

Test(smtp_params, orcpt_decoded) {
  rcpt_params p;
  cr_assert(!parse_rcpt_params("ORCPT=rfc822;Bob+2Bx@example.com NOTIFY=FAILURE", {}, p));
  cr_assert_str_eq(p.orcpt.c_str(), "rfc822;Bob+x@example.com");
  cr_assert_eq(p.notify, notify_failure);
  cr_assert_eq(rcpt_code("ORCPT=rfc822"), 501);
  cr_assert_eq(rcpt_code("ORCPT=;a@b"), 501);
  cr_assert_eq(rcpt_code("ORCPT=rfc822;a+4"), 501);
}

Test(smtp_params, xtext_round_trip) {
  std::string enc = xtext_encode("a+b=c d\x01");
  cr_assert_str_eq(enc.c_str(), "a+2Bb+3Dc+20d+01");
  std::string dec;
  cr_assert(xtext_decode(enc, dec));
  cr_assert_eq(dec, std::string("a+b=c d\x01"));
  cr_assert(xtext_decode("x+2b", dec));
  cr_assert_str_eq(dec.c_str(), "x+");
  cr_assert(!xtext_decode("x+2", dec));
  cr_assert(!xtext_decode("a=b", dec));
  cr_assert(!xtext_decode("a b", dec));
}
