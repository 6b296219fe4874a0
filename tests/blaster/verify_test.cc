// verify_test.cc: messages carry a checkable digest; records round-trip; verify counts loss, duplicates, corruption, extras.
#include <criterion/criterion.h>

#include <string>

#include "digest.h"
#include "message.h"
#include "record.h"
#include "verify.h"

using namespace sluice::blaster;

Test(blaster_message, generated_message_checks_and_corruption_is_seen) {
  message_spec spec;
  spec.run_id = "t1";
  spec.rcpts = 3;
  spec.size_min = 500;
  spec.size_max = 5000;
  spec.domains = {{"a.test", 1}, {"b.test", 1}};
  message_factory f(spec, 42);
  generated_message m;
  for (uint64_t n = 0; n < 200; ++n) {
    f.make(n, m);
    cr_assert_eq(m.rcpts.size(), 3u);
    cr_assert_geq(m.content.size(), 480u);
    cr_assert_leq(m.content.size(), 5000u);
    cr_assert(m.content.find("\n.") == std::string::npos, "no line may start with a dot");
    message_check c = check_message(m.content);
    cr_assert(c.ok(), "message %llu", (unsigned long long)n);
    cr_assert_eq(c.id, "t1-" + std::to_string(n));
    cr_assert_eq(c.actual, digest_hex(m.digest));
  }
  // A relay may add headers (Received:) without harm; a changed body byte is caught.
  std::string relayed = "Received: from x by y\r\n" + m.content;
  cr_assert(check_message(relayed).ok());
  std::string bad = m.content;
  bad[bad.size() - 10] ^= 1;
  message_check c = check_message(bad);
  cr_assert(!c.ok());
  std::string verdict = c.verdict();
  cr_assert_str_eq(verdict.c_str(), "bad");
  std::string none = check_message("Subject: x\r\n\r\nbody\r\n").verdict();
  cr_assert_str_eq(none.c_str(), "none");
}

Test(blaster_message, patterns_expand) {
  std::string s = expand("u{n}.{r}@{domain}{x}", 7, 2, "d.test");
  cr_assert_str_eq(s.c_str(), "u7.2@d.test{x}");
  cr_assert_neq(digest64("abc"), digest64("abd"));
  cr_assert_neq(digest64(std::string(64, 'a')), digest64(std::string(65, 'a')));
}

Test(blaster_record, round_trip_and_queue_id) {
  sent_record s{"r-1", "00ff", "Q1", "a@x", {"b@y", "c@y"}};
  std::string line;
  append_record(line, s);
  sent_record back;
  cr_assert(parse_record(std::string_view(line).substr(0, line.size() - 1), back));
  cr_assert_eq(back.rcpts.size(), 2u);
  cr_assert_eq(back.queue_id, "Q1");
  received_record r{"r-1", "ok", "00ff", "", {"b@y"}};
  line.clear();
  append_record(line, r);
  received_record rb;
  cr_assert(parse_record(std::string_view(line).substr(0, line.size() - 1), rb));
  cr_assert(rb.from.empty(), "the null sender round-trips");
  cr_assert(!parse_record("only\tthree\tfields", rb));
  cr_assert(!rb.dsn && line.find('\t', line.rfind('\t') + 1) == std::string::npos, "five columns: %s", line.c_str());
  // sink --dsn: a sixth column, and readers that know five still read the five.
  r.dsn = "RET=HDRS|NOTIFY=NEVER";
  line.clear();
  append_record(line, r);
  cr_assert_str_eq(line.c_str(), "r-1\tok\t00ff\t-\tb@y\tRET=HDRS|NOTIFY=NEVER\n");
  cr_assert(parse_record(std::string_view(line).substr(0, line.size() - 1), rb));
  cr_assert(rb.dsn && *rb.dsn == "RET=HDRS|NOTIFY=NEVER" && rb.rcpts.size() == 1 && rb.rcpts[0] == "b@y");
  cr_assert(parse_record("r-2\tok\t00ff\ta@x\tb@y\t\tlater", rb), "columns after the sixth are ignored");
  cr_assert(rb.dsn && rb.dsn->empty() && rb.id == "r-2");
  std::string q1 = queue_id_from_reply("Ok: queued as 4Fk2x1");
  cr_assert_str_eq(q1.c_str(), "4Fk2x1");
  std::string q2 = queue_id_from_reply("066153ACC0BB6200 Queued mail for delivery");
  cr_assert_str_eq(q2.c_str(), "066153ACC0BB6200");
  std::string q3 = queue_id_from_reply("<066153CF2878C100> Queued mail for delivery");
  cr_assert_str_eq(q3.c_str(), "066153CF2878C100");
}

Test(blaster_verify, counts_lost_duplicated_corrupted_extra) {
  verifier v;
  for (int i = 0; i < 10; ++i) v.add_sent({"m-" + std::to_string(i), "d", "q", "a@x", {"b@y", "c@y"}});
  for (int i = 0; i < 10; ++i) {
    if (i == 3) continue;  // dropped entirely
    std::vector<std::string> rcpts = {"b@y", "c@y"};
    if (i == 4) rcpts = {"b@y"};  // one recipient lost
    v.add_received({"m-" + std::to_string(i), i == 5 ? "bad" : "ok", "d", "a@x", rcpts});
  }
  v.add_received({"m-6", "ok", "d", "a@x", {"b@y", "c@y"}});    // duplicate
  v.add_received({"other-1", "ok", "d", "a@x", {"b@y"}});       // never acknowledged
  auto r = v.result();
  cr_assert_eq(r.sent_messages, 10u);
  cr_assert_eq(r.sent_recipients, 20u);
  cr_assert_eq(r.received_messages, 11u);
  cr_assert_eq(r.lost, 3u);
  cr_assert_eq(r.lost_messages, 1u);
  cr_assert_eq(r.duplicated, 2u);
  cr_assert_eq(r.corrupted, 1u);
  cr_assert_eq(r.extra, 1u);
  cr_assert_eq(r.delivered, 17u);
  cr_assert(!r.ok());

  verifier clean;
  clean.add_sent({"m-1", "d", "q", "a@x", {"b@y"}});
  clean.add_received({"m-1", "ok", "d", "a@x", {"b@y"}});
  clean.add_received({"late-1", "ok", "d", "a@x", {"b@y"}});
  cr_assert(clean.result().ok(), "extra copies alone are not a failure");
}
