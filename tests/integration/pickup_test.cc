// pickup_test.cc: the pickup directory of the built sluiced: files queued once, unusable ones quarantined, symlinks
// refused, a large file read while SMTP is served.
// Untrusted input: none (the test writes the files the daemon reads).
#include <criterion/criterion.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <regex>
#include <set>
#include <string>
#include <thread>

#include "assertions.h"
#include "harness.h"

using namespace sluice::testing;
namespace fs = std::filesystem;

namespace {

size_t messages_queued(const sluiced_process& d) {
  auto r = d.ctl("queue list --json");
  std::smatch m;
  static const std::regex count_re("\"messages\"\\s*:\\s*(\\d+)");
  if (!std::regex_search(r.output, m, count_re)) return static_cast<size_t>(-1);
  return std::stoul(m[1]);
}

// Writes under a name the scan ignores, then renames: how a careful program drops a file.
void drop(const sluiced_process& d, const std::string& name, const std::string& content) {
  std::string tmp = d.dir() + "/pickup/" + name + ".part";
  std::ofstream(tmp, std::ios::binary) << content;
  fs::rename(tmp, d.dir() + "/pickup/" + name);
}

bool wait_for(const std::function<bool()>& done, int seconds = 10) {
  for (int i = 0; i < seconds * 20; ++i) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return done();
}

// The names in the pickup directory now.
std::set<std::string> pickup_entries(const sluiced_process& d) {
  std::set<std::string> names;
  std::error_code ec;
  for (fs::directory_iterator it(d.dir() + "/pickup", ec), end; !ec && it != end; it.increment(ec))
    names.insert(it->path().filename().string());
  return names;
}

std::string tracking_log(const sluiced_process& d) { return run("cat " + d.dir() + "/log/tracking.csv").output; }

}  // namespace

// A file vanishes from the directory when it is claimed, well before its message is durable,
// so the test waits for the end state (claimed files deleted, which the pickup does only
// once the store has the message) instead of the claim: counting at the claim raced the
// store's commit. Once no claimed file is left nothing can queue a message again, so the
// count is exact: a lost or doubly queued file fails it.
Test(integration_pickup, pickup_directory_queues_and_quarantines) {
  sluiced_process d;
  START(d);
  d.write_file("pickup/tmp.part", "");
  drop(d, "good.eml",
       "X-Sender: <robot@example.org>\nX-Receiver: <alice@sluice.test>\nX-Receiver: <bob@sluice.test>\n"
       "From: Robot <robot@example.org>\nTo: someone@else.example\nSubject: pickup\n\nfrom the pickup directory\n");
  drop(d, "headers.eml",
       "From: Robot <robot@example.org>\nTo: Alice <alice@sluice.test>\nBcc: bob@sluice.test\nSubject: bcc\n\nhidden\n");
  drop(d, "broken.eml", "this is not a message at all\n");
  const std::set<std::string> end_state{"broken.bad", "tmp.part"};
  cr_assert(wait_for([&] { return pickup_entries(d) == end_state; }, 30), "left in pickup: %zu entries; %s",
            pickup_entries(d).size(), d.log().c_str());
  cr_assert_eq(messages_queued(d), 2u);
  // The reason is printed just after the rename the wait above saw.
  cr_assert(wait_for([&] { return d.log().find("broken.eml renamed broken.bad") != std::string::npos; }), "%s",
            d.log().c_str());
  auto list = d.ctl("queue list");
  cr_assert(list.output.find("robot@example.org") != std::string::npos, "%s", list.output.c_str());
  // Tracking lines reach the file in batches a few times a second.
  cr_assert(wait_for([&] {
              std::string t = tracking_log(d);
              return t.find(",\"pickup\",\"file=good.eml") != std::string::npos &&
                     t.find(",\"pickup\",\"file=headers.eml") != std::string::npos;
            }, 30),
            "%s", tracking_log(d).c_str());
  cr_assert_eq(messages_queued(d), 2u);
}

Test(integration_pickup, symlink_is_quarantined_not_followed) {
  sluiced_process d;
  START(d);
  d.write_file("outside/hostname", "From: robot@example.org\nTo: alice@sluice.test\nSubject: secret\n\nsecret\n");
  fs::create_symlink(d.dir() + "/outside/hostname", d.dir() + "/pickup/link.eml");
  drop(d, "good.eml", "From: robot@example.org\nTo: alice@sluice.test\nSubject: fine\n\nfine\n");
  cr_assert(wait_for([&] { return !fs::exists(d.dir() + "/pickup/good.eml") && fs::is_symlink(d.dir() + "/pickup/link.bad"); }),
            "%s", d.log().c_str());
  cr_assert(fs::exists(d.dir() + "/outside/hostname"));
  cr_assert(d.log().find("link.eml renamed link.bad: symbolic link") != std::string::npos, "%s", d.log().c_str());
  cr_assert(wait_for([&] { return messages_queued(d) == 1u; }), "queued %zu", messages_queued(d));
}

// While a 30 MB file is read and parsed, the worker that scans keeps answering SMTP.
Test(integration_pickup, large_file_does_not_hold_smtp_replies, .timeout = 60) {
  sluiced_process d;
  std::string cfg = sluiced_process::default_config();
  cfg.replace(cfg.find("max_message_size = \"1M\""), 23, "max_message_size = \"40M\"");
  // One worker: every session lands on the loop that scans the pickup directory.
  cfg.replace(cfg.find("workers = 2"), 11, "workers = 1");
  d.write_config(cfg);
  START(d);
  std::string big = "From: robot@example.org\nTo: alice@sluice.test\nSubject: big\n\n";
  std::string line(998, 'y');
  line += '\n';
  while (big.size() < (30u << 20)) big += line;
  drop(d, "big.eml", big);
  int greeted = 0;
  for (int i = 0; i < 20 && fs::exists(d.dir() + "/pickup/big.eml"); ++i) {
    smtp_client c(d.port());
    std::string greeting = c.reply();
    EXPECT_CODE(greeting, 220);
    EXPECT_CODE(c.cmd("EHLO client.example"), 250);
    ++greeted;
  }
  cr_assert_geq(greeted, 1);
  cr_assert(wait_for([&] { return messages_queued(d) == 1u; }, 30), "queued %zu: %s", messages_queued(d),
            d.log().c_str());
}
