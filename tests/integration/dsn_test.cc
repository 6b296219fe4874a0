// dsn_test.cc: delivery status notifications end to end: failures, delays, expiry, successes, never about <>, kill -9.
// Untrusted input: none (the reports are parsed back by Python's email package).
#include <criterion/criterion.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "delivery_env.h"

using namespace sluice::testing;

namespace {

const char* zone =
    "mx-host=a.test,mx1.a.test,10\nmx-host=b.test,mx1.a.test,10\nmx-host=c.test,mx1.a.test,10\n"
    "host-record=mx1.a.test,127.0.0.2\n";

// The senders' domain: an accepted domain delivered into Maildirs under the daemon's directory,
// so a report to sender@home.test can be read back from disk.
const std::string home_domain =
    "[[accepted_domain]]\nname = \"home.test\"\ntype = \"authoritative\"\nmailbox = \"maildir\"\n"
    "maildir_root = \"@DIR@/mail\"\n\n";

// The daemon's config with the home domain, and its Maildir root (sluice never creates a
// missing root: that is more likely an unmounted disk than a new installation).
void configure_home(delivery_env& env, const std::string& delivery_keys, const std::string& extra = "") {
  env.configure("", delivery_keys, home_domain + extra);
  run("mkdir -p " + env.daemon.dir() + "/mail");
}

std::string maildir_of(const delivery_env& env, const std::string& local) {
  return env.daemon.dir() + "/mail/home.test/" + local + "/Maildir";
}

// Every message in a Maildir's new/, one JSON line each (tests/integration/clients/maildir_reports.py).
std::vector<std::string> reports_in(const std::string& maildir) {
  const auto r = run("python3 " + source_root() + "/tests/integration/clients/maildir_reports.py " + maildir);
  std::vector<std::string> out;
  std::istringstream lines(r.output);
  std::string line;
  while (std::getline(lines, line))
    if (!line.empty() && line.front() == '{') out.push_back(line);
  return out;
}

// The strings of the list `"key": [...]` in one line of maildir_reports.py's JSON.
std::vector<std::string> json_strings(const std::string& json, const std::string& key) {
  std::vector<std::string> out;
  std::size_t at = json.find("\"" + key + "\": [");
  if (at == std::string::npos) return out;
  at = json.find('[', at) + 1;
  const std::size_t end = json.find(']', at);
  while (true) {
    const std::size_t open = json.find('"', at);
    if (open == std::string::npos || open > end) return out;
    const std::size_t close = json.find('"', open + 1);
    out.push_back(json.substr(open + 1, close - open - 1));
    at = close + 1;
  }
}

bool has(const std::string& json, const std::string& text) { return json.find(text) != std::string::npos; }

// Sends one message over SMTP with the given MAIL and RCPT parameters; returns the final reply.
std::string send_with_params(uint16_t port, const std::string& mail, const std::vector<std::string>& rcpts,
                             const std::string& body = "Subject: dsn test\r\n\r\nhello\r\n") {
  smtp_client c(port);
  c.reply();
  c.cmd("EHLO client.test");
  std::string r = c.cmd("MAIL FROM:" + mail);
  if (code_of(r) != 250) return r;
  for (const auto& rcpt : rcpts)
    if (code_of(r = c.cmd("RCPT TO:" + rcpt)) != 250) return r;
  if (code_of(r = c.cmd("DATA")) != 354) return r;
  c.send_raw(body + ".\r\n");
  r = c.reply();
  c.cmd("QUIT");
  return r;
}

}  // namespace

Test(dsn, one_failure_report_a_delay_report_then_the_expiry_report, .timeout = 120) {
  delivery_env env(zone);
  env.sink("127.0.0.2", {"--reject-rcpt", "bad@*", "--defer-rcpt", "slow@*"});
  configure_home(env, "expire_after = 8\nfailures_before_suspend = 10000\n", "[dsn]\ndelay_after = 2\n");
  cr_assert(env.start(), "%s", env.daemon.log().c_str());
  const std::string reply = send_with_params(env.daemon.port(), "<sender@home.test> RET=HDRS ENVID=env-42",
                                             {"<ok@a.test> NOTIFY=FAILURE ORCPT=rfc822;ok@a.test",
                                              "<bad@b.test> NOTIFY=FAILURE ORCPT=rfc822;Bad@B.test",
                                              "<slow@c.test> NOTIFY=DELAY,FAILURE"});
  cr_assert_eq(code_of(reply), 250, "%s", reply.c_str());
  const std::string id = queue_id_of(reply);
  const std::string box = maildir_of(env, "sender");
  cr_assert(eventually([&] { return reports_in(box).size() >= 3; }, 60'000), "%zu reports\n%s\n%s", reports_in(box).size(),
            env.daemon.log().c_str(), slurp_file(env.daemon.dir() + "/log/tracking.csv").c_str());
  std::this_thread::sleep_for(std::chrono::seconds(3));  // nothing more comes
  const auto reports = reports_in(box);
  cr_assert_eq(reports.size(), 3u, "%zu reports", reports.size());
  // In the order they were made: the refusal, the delay, the expiry.
  const std::string& failure = reports[0];
  cr_assert(has(failure, "\"content_type\": \"multipart/report\"") && has(failure, "\"report_type\": \"delivery-status\""), "%s",
            failure.c_str());
  cr_assert(has(failure, "\"finals\": [\"bad@b.test\"]"), "exactly the refused recipient: %s", failure.c_str());
  cr_assert(has(failure, "\"actions\": [\"failed\"]") && has(failure, "\"statuses\": [\"5.1.1\"]"), "%s", failure.c_str());
  cr_assert(has(failure, "\"orcpts\": [\"Bad@B.test\"]") && has(failure, "\"envid\": \"env-42\""), "%s", failure.c_str());
  cr_assert(has(failure, "\"returned_type\": \"text/rfc822-headers\""), "RET=HDRS: %s", failure.c_str());
  cr_assert(has(failure, "\"return_path\": \"<>\""), "a report's sender is <>: %s", failure.c_str());
  cr_assert(has(failure, "\"auto_submitted\": \"auto-replied\""), "%s", failure.c_str());
  const std::string& delay = reports[1];
  cr_assert(has(delay, "\"finals\": [\"slow@c.test\"]") && has(delay, "\"actions\": [\"delayed\"]"), "%s", delay.c_str());
  cr_assert(has(delay, "will-retry-until"), "%s", delay.c_str());
  const std::string& expiry = reports[2];
  cr_assert(has(expiry, "\"finals\": [\"slow@c.test\"]") && has(expiry, "\"actions\": [\"failed\"]") &&
                has(expiry, "\"statuses\": [\"4.4.7\"]"),
            "%s", expiry.c_str());
  for (const auto& r : reports) cr_assert(!has(r, "ok@a.test\""), "the delivered recipient is not reported: %s", r.c_str());
  // The delivered one arrived; each report is tracked naming the original and its own id.
  cr_assert_eq(env.sinks["127.0.0.2"]->received(), 1u);
  cr_assert(eventually([&] { return env.tracking("DSN").size() == 3; }, 5000), "%zu DSN lines", env.tracking("DSN").size());
  for (const auto& line : env.tracking("DSN")) cr_assert(has(line, id), "%s names %s", line.c_str(), id.c_str());
  cr_assert(eventually([&] { return env.queued_items() == 0; }, 10'000), "%s", env.daemon.ctl("queue list").output.c_str());
}

Test(dsn, success_reports_delivered_relayed_and_passed_on, .timeout = 90) {
  // a.test's MX offers DSN (the request travels on: no report here); b.test's does not
  // ("relayed"); home.test's Maildir is final delivery ("delivered").
  delivery_env env("mx-host=a.test,mx1.a.test,10\nhost-record=mx1.a.test,127.0.0.2\n"
                   "mx-host=b.test,mx1.b.test,10\nhost-record=mx1.b.test,127.0.0.3\n");
  auto& with_dsn = env.sink("127.0.0.2", {"--dsn"});
  env.sink("127.0.0.3");
  configure_home(env, "");
  cr_assert(env.start(), "%s", env.daemon.log().c_str());
  const std::string reply =
      send_with_params(env.daemon.port(), "<sender@home.test> ENVID=s-1",
                       {"<x@a.test> NOTIFY=SUCCESS ORCPT=rfc822;x@a.test", "<y@b.test> NOTIFY=SUCCESS",
                        "<local@home.test> NOTIFY=SUCCESS", "<quiet@b.test>"});
  cr_assert_eq(code_of(reply), 250, "%s", reply.c_str());
  const std::string box = maildir_of(env, "sender");
  // local@home.test's own copy is in its Maildir; the sender gets the success reports.
  cr_assert(eventually([&] { return reports_in(maildir_of(env, "local")).size() == 1; }, 20'000), "%s",
            env.daemon.log().c_str());
  // One report per message and event: the two outcomes make one report when both were
  // recorded before the reporter ran, two when they were not. Either way each reported
  // recipient is in exactly one of them, with its own action.
  std::vector<std::pair<std::string, std::string>> reported;  // (final recipient, action)
  auto collect = [&] {
    reported.clear();
    for (const auto& r : reports_in(box)) {
      const auto finals = json_strings(r, "finals"), actions = json_strings(r, "actions");
      cr_assert_eq(finals.size(), actions.size(), "%s", r.c_str());
      for (std::size_t i = 0; i < finals.size(); ++i) reported.emplace_back(finals[i], actions[i]);
    }
    return reported.size() >= 2;
  };
  cr_assert(eventually(collect, 20'000), "%zu recipients reported\n%s", reported.size(), env.daemon.log().c_str());
  std::this_thread::sleep_for(std::chrono::seconds(2));
  collect();
  std::sort(reported.begin(), reported.end());
  const std::vector<std::pair<std::string, std::string>> expected = {{"local@home.test", "delivered"},
                                                                     {"y@b.test", "relayed"}};
  cr_assert(reported == expected, "%zu recipients reported", reported.size());
  std::string all;
  for (const auto& r : reports_in(box)) all += r;
  cr_assert(!has(all, "x@a.test\"") && !has(all, "quiet@b.test\""), "%s", all.c_str());
  // What a.test's MX was given instead: NOTIFY and ORCPT passed on.
  with_dsn.stop();
  const std::string record = slurp_file(with_dsn.record_file());
  cr_assert(has(record, "NOTIFY=SUCCESS") && has(record, "ORCPT=rfc822;x@a.test"), "%s", record.c_str());
  cr_assert(has(record, "ENVID=s-1"), "%s", record.c_str());
}

Test(dsn, never_a_report_to_the_null_sender_and_a_failed_report_is_dropped, .timeout = 90) {
  delivery_env env(zone);
  env.sink("127.0.0.2", {"--reject-rcpt", "bad@*"});
  configure_home(env, "");
  cr_assert(env.start(), "%s", env.daemon.log().c_str());
  // A bounce of a bounce: from <> to a refused recipient.
  std::string reply = send_with_params(env.daemon.port(), "<>", {"<bad@a.test>"});
  cr_assert_eq(code_of(reply), 250, "%s", reply.c_str());
  // A report that cannot be delivered: its sender's domain does not exist.
  reply = send_with_params(env.daemon.port(), "<someone@nowhere.test>", {"<bad@b.test>"});
  cr_assert_eq(code_of(reply), 250, "%s", reply.c_str());
  cr_assert(eventually([&] { return env.tracking("DSN").size() == 1 && env.queued_items() == 0; }, 30'000),
            "%zu DSN lines\n%s\n%s", env.tracking("DSN").size(), env.daemon.ctl("queue list").output.c_str(),
            env.daemon.log().c_str());
  // The report to nowhere.test failed (NXDOMAIN) and was dropped with a line saying so, not bounced.
  cr_assert(eventually([&] { return has(env.daemon.log(), "no report is sent about a report"); }, 10'000), "%s",
            env.daemon.log().c_str());
  std::this_thread::sleep_for(std::chrono::seconds(2));
  cr_assert_eq(env.tracking("DSN").size(), 1u, "only the report about the second message");
  cr_assert_eq(env.queued_items(), 0);
  const auto list = env.daemon.ctl("queue list --json").output;
  cr_assert_eq(json_number(list, "failed_messages"), 0, "nothing left pending: %s", list.c_str());
}

Test(dsn, kill_9_between_outcome_and_report_neither_loses_nor_repeats_a_report, .timeout = 180) {
  delivery_env env(zone);
  env.sink("127.0.0.2", {"--reject-rcpt", "*"});
  // Refusals come at 100 a second, so the kill below lands while outcomes are still being
  // recorded and reported.
  configure_home(env, "message_rate = 100\n");
  cr_assert(env.start(), "%s", env.daemon.log().c_str());
  const int messages = 300;
  const auto sent = env.send("s", messages, {"--domain", "a.test", "--from", "sender@home.test", "--sessions", "4"});
  cr_assert_eq(json_number(sent.json, "accepted"), messages, "%s", sent.json.c_str());
  const std::string box = maildir_of(env, "sender");
  // Killed while reports are being made: some are in the Maildir, others still pending.
  cr_assert(eventually([&] { return run("ls " + box + "/new 2>/dev/null | wc -l").output != "0\n"; }, 30'000), "%s",
            env.daemon.log().c_str());
  env.daemon.kill9();
  const std::size_t before = count_lines(env.daemon.dir() + "/log/tracking.csv");
  cr_assert_lt(env.tracking("DSN").size(), static_cast<std::size_t>(messages), "the kill came after every report");
  cr_assert(env.start(), "%s", env.daemon.log().c_str());
  cr_assert(eventually([&] { return reports_in(box).size() >= static_cast<std::size_t>(messages); }, 90'000),
            "%zu reports\n%s", reports_in(box).size(), env.daemon.log().c_str());
  cr_assert(eventually([&] { return env.queued_items() == 0; }, 30'000), "%s", env.daemon.ctl("queue list").output.c_str());
  // Each original reported by exactly one report (a report may be delivered twice if the
  // kill caught its Maildir delivery in flight: the same report id, counted once here).
  std::map<std::string, std::set<std::string>> reports_of;
  for (const auto& r : reports_in(box)) {
    const auto at = r.find("\"x-blaster-id\": \"");
    cr_assert(at != std::string::npos, "the original's headers are returned: %s", r.c_str());
    const auto start = at + 17;
    const auto mid = r.find("\"message_id\": \"");
    cr_assert(mid != std::string::npos, "%s", r.c_str());
    reports_of[r.substr(start, r.find('"', start) - start)].insert(r.substr(mid + 15, r.find('"', mid + 15) - mid - 15));
  }
  cr_assert_eq(reports_of.size(), static_cast<std::size_t>(messages), "every original reported: %zu", reports_of.size());
  for (const auto& [original, ids] : reports_of)
    cr_assert_eq(ids.size(), 1u, "%s reported %zu times", original.c_str(), ids.size());
  cr_assert_gt(count_lines(env.daemon.dir() + "/log/tracking.csv"), before, "the restarted daemon reported the rest");
}

Test(dsn, a_report_that_cannot_be_delivered_expires_after_the_shorter_report_lifetime, .timeout = 90) {
  // The sender's MX does not answer: its report waits, and gives up after [dsn]
  // expire_after, long before the [delivery] lifetime of ordinary mail.
  delivery_env env(std::string(zone) + "mx-host=dead.test,mx1.dead.test,10\nhost-record=mx1.dead.test,127.0.0.9\n");
  env.sink("127.0.0.2", {"--reject-rcpt", "bad@*"});
  env.configure("", "expire_after = 3600\nfailures_before_suspend = 10000\n", "[dsn]\nexpire_after = 4\n");
  cr_assert(env.start(), "%s", env.daemon.log().c_str());
  const std::string reply = send_with_params(env.daemon.port(), "<someone@dead.test>", {"<bad@a.test>"});
  cr_assert_eq(code_of(reply), 250, "%s", reply.c_str());
  cr_assert(eventually([&] { return env.tracking("DSN").size() == 1; }, 10'000), "%s", env.daemon.log().c_str());
  cr_assert(eventually([&] { return env.report_tracking("DEFER").size() >= 1; }, 10'000), "%s",
            slurp_file(env.daemon.dir() + "/log/tracking.csv").c_str());
  cr_assert(eventually([&] { return env.report_tracking("EXPIRE").size() == 1; }, 30'000), "%s",
            slurp_file(env.daemon.dir() + "/log/tracking.csv").c_str());
  cr_assert(eventually([&] { return env.queued_items() == 0 && has(env.daemon.log(), "no report is sent about a report"); }, 10'000),
            "%s\n%s", env.daemon.ctl("queue list").output.c_str(), env.daemon.log().c_str());
  cr_assert_eq(env.tracking("DSN").size(), 1u, "the expired report is not reported");
}
