// hostile_test.cc: the built sluiced against clients that misbehave on purpose (smuggling, stalled readers).
#include <criterion/criterion.h>

#include <regex>
#include <string>

#include "assertions.h"
#include "harness.h"

using namespace sluice::testing;
using namespace std::literals;

namespace {

// Messages the store holds, from `sluicectl queue list --json`.
size_t queued_count(const sluiced_process& d) {
  auto r = d.ctl("queue list --json");
  std::smatch m;
  static const std::regex count_re("\"messages\"\\s*:\\s*(\\d+)");
  if (!std::regex_search(r.output, m, count_re)) return static_cast<size_t>(-1);
  return std::stoul(m[1]);
}

}  // namespace

// A NUL before the real end of data is a forged end for a hop that reads C strings:
// refused, nothing queued, and the same session can still send a clean message.
Test(integration_hostile, nul_in_data_refused_nothing_queued) {
  sluiced_process d;
  START(d);
  smtp_client c(d.port());
  EXPECT_CODE(c.start_transaction(), 250);
  for (std::string forged : {"\0."s, ".\0"s}) {
    EXPECT_CODE(c.cmd("RCPT TO:<alice@sluice.test>"), 250);
    EXPECT_CODE(c.cmd("DATA"), 354);
    std::string r = c.cmd("Subject: x\r\n\r\nbody\r\n" + forged +
                          "\r\nMAIL FROM:<evil@example.org>\r\nRCPT TO:<bob@sluice.test>\r\nDATA\r\nspoof\r\n.");
    cr_assert(r.starts_with("550 5.6.0 "), "reply: %s", r.c_str());
    EXPECT_CODE(c.cmd("MAIL FROM:<sender@example.org>"), 250);
  }
  cr_assert_eq(queued_count(d), 0u);
  EXPECT_CODE(c.cmd("RCPT TO:<alice@sluice.test>"), 250);
  EXPECT_CODE(c.cmd("DATA"), 354);
  EXPECT_CODE(c.cmd("Subject: clean\r\n\r\nbody\r\n."), 250);
  EXPECT_CODE(c.cmd("QUIT"), 221);
  cr_assert_eq(queued_count(d), 1u);
}

// BDAT carries NUL only for BODY=BINARYMIME.
Test(integration_hostile, nul_in_bdat_only_with_binarymime) {
  sluiced_process d;
  START(d);
  smtp_client c(d.port());
  EXPECT_CODE(c.start_transaction(), 250);
  EXPECT_CODE(c.cmd("RCPT TO:<alice@sluice.test>"), 250);
  std::string chunk = "Subject: x\r\n\r\na\0.\r\n"s;
  c.send_raw("BDAT " + std::to_string(chunk.size()) + " LAST\r\n" + chunk);
  std::string r = c.reply();
  cr_assert(r.starts_with("550 5.6.0 "), "reply: %s", r.c_str());
  cr_assert_eq(queued_count(d), 0u);
  EXPECT_CODE(c.cmd("MAIL FROM:<sender@example.org> BODY=BINARYMIME"), 250);
  EXPECT_CODE(c.cmd("RCPT TO:<alice@sluice.test>"), 250);
  c.send_raw("BDAT " + std::to_string(chunk.size()) + " LAST\r\n" + chunk);
  EXPECT_CODE(c.reply(), 250);
  EXPECT_CODE(c.cmd("QUIT"), 221);
  cr_assert_eq(queued_count(d), 1u);
}
