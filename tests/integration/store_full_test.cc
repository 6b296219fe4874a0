// store_full_test.cc: a full queue store answers 452 4.3.1 and recovers by itself; full log devices never stop mail.
// Untrusted input: none (the test's own daemon, sink and logs).
#include <criterion/criterion.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "delivery_env.h"

using namespace sluice::testing;
using namespace std::chrono_literals;

namespace {

const char* zone = "mx-host=a.test,mx.a.test,10\nhost-record=mx.a.test,127.0.0.2\n";

std::size_t count_of(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (std::size_t at = 0; (at = text.find(what, at)) != std::string::npos; at += what.size()) ++n;
  return n;
}

// Fields of one CSV line (quoted fields may hold commas and doubled quotes), or 0 when a
// quote is left open: what a torn line glued to the next one looks like.
std::size_t csv_fields(const std::string& line) {
  std::size_t fields = 1;
  bool quoted = false;
  for (char c : line) {
    if (c == '"') quoted = !quoted;
    else if (c == ',' && !quoted) ++fields;
  }
  return quoted ? 0 : fields;
}

// The daemon has not exited: its pid is still a running child of the test.
bool alive(const sluiced_process& d) {
  int status = 0;
  return d.running() && ::waitpid(d.pid(), &status, WNOHANG) == 0;
}

// A delivery world whose Relay connector is protocol-logged, configured with `map_size`.
void configure(delivery_env& env, const std::string& map_size) {
  env.relay_keys = "protocol_log = true\n";
  env.configure();
  std::string text = slurp_file(env.daemon.dir() + "/sluice.toml");
  const std::string key = "map_size = \"256M\"";
  text.replace(text.find(key), key.size(), "map_size = \"" + map_size + "\"");
  env.daemon.write_config(text);
}

}  // namespace

Test(store_full, a_flood_gets_452_while_deliveries_drain_and_acceptance_resumes_by_itself, .timeout = 150) {
  delivery_env env(zone);
  // A slow destination: the flood arrives faster than it leaves, so the 1 MiB map fills.
  auto& sink = env.sink("127.0.0.2", {"--data-latency", "20"});
  configure(env, "1M");
  cr_assert(env.start(), "%s", env.daemon.log().c_str());
  const pid_t pid = env.daemon.pid();
  const std::string protocol_log = env.daemon.dir() + "/log/protocol/Relay.csv";

  send_result flood;
  std::atomic<bool> flood_done{false};
  std::thread flooder([&] {
    // Long enough for deliveries to go on while the store is full: 452s come fast.
    flood = blaster_send(env.daemon.dir(), "flood", env.daemon.port(),
                         {"--duration", "5s", "--sessions", "8", "--size", "8k-16k", "--domain", "a.test", "--timeout", "20s"});
    flood_done.store(true);
  });
  // The sink's count when the first 452 was logged, and later, while the flood still runs.
  long long received_at_first_full = -1;
  std::size_t received_while_full = 0;
  while (!flood_done.load()) {
    std::this_thread::sleep_for(50ms);
    if (received_at_first_full < 0 && slurp_file(protocol_log).find("452 4.3.1") != std::string::npos)
      received_at_first_full = static_cast<long long>(sink.received());
    if (received_at_first_full >= 0) received_while_full = sink.received();
  }
  flooder.join();
  cr_assert_geq(received_at_first_full, 0, "no 452 4.3.1 in the protocol log: %s", flood.json.c_str());
  cr_assert_gt(json_number(flood.json, "452"), 0, "blaster saw no 452: %s", flood.json.c_str());
  cr_assert_gt(json_number(flood.json, "accepted"), 0, "%s", flood.json.c_str());
  cr_assert_gt(static_cast<long long>(received_while_full), received_at_first_full,
               "nothing was delivered after the store filled (%lld then %zu)", received_at_first_full,
               received_while_full);
  cr_assert(alive(env.daemon) && env.daemon.pid() == pid, "the daemon died: %s", env.daemon.log().c_str());

  // Space frees as deliveries finish: a message is accepted again, by the same daemon.
  std::vector<std::string> sent_logs{flood.record};
  bool accepted = false;
  for (int i = 0; i < 60 && !accepted; ++i) {
    const auto later = env.send("later-" + std::to_string(i), 1, {"--domain", "a.test", "--size", "8k"});
    sent_logs.push_back(later.record);
    accepted = json_number(later.json, "accepted") == 1;
    if (!accepted) std::this_thread::sleep_for(500ms);
  }
  cr_assert(accepted, "the store never took mail again: %s", env.daemon.ctl("queue list").output.c_str());
  cr_assert(alive(env.daemon) && env.daemon.pid() == pid, "%s", env.daemon.log().c_str());

  // Nothing acknowledged is lost.
  cr_assert(eventually([&] { return env.queued_items() == 0; }, 60'000), "%s", env.daemon.ctl("queue list").output.c_str());
  // The writes that drain the store found room all along (issue 13): no categorization and
  // no delivery outcome was refused for space and retried later.
  std::size_t refused_drains = 0;
  std::string refusals;
  std::istringstream said(env.daemon.log());
  for (std::string line; std::getline(said, line);) {
    const bool categorize = line.find("categorizer") != std::string::npos && line.find("MDB_MAP_FULL") != std::string::npos;
    const bool outcome = line.find("recording the outcome") != std::string::npos;
    if (categorize || outcome) {
      ++refused_drains;
      if (refusals.size() < 2000) refusals += line + "\n";
    }
  }
  cr_assert_eq(refused_drains, 0u, "%zu categorize or outcome writes found the store full:\n%s", refused_drains,
               refusals.c_str());
  for (auto& [address, s] : env.sinks) s->stop();
  const auto v = blaster_verify(sent_logs, env.received_logs());
  cr_assert(v.status == 0 && v.lost == 0 && v.corrupted == 0, "%s", v.json.c_str());
  cr_assert_eq(v.delivered, json_number(flood.json, "rcpts_accepted") + 1, "%s", v.json.c_str());
}

namespace {

// Mail through the daemon while its logs cannot be written: `fill` makes the log device
// full before the daemon starts, `free_space` gives the space back. Every message is still
// accepted and delivered, stderr says once per log file that it cannot be written, and
// the logs are written again once there is room, whole lines only.
void mail_flows_with_full_logs(delivery_env& env, const std::function<void()>& fill,
                               const std::function<void()>& free_space) {
  auto& sink = env.sink("127.0.0.2");
  configure(env, "64M");
  fill();
  cr_assert(env.start(), "%s", env.daemon.log().c_str());
  const auto first = env.send("first", 40, {"--domain", "a.test", "--sessions", "2"});
  cr_assert_eq(json_number(first.json, "accepted"), 40, "%s", first.json.c_str());
  cr_assert(eventually([&] { return sink.received() == 40; }, 20'000), "%zu delivered\n%s", sink.received(),
            env.daemon.log().c_str());
  const std::string tracking = env.daemon.dir() + "/log/tracking.csv";
  const std::string protocol = env.daemon.dir() + "/log/protocol/Relay.csv";
  cr_assert(eventually([&] { return env.daemon.log().find("cannot write " + protocol) != std::string::npos; }, 5000),
            "%s", env.daemon.log().c_str());
  std::this_thread::sleep_for(1500ms);  // more batches fail; none of them is announced again
  std::string said = env.daemon.log();
  cr_assert_eq(count_of(said, "cannot write " + tracking), 1u, "%s", said.c_str());
  cr_assert_eq(count_of(said, "cannot write " + protocol), 1u, "%s", said.c_str());

  free_space();
  const auto second = env.send("second", 10, {"--domain", "a.test", "--sessions", "1"});
  cr_assert_eq(json_number(second.json, "accepted"), 10, "%s", second.json.c_str());
  cr_assert(eventually([&] { return sink.received() == 50; }, 20'000), "%s", env.daemon.log().c_str());
  // Logging resumed: the second batch's deliveries are tracked, in whole lines after the header.
  cr_assert(eventually([&] { return env.tracking("DELIVER").size() >= 10; }, 10'000), "%s\n%s",
            slurp_file(tracking).c_str(), env.daemon.log().c_str());
  said = env.daemon.log();
  cr_assert(said.find("writing " + tracking + " again") != std::string::npos, "%s", said.c_str());
  // The protocol log is written by its own batches, which may come after the tracking log's.
  cr_assert(eventually([&] { return slurp_file(protocol).rfind("date-time,", 0) == 0; }, 10'000),
            "%s has no header after space returned:\n%s", protocol.c_str(), env.daemon.log().c_str());
  // Whole lines only: a write cut short by the full device was cut back, not left torn.
  for (const auto& [file, fields] : {std::pair{tracking, 7u}, std::pair{protocol, 8u}}) {
    const std::string text = slurp_file(file);
    cr_assert(text.rfind("date-time,", 0) == 0, "%s has no header: %.200s", file.c_str(), text.c_str());
    std::size_t at = text.find('\n') + 1;
    for (std::size_t next; at < text.size(); at = next + 1) {
      next = text.find('\n', at);
      cr_assert(next != std::string::npos, "%s ends in a partial line", file.c_str());
      const std::string line = text.substr(at, next - at);
      cr_assert(line.compare(0, 2, "20") == 0 && csv_fields(line) == fields, "%s: a torn line: %s", file.c_str(),
                line.c_str());
    }
  }
  cr_assert(alive(env.daemon), "%s", env.daemon.log().c_str());
}

}  // namespace

Test(store_full, a_full_log_device_never_stops_mail_and_logging_resumes_with_space, .timeout = 90) {
  if (::geteuid() != 0) cr_skip_test("mounting a tiny tmpfs for the log directory needs root (CI runs as root)");
  // A mount namespace of this test process alone: the tmpfs is gone when the process is,
  // however the test ends. The daemon, forked from here, shares it.
  cr_assert_eq(::unshare(CLONE_NEWNS), 0, "unshare: %s", std::strerror(errno));
  cr_assert_eq(::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr), 0, "%s", std::strerror(errno));
  delivery_env env(zone);
  const std::string log_dir = env.daemon.dir() + "/log";
  std::filesystem::create_directories(log_dir + "/protocol");
  cr_assert_eq(::mount("tmpfs", log_dir.c_str(), "tmpfs", 0, "size=256k"), 0, "mount: %s", std::strerror(errno));
  std::filesystem::create_directories(log_dir + "/protocol");
  const std::string filler = log_dir + "/filler";
  mail_flows_with_full_logs(
      env,
      [&] {
        // Every block taken but two: the first writes fit, one is cut short, the rest fail.
        run("dd if=/dev/zero of=" + filler + " bs=4k 2>/dev/null; truncate -s -8k " + filler);
      },
      [&] { std::filesystem::remove(filler); });
  env.daemon.stop();
  ::umount2(log_dir.c_str(), MNT_DETACH);  // so that the harness can remove the directory
}

Test(store_full, logs_on_dev_full_never_stop_mail_and_logging_resumes_on_a_new_file, .timeout = 90) {
  // Without root: the log files are symlinks to /dev/full (every write: ENOSPC); the space
  // "returns" when the administrator puts regular files in their place.
  delivery_env env(zone);
  const std::string log_dir = env.daemon.dir() + "/log";
  const std::vector<std::string> files = {log_dir + "/tracking.csv", log_dir + "/protocol/Relay.csv"};
  mail_flows_with_full_logs(
      env,
      [&] {
        std::filesystem::create_directories(log_dir + "/protocol");
        for (const auto& f : files) std::filesystem::create_symlink("/dev/full", f);
      },
      [&] {
        for (const auto& f : files) {
          std::filesystem::remove(f);
          std::FILE* out = std::fopen(f.c_str(), "w");
          cr_assert(out != nullptr);
          std::fclose(out);
        }
      });
}
