// message_actions_test.cc: `sluicectl message show|export|hold|release|remove|bounce` against a running sluiced and a real sink.
// Untrusted input: none.
#include <criterion/criterion.h>

#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "actions_env.h"

using namespace sluice::testing;

namespace {

const char* zone = "mx-host=a.test,mx1.a.test,10\nmx-host=b.test,mx1.a.test,10\nhost-record=mx1.a.test,127.0.0.2\n";

std::string submit(uint16_t port, const std::vector<std::string>& rcpts, const std::string& body, std::string& why) {
  return submit_to(port, "sender@client.test", rcpts, body, why);
}

}  // namespace

Test(message_actions, show_escapes_and_export_gives_the_stored_bytes, .timeout = 90) {
  delivery_env env(zone);
  start_relay(env, {"--defer-rcpt", "slow@*"});
  // An escape sequence in a header: shown escaped, exported as it came.
  const std::string body = "Subject: look \x1b[31mred\x1b[0m\r\nX-Test: 1\r\n\r\nline one\r\n..dot\r\n";
  std::string why;
  const std::string id = submit(env.daemon.port(), {"ok@a.test", "slow@a.test"}, body, why);
  cr_assert(!id.empty(), "%s", why.c_str());
  cr_assert(eventually([&] { return lines_about(env, "DEFER", id) == 1 && lines_about(env, "DELIVER", id) == 1; }, 20'000),
            "%s", env.daemon.log().c_str());

  const std::string shown = ctl_ok(env, "message show " + id).output;
  cr_assert(!has(shown, "\x1b"), "no raw escape reaches the terminal: %s", shown.c_str());
  cr_assert(has(shown, "look \\x1B[31mred"), "%s", shown.c_str());
  cr_assert(has(shown, "X-Test: 1") && !has(shown, "line one"), "headers only: %s", shown.c_str());
  cr_assert(has(shown, "<slow@a.test>  deferred  via dns:Internet:a.test, 1 attempt"), "%s", shown.c_str());
  cr_assert(has(shown, "451 4.2.1"), "the last reply: %s", shown.c_str());
  cr_assert(has(shown, "<ok@a.test>  done"), "%s", shown.c_str());
  const std::string json = ctl_ok(env, "message show --json " + id).output;
  cr_assert(has(json, "\"status\":\"deferred\"") && has(json, "\"attempts\":1") && has(json, "\\u001b[31m"), "%s",
            json.c_str());
  const auto parsed = run("printf '%s' '" + json.substr(0, json.find_last_not_of('\n') + 1) +
                          "' | python3 -c 'import json,sys; d=json.load(sys.stdin); print(len(d[\"recipients\"]))'");
  cr_assert_eq(parsed.output, "2\n", "%s\n%s", parsed.output.c_str(), json.c_str());

  const std::string file = env.daemon.dir() + "/exported.eml";
  cr_assert_eq(run(sluicectl_path() + " --queue-dir " + env.daemon.queue_dir() + " message export " + id + " > " + file).status, 0);
  const std::string exported = slurp_file(file);
  // The stored body is dot-unstuffed and starts with the Received: line sluiced added.
  cr_assert(has(exported, "Received: ") && exported.find("Received: ") == 0, "%s", exported.c_str());
  cr_assert(has(exported, "Subject: look \x1b[31mred\x1b[0m\r\nX-Test: 1\r\n\r\nline one\r\n.dot\r\n"), "%s", exported.c_str());
  cr_assert_neq(env.daemon.ctl("message show 00000000000000ff").status, 0, "not found");
  cr_assert_neq(env.daemon.ctl("message export nothex").status, 0);
}

Test(message_actions, hold_survives_a_restart_and_release_delivers, .timeout = 120) {
  delivery_env env(zone);
  auto& sink = start_relay(env);
  // The hop waits while the message is held, so it cannot slip out before the hold.
  ctl_ok(env, "queue suspend a.test");
  std::string why;
  const std::string id = submit(env.daemon.port(), {"x@a.test", "y@a.test"}, "Subject: hold\r\n\r\nhi\r\n", why);
  cr_assert(!id.empty(), "%s", why.c_str());
  const std::string other = submit(env.daemon.port(), {"z@a.test"}, "Subject: other\r\n\r\nhi\r\n", why);
  cr_assert(eventually([&] { return has(ctl_ok(env, "message show " + id).output, "queued"); }, 10'000));
  const auto held = ctl_ok(env, "message hold " + id + " --json");
  cr_assert_eq(json_number(held.output, "recipients"), 2, "%s", held.output.c_str());
  ctl_ok(env, "queue resume a.test");
  cr_assert(eventually([&] { return lines_about(env, "DELIVER", other) == 1; }, 20'000), "%s", env.daemon.log().c_str());
  std::this_thread::sleep_for(std::chrono::seconds(2));
  cr_assert_eq(lines_about(env, "DELIVER", id), 0u, "held");
  cr_assert(has(ctl_ok(env, "message show " + id).output, "<x@a.test>  held"));

  env.daemon.stop();
  START(env.daemon);
  std::this_thread::sleep_for(std::chrono::seconds(3));
  cr_assert_eq(lines_about(env, "DELIVER", id), 0u, "still held after a restart: %s", env.daemon.log().c_str());
  cr_assert(has(ctl_ok(env, "mailq").output, id + "!"), "mailq marks it");

  const auto released = ctl_ok(env, "message release " + id);
  cr_assert(has(released.output, "items: 1"), "%s", released.output.c_str());
  cr_assert(eventually([&] { return lines_about(env, "DELIVER", id) == 1; }, 20'000), "%s", env.daemon.log().c_str());
  cr_assert(eventually([&] { return sink.received() == 2; }, 5000), "%zu", sink.received());
  cr_assert_neq(env.daemon.ctl("message hold " + id).status, 0, "nothing of it is queued any more");
}

namespace {

// The senders' domain, delivered into Maildirs under the daemon's directory, so the DSN a
// removal sends can be read back from disk (as dsn_test.cc does).
void configure_home(delivery_env& env) {
  env.configure("", "failures_before_suspend = 10000\n",
                "[[accepted_domain]]\nname = \"home.test\"\ntype = \"authoritative\"\nmailbox = \"maildir\"\n"
                "maildir_root = \"@DIR@/mail\"\n\n");
  run("mkdir -p " + env.daemon.dir() + "/mail");
}

std::vector<std::string> reports_to_sender(const delivery_env& env) {
  const auto r = run("python3 " + source_root() + "/tests/integration/clients/maildir_reports.py " + env.daemon.dir() +
                     "/mail/home.test/sender/Maildir");
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start < r.output.size()) {
    std::size_t nl = r.output.find('\n', start);
    if (nl == std::string::npos) nl = r.output.size();
    if (r.output[start] == '{') out.push_back(r.output.substr(start, nl - start));
    start = nl + 1;
  }
  return out;
}

std::string submit_from_home(uint16_t port, const std::vector<std::string>& rcpts, std::string& why) {
  return submit_to(port, "sender@home.test", rcpts, "Subject: to remove\r\n\r\nhi\r\n", why);
}

// sluiced with the home domain, relaying to a sink that defers slow*@*.
sink_process& start_with_home(delivery_env& env) {
  auto& sink = env.sink("127.0.0.2", {"--defer-rcpt", "slow*@*"});
  configure_home(env);
  START(env.daemon);
  return sink;
}

// A message from sender@home.test, once its first attempt has been deferred.
std::string deferred_from_home(delivery_env& env, const std::vector<std::string>& rcpts) {
  std::string why;
  const std::string id = submit_from_home(env.daemon.port(), rcpts, why);
  cr_assert(!id.empty(), "%s", why.c_str());
  cr_assert(eventually([&] { return lines_about(env, "DEFER", id) >= 1; }, 20'000), "%s", env.daemon.log().c_str());
  return id;
}

}  // namespace

Test(message_actions, remove_with_dsn_sends_the_sender_one_failure_report, .timeout = 120) {
  delivery_env env(zone);
  start_with_home(env);
  const std::string id = deferred_from_home(env, {"slow@a.test", "slow2@a.test"});
  const std::string keep = deferred_from_home(env, {"slow3@a.test"});
  const auto removed = ctl_ok(env, "message remove " + id + " --dsn --json");
  // 1, or 0 when its attempt was on the wire: then what remains fails when that attempt ends.
  cr_assert(has(removed.output, "\"ok\":true") && json_number(removed.output, "items") <= 1, "%s", removed.output.c_str());
  cr_assert(eventually([&] { return reports_to_sender(env).size() >= 1; }, 20'000), "%s", env.daemon.log().c_str());
  std::this_thread::sleep_for(std::chrono::seconds(3));  // nothing more comes
  const auto reports = reports_to_sender(env);
  cr_assert_eq(reports.size(), 1u, "exactly one report: %zu", reports.size());
  cr_assert(has(reports[0], "\"finals\": [\"slow@a.test\", \"slow2@a.test\"]") ||
                has(reports[0], "\"finals\": [\"slow2@a.test\", \"slow@a.test\"]"),
            "%s", reports[0].c_str());
  cr_assert(has(reports[0], "\"actions\": [\"failed\", \"failed\"]") && has(reports[0], "5.0.0"), "%s", reports[0].c_str());
  // Tracked with the administrator's uid; the other message is still queued.
  cr_assert(eventually([&] { return env.tracking("REMOVE").size() >= 1; }, 5000));
  const auto lines = env.tracking("REMOVE");
  cr_assert_eq(lines.size(), 1u, "%zu REMOVE lines", lines.size());
  cr_assert(has(lines[0], id) && has(lines[0], "uid " + std::to_string(::getuid())) && has(lines[0], "DSN to the sender"),
            "%s", lines[0].c_str());
  cr_assert(eventually([&] { return env.queued_items() == 1; }, 10'000), "%s", ctl_ok(env, "queue list").output.c_str());
  cr_assert(has(ctl_ok(env, "message show " + keep).output, "deferred"));
}

Test(message_actions, remove_without_dsn_leaves_nothing_in_the_store, .timeout = 90) {
  delivery_env env(zone);
  start_with_home(env);
  const std::string id = deferred_from_home(env, {"slow@a.test", "slow2@a.test"});
  const auto removed = ctl_ok(env, "message remove " + id);
  cr_assert(has(removed.output, "recipients: 2"), "%s", removed.output.c_str());
  const std::size_t attempts = lines_about(env, "DEFER", id);
  const auto list = ctl_ok(env, "queue list --json").output;
  cr_assert(json_number(list, "messages") == 0 && json_number(list, "delivery_items") == 0 &&
                json_number(list, "failed_messages") == 0 && json_number(list, "recipients") == 0,
            "%s", list.c_str());
  const auto show = env.daemon.ctl("message show " + id);
  cr_assert_neq(show.status, 0);
  cr_assert(has(show.output, "no message"), "%s", show.output.c_str());
  cr_assert(eventually([&] { return env.tracking("REMOVE").size() == 1; }, 5000), "tracking lines are written in batches");
  const auto lines = env.tracking("REMOVE");
  cr_assert(lines.size() == 1 && has(lines[0], "uid " + std::to_string(::getuid())) && has(lines[0], "no DSN") &&
                has(lines[0], "slow2@a.test"),
            "%zu: %s", lines.size(), lines.empty() ? "" : lines[0].c_str());
  cr_assert(has(ctl_ok(env, "track search --event remove --id " + id).output, "no DSN"), "track search knows REMOVE");
  // Its next retry finds nothing; nobody is told anything.
  std::this_thread::sleep_for(std::chrono::seconds(4));
  cr_assert(reports_to_sender(env).empty());
  cr_assert_eq(lines_about(env, "DEFER", id), attempts, "no attempt after the removal");
  cr_assert_neq(env.daemon.ctl("message remove " + id).status, 0, "a second removal finds nothing");
}

Test(message_actions, bounce_fails_queued_and_arriving_mail_for_a_domain_and_nothing_else, .timeout = 120) {
  delivery_env env(zone);
  auto& sink = start_with_home(env);
  const std::string queued = deferred_from_home(env, {"slow@a.test"});
  const std::string other = deferred_from_home(env, {"slow@b.test"});
  std::string why;

  const auto b = ctl_ok(env, "message bounce --domain A.test --for 60s --json");
  cr_assert(has(b.output, "\"ok\":true") && json_number(b.output, "until") > 0, "%s", b.output.c_str());
  cr_assert(eventually([&] { return reports_to_sender(env).size() == 1; }, 20'000), "%s", env.daemon.log().c_str());
  cr_assert(has(reports_to_sender(env)[0], "\"finals\": [\"slow@a.test\"]"), "%s", reports_to_sender(env)[0].c_str());
  // Within the rule's time, new mail for a.test fails at its first attempt (the sink would take it).
  const std::string arriving = submit_from_home(env.daemon.port(), {"fresh@a.test"}, why);
  cr_assert(!arriving.empty(), "%s", why.c_str());
  cr_assert(eventually([&] { return reports_to_sender(env).size() == 2; }, 20'000), "%s", env.daemon.log().c_str());
  cr_assert(has(reports_to_sender(env)[1], "\"finals\": [\"fresh@a.test\"]"), "%s", reports_to_sender(env)[1].c_str());
  cr_assert_eq(sink.received(), 0u);
  const auto list = ctl_ok(env, "message bounce --list --json").output;
  cr_assert(has(list, "\"domain\":\"a.test\"") && has(list, "\"active\":true"), "%s", list.c_str());
  // Tracked with the uid: the administrator's bounce, then the rule's.
  cr_assert(eventually([&] { return env.tracking("BOUNCE").size() >= 2; }, 5000));
  const auto lines = env.tracking("BOUNCE");
  cr_assert_eq(lines.size(), 2u, "%zu BOUNCE lines", lines.size());
  cr_assert(has(lines[0], queued) && has(lines[0], "uid " + std::to_string(::getuid())), "%s", lines[0].c_str());
  cr_assert(has(lines[1], arriving) && has(lines[1], "rule for a.test"), "%s", lines[1].c_str());
  // b.test is untouched.
  cr_assert(has(ctl_ok(env, "message show " + other).output, "deferred"));

  // Cancelled: a.test is delivered again.
  cr_assert(has(ctl_ok(env, "message bounce --cancel a.test").output, "cancelled"));
  const std::string after = submit_from_home(env.daemon.port(), {"fresh2@a.test"}, why);
  cr_assert(eventually([&] { return lines_about(env, "DELIVER", after) == 1; }, 20'000), "%s", env.daemon.log().c_str());
  cr_assert(has(ctl_ok(env, "message bounce --list").output, "no bounce rules"));
  cr_assert_eq(reports_to_sender(env).size(), 2u);
  cr_assert_neq(env.daemon.ctl("message bounce --cancel a.test").status, 0, "no rule left to cancel");
}

namespace {

// sluiced with the home domain, relaying to a sink that defers slow*@* and holds its reply to
// the final dot for 4 s (the test configuration gives up after 5): an attempt stays on the wire that long.
sink_process& start_with_stalling_sink(delivery_env& env) {
  auto& sink = env.sink("127.0.0.2", {"--defer-rcpt", "slow*@*", "--stall-at", "dot", "--stall-ms", "4000"});
  configure_home(env);
  START(env.daemon);
  return sink;
}

// True while sluiced has a connection open to the sink on 127.0.0.2 (ss sees it established).
bool on_the_wire() { return !run("ss -Htn state established dst 127.0.0.2").output.empty(); }

// A message for ok@a.test (the sink takes it) and slow@a.test (deferred), once its first
// attempt has sent the final dot and waits for the stalled reply.
std::string on_the_wire_from_home(delivery_env& env) {
  std::string why;
  const std::string id = submit_from_home(env.daemon.port(), {"ok@a.test", "slow@a.test"}, why);
  cr_assert(!id.empty(), "%s", why.c_str());
  cr_assert(eventually(on_the_wire, 20'000), "no attempt started: %s", env.daemon.log().c_str());
  std::this_thread::sleep_for(std::chrono::milliseconds(800));  // RCPTs, DATA and the body are sent by now
  cr_assert(on_the_wire(), "the attempt is still waiting for the sink's reply");
  cr_assert_eq(lines_about(env, "DELIVER", id), 0u, "not delivered yet");
  return id;
}

}  // namespace

Test(message_actions, remove_during_an_attempt_says_what_it_delivered_and_removes_the_rest, .timeout = 120) {
  delivery_env env(zone);
  auto& sink = start_with_stalling_sink(env);
  const std::string id = on_the_wire_from_home(env);
  const auto removed = ctl_ok(env, "message remove " + id);
  // The command waited for the attempt: it says the sink got it for one recipient, and that the other was removed.
  cr_assert(has(removed.output, "removed: " + id + "; an attempt in progress delivered it to 1 recipient\n"), "%s",
            removed.output.c_str());
  cr_assert(has(removed.output, "recipients: 1"), "%s", removed.output.c_str());
  cr_assert_eq(sink.received(), 1u);
  // Nothing of it is left in the store.
  const auto list = ctl_ok(env, "queue list --json").output;
  cr_assert(json_number(list, "messages") == 0 && json_number(list, "delivery_items") == 0 &&
                json_number(list, "recipients") == 0,
            "%s", list.c_str());
  cr_assert_neq(env.daemon.ctl("message show " + id).status, 0);
  // The tracking log: delivered to ok@, removed for slow@, and no DEFER promising a retry.
  cr_assert(eventually([&] { return lines_about(env, "REMOVE", id) == 1 && lines_about(env, "DELIVER", id) == 1; }, 5000),
            "%s", env.daemon.log().c_str());
  const auto remove_lines = env.tracking("REMOVE");
  cr_assert(has(remove_lines[0], "slow@a.test") && !has(remove_lines[0], "ok@a.test") && has(remove_lines[0], "no DSN"),
            "%s", remove_lines[0].c_str());
  cr_assert(has(env.tracking("DELIVER")[0], "ok@a.test"));
  cr_assert_eq(lines_about(env, "DEFER", id), 0u, "%s", env.tracking("DEFER").empty() ? "" : env.tracking("DEFER")[0].c_str());
  // No DSN, and nothing comes back.
  std::this_thread::sleep_for(std::chrono::seconds(3));
  cr_assert(reports_to_sender(env).empty());
  cr_assert_eq(sink.received(), 1u);
  cr_assert_eq(lines_about(env, "DEFER", id), 0u);
}

Test(message_actions, remove_with_dsn_during_an_attempt_reports_only_what_was_not_delivered, .timeout = 120) {
  delivery_env env(zone);
  auto& sink = start_with_stalling_sink(env);
  const std::string id = on_the_wire_from_home(env);
  const auto removed = ctl_ok(env, "message remove " + id + " --dsn");
  cr_assert(has(removed.output, "removed with a DSN: " + id + "; an attempt in progress delivered it to 1 recipient\n"),
            "%s", removed.output.c_str());
  cr_assert(has(removed.output, "items: 1"), "the rest failed at once: %s", removed.output.c_str());
  cr_assert(eventually([&] { return reports_to_sender(env).size() >= 1; }, 20'000), "%s", env.daemon.log().c_str());
  std::this_thread::sleep_for(std::chrono::seconds(3));
  const auto reports = reports_to_sender(env);
  cr_assert_eq(reports.size(), 1u, "exactly one report: %zu", reports.size());
  cr_assert(has(reports[0], "\"finals\": [\"slow@a.test\"]") && has(reports[0], "\"actions\": [\"failed\"]") &&
                has(reports[0], "5.0.0"),
            "only the recipient that was not delivered: %s", reports[0].c_str());
  cr_assert(eventually([&] { return env.queued_items() == 0; }, 10'000), "%s", ctl_ok(env, "queue list").output.c_str());
  const auto remove_lines = env.tracking("REMOVE");
  cr_assert(remove_lines.size() == 1 && has(remove_lines[0], "slow@a.test") && !has(remove_lines[0], "ok@a.test"), "%zu",
            remove_lines.size());
  cr_assert_eq(lines_about(env, "DEFER", id), 0u);
  cr_assert_eq(sink.received(), 1u);
}
