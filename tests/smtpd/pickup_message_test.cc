// pickup_message_test.cc: envelopes from pickup files, address lists, and the files that are refused.
#include <criterion/criterion.h>

#include <string>

#include "smtpd/pickup_message.h"

using namespace sluice::smtpd;

Test(smtpd_pickup, x_headers_give_the_envelope_and_are_removed) {
  auto r = parse_pickup_file(
      "X-Sender: <robot@example.org>\nX-Receiver: <a@x.test>\nX-Receiver: b@y.test\nFrom: f@example.org\n"
      "To: someone@else.test\nSubject: s\n\nbody\n",
      1 << 20, 100);
  cr_assert(r.ok, "%s", r.error.c_str());
  cr_assert_eq(r.envelope.mail_from, "robot@example.org");
  cr_assert_eq(r.envelope.recipients.size(), 2u);
  cr_assert_eq(r.envelope.recipients[0].address, "a@x.test");
  cr_assert_eq(r.envelope.recipients[1].address, "b@y.test");
  cr_assert_eq(r.body, "From: f@example.org\r\nTo: someone@else.test\r\nSubject: s\r\n\r\nbody\r\n");
}

Test(smtpd_pickup, headers_give_the_envelope_and_bcc_is_removed) {
  auto r = parse_pickup_file(
      "From: \"Robot, R.\" <robot@example.org>\r\nTo: A <a@x.test>, b@y.test (Bee)\r\nCc: team: c@z.test, d@z.test;\r\n"
      "Bcc: hidden@x.test\r\n  , also@x.test\r\nSubject: s\r\n\r\nbody\r\n",
      1 << 20, 100);
  cr_assert(r.ok, "%s", r.error.c_str());
  cr_assert_eq(r.envelope.mail_from, "robot@example.org");
  const char* want[] = {"a@x.test", "b@y.test", "c@z.test", "d@z.test", "hidden@x.test", "also@x.test"};
  cr_assert_eq(r.envelope.recipients.size(), 6u);
  for (size_t i = 0; i < 6; ++i) cr_assert_eq(r.envelope.recipients[i].address, want[i]);
  cr_assert(r.body.find("Bcc") == std::string::npos, "%s", r.body.c_str());
  cr_assert(r.body.find("hidden") == std::string::npos, "%s", r.body.c_str());
  cr_assert(r.body.find("Cc: team: c@z.test") != std::string::npos);
}

Test(smtpd_pickup, sender_header_beats_from_and_duplicates_collapse) {
  auto r = parse_pickup_file("Sender: s@example.org\nFrom: f@example.org\nTo: a@x.test, A@x.test, a@x.test\n\nb\n", 1000, 100);
  cr_assert(r.ok, "%s", r.error.c_str());
  cr_assert_eq(r.envelope.mail_from, "s@example.org");
  cr_assert_eq(r.envelope.recipients.size(), 2u, "exact duplicates collapse; case variants are kept");
}

Test(smtpd_pickup, unusable_files_say_why) {
  struct {
    const char* content;
    const char* reason;
  } cases[] = {
      {"this is not a message at all\n", "no header block"},
      {"From: f@example.org\nSubject: no recipients\n\nb\n", "no recipients"},
      {"To: a@x.test\nSubject: no sender\n\nb\n", "no sender"},
      {"From: f@example.org\nTo: not an address\n\nb\n", "invalid recipient"},
      {"X-Receiver: \nFrom: f@example.org\nTo: a@x.test\n\nb\n", "X-Receiver"},
      {"", "empty"},
      {" continuation first\n", "continuation"},
  };
  for (const auto& c : cases) {
    auto r = parse_pickup_file(c.content, 1 << 20, 100);
    cr_assert(!r.ok, "must be refused: %s", c.content);
    cr_assert(r.error.find(c.reason) != std::string::npos, "%s -> %s", c.content, r.error.c_str());
  }
  auto big = parse_pickup_file("From: f@example.org\nTo: a@x.test\n\n" + std::string(2000, 'x'), 1000, 100);
  cr_assert(!big.ok);
  cr_assert(big.error.find("exceeds") != std::string::npos, "%s", big.error.c_str());
}

Test(smtpd_pickup, eight_bit_content_is_flagged) {
  auto r = parse_pickup_file("From: f@example.org\nTo: a@x.test\nSubject: caf\xc3\xa9\n\nb\n", 1000, 100);
  cr_assert(r.ok);
  cr_assert(r.envelope.body == sluice::smtp::body_type::eight_bit_mime);
}

// A re-injected message that already went round too many hops is a loop, not mail.
Test(smtpd_pickup, too_many_received_headers_is_a_mail_loop) {
  auto with_hops = [](int hops) {
    std::string m;
    for (int i = 0; i < hops; ++i) m += "Received: from hop" + std::to_string(i) + ".example by relay.example; x\n";
    return m + "From: f@example.org\nTo: a@x.test\n\nbody\n";
  };
  auto looping = parse_pickup_file(with_hops(6), 1 << 20, 5);
  cr_assert(!looping.ok);
  cr_assert(looping.error.find("mail loop") != std::string::npos, "%s", looping.error.c_str());
  auto at_limit = parse_pickup_file(with_hops(5), 1 << 20, 5);
  cr_assert(!at_limit.ok, "the Received: pickup adds would be the sixth");
  auto fine = parse_pickup_file(with_hops(4), 1 << 20, 5);
  cr_assert(fine.ok, "%s", fine.error.c_str());
  cr_assert(fine.body.rfind("Received: from hop0.example", 0) == 0, "trace fields are kept in order");
}
