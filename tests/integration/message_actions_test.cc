// message_actions_test.cc: `sluicectl message show|export|hold|release` against a running sluiced and a real sink.
// Untrusted input: none.
#include <criterion/criterion.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "assertions.h"
#include "delivery_env.h"

using namespace sluice::testing;

namespace {

const char* zone = "mx-host=a.test,mx1.a.test,10\nhost-record=mx1.a.test,127.0.0.2\n";

bool has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

std::string submit(uint16_t port, const std::vector<std::string>& rcpts, const std::string& body, std::string& why) {
  smtp_client c(port);
  c.reply();
  c.cmd("EHLO client.test");
  why = c.cmd("MAIL FROM:<sender@client.test>");
  for (const auto& r : rcpts)
    if (code_of(why) == 250) why = c.cmd("RCPT TO:<" + r + ">");
  if (code_of(why) == 250) why = c.cmd("DATA");
  if (code_of(why) != 354) return "";
  c.send_raw(body + ".\r\n");
  why = c.reply();
  c.cmd("QUIT");
  return queue_id_of(why);
}

std::size_t lines_about(const delivery_env& env, const std::string& event, const std::string& id) {
  std::size_t n = 0;
  for (const auto& l : env.tracking(event)) n += has(l, id);
  return n;
}

command_result ctl_ok(const delivery_env& env, const std::string& args) {
  auto r = env.daemon.ctl(args);
  cr_assert_eq(r.status, 0, "sluicectl %s: %s\n%s", args.c_str(), r.output.c_str(), env.daemon.log().c_str());
  return r;
}

}  // namespace

Test(message_actions, show_escapes_and_export_gives_the_stored_bytes, .timeout = 90) {
  delivery_env env(zone);
  env.sink("127.0.0.2", {"--defer-rcpt", "slow@*"});
  env.configure("", "failures_before_suspend = 10000\n");
  START(env.daemon);
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
  auto& sink = env.sink("127.0.0.2");
  env.configure("", "failures_before_suspend = 10000\n");
  START(env.daemon);
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
  cr_assert_eq(sink.received(), 2u);
  cr_assert_neq(env.daemon.ctl("message hold " + id).status, 0, "nothing of it is queued any more");
}
