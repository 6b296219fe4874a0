// crash_test.cc: kill -9 under concurrent load; every message blaster saw acknowledged is still queued.
#include <criterion/criterion.h>
#include <signal.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <thread>

#include "assertions.h"
#include "child.h"
#include "harness.h"

using namespace sluice::testing;

namespace {

std::string blaster_path() { return build_root() + "/tools/blaster/blaster"; }

// Queue ids of the sent log: the third tab-separated field of each line.
std::set<std::string> acknowledged_ids(const std::string& path) {
  std::set<std::string> ids;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string id, digest, queue_id;
    if (std::getline(fields, id, '\t') && std::getline(fields, digest, '\t') && std::getline(fields, queue_id, '\t'))
      ids.insert(queue_id);
  }
  return ids;
}

}  // namespace

Test(integration_crash, kill_9_under_load_loses_no_acknowledged_message, .timeout = 120) {
  sluiced_process d;
  START(d);
  std::string sent = d.dir() + "/sent.log";
  // 40 sessions of pipelined 1-4 KB messages; the daemon dies in the middle.
  const pid_t parent = ::getpid();
  pid_t load = ::fork();
  if (load == 0) {
    sluice_test::end_with_parent(parent);
    int devnull = ::open("/dev/null", O_WRONLY);
    ::dup2(devnull, 1);
    ::dup2(devnull, 2);
    std::string target = "127.0.0.1:" + std::to_string(d.port());
    ::execl(blaster_path().c_str(), "blaster", "send", "--target", target.c_str(), "--sessions", "40", "--duration",
            "4s", "--size", "1k-4k", "--rcpts", "1", "--to", "alice@sluice.test", "--record", sent.c_str(),
            "--no-progress", "--timeout", "5s", nullptr);
    std::_Exit(127);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  d.kill9();
  int status = 0;
  ::waitpid(load, &status, 0);
  std::set<std::string> acked = acknowledged_ids(sent);
  cr_assert_gt(acked.size(), 100u, "the load should have had many messages acknowledged before the kill");

  START(d);
  d.stop();
  auto list = d.ctl("queue list --json");
  std::set<std::string> queued;
  const std::string key = "\"id\":\"";
  for (size_t pos = 0; (pos = list.output.find(key, pos)) != std::string::npos;) {
    pos += key.size();
    queued.insert(list.output.substr(pos, list.output.find('"', pos) - pos));
  }
  size_t missing = 0;
  std::string first_missing;
  for (const auto& id : acked) {
    if (!queued.count(id) && missing++ == 0) first_missing = id;
  }
  cr_assert_eq(missing, 0u, "%zu of %zu acknowledged messages lost after kill -9 (first: %s)", missing, acked.size(),
               first_missing.c_str());
}
