// actions_env.h: what tests of sluicectl against a delivering daemon share: one SMTP submission, tracking lines about a message, sluicectl that must succeed.
// Untrusted input: none.
#pragma once
#include <criterion/criterion.h>

#include <string>
#include <vector>

#include "assertions.h"
#include "delivery_env.h"

namespace sluice::testing {

inline bool has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// One message over SMTP from `from` (body: headers, empty line, text, CRLF line ends); its
// queue id, or "" with the failing reply in `why`.
inline std::string submit_to(uint16_t port, const std::string& from, const std::vector<std::string>& rcpts,
                             const std::string& body, std::string& why) {
  smtp_client c(port);
  c.reply();
  c.cmd("EHLO client.test");
  why = c.cmd("MAIL FROM:<" + from + ">");
  for (const auto& r : rcpts)
    if (code_of(why) == 250) why = c.cmd("RCPT TO:<" + r + ">");
  if (code_of(why) == 250) why = c.cmd("DATA");
  if (code_of(why) != 354) return "";
  c.send_raw(body + ".\r\n");
  why = c.reply();
  c.cmd("QUIT");
  return queue_id_of(why);
}

// Tracking lines of `event` naming message `id`.
inline std::size_t lines_about(const delivery_env& env, const std::string& event, const std::string& id) {
  std::size_t n = 0;
  for (const auto& l : env.tracking(event)) n += has(l, id);
  return n;
}

inline command_result ctl_ok(const delivery_env& env, const std::string& args) {
  auto r = env.daemon.ctl(args);
  cr_assert_eq(r.status, 0, "sluicectl %s: %s\n%s", args.c_str(), r.output.c_str(), env.daemon.log().c_str());
  return r;
}

// sluiced relaying to one sink on 127.0.0.2 (with `sink_args`), failure streaks never
// suspending its site, and `tune` applied to the config file before the start.
template <class Tune>
sink_process& start_relay(delivery_env& env, std::vector<std::string> sink_args, Tune tune) {
  auto& sink = env.sink("127.0.0.2", std::move(sink_args));
  env.configure("", "failures_before_suspend = 10000\n");
  tune(env);
  START(env.daemon);
  return sink;
}
inline sink_process& start_relay(delivery_env& env, std::vector<std::string> sink_args = {}) {
  return start_relay(env, std::move(sink_args), [](delivery_env&) {});
}

}  // namespace sluice::testing
