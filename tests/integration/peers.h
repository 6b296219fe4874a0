// peers.h: the delivery tests' real peers: blaster sinks as destinations, blaster send as the client, blaster verify.
#pragma once
#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

namespace sluice::testing {

std::string blaster_path();

// A blaster sink on one loopback address: a destination MX host or smart host. The
// process ends with the test (PR_SET_PDEATHSIG) if the test dies first.
class sink_process {
 public:
  // Starts `blaster sink --listen address:port --json --record <dir>/<name>.rcv <extra>` and
  // waits until it accepts connections. `name` keeps files of several sinks apart.
  sink_process(const std::string& dir, const std::string& name, const std::string& address, uint16_t port,
               std::vector<std::string> extra = {});
  ~sink_process();
  sink_process(const sink_process&) = delete;
  sink_process& operator=(const sink_process&) = delete;
  // SIGTERM, wait; returns the JSON summary. Safe to call twice (returns it again).
  std::string stop();
  // SIGKILL without a summary: the destination vanishes.
  void kill9();
  const std::string& record_file() const { return record_; }
  // Messages recorded so far (lines of the record file).
  std::size_t received() const;
  bool started() const { return pid_ > 0 || !summary_.empty(); }
  pid_t pid() const { return pid_; }  // e.g. for SIGUSR1: the destination recovers

 private:
  pid_t pid_ = -1;
  std::string out_, record_, summary_;
};

struct send_result {
  int status = -1;
  std::string json;       // blaster send --json output
  std::string record;     // path of its sent log
};
// blaster send --target 127.0.0.1:port ... --record <dir>/<name>.sent --json; waits for it.
send_result blaster_send(const std::string& dir, const std::string& name, uint16_t port,
                         std::vector<std::string> extra);
// blaster verify --sent ... --received ... --json: its JSON and exit status.
struct verify_result {
  int status = -1;
  std::string json;
  long long delivered = -1, lost = -1, duplicated = -1, corrupted = -1;
};
verify_result blaster_verify(const std::vector<std::string>& sent, const std::vector<std::string>& received);

// The number after "key": in a JSON text, or -1.
long long json_number(const std::string& json, const std::string& key);
// True when `address`:port accepts a TCP connection within timeout_ms.
bool wait_listening(const std::string& address, uint16_t port, int timeout_ms = 5000);
// Polls `done` every 50 ms until it is true or timeout_ms passes; returns its last value.
template <class F>
bool eventually(F done, int timeout_ms);

std::string slurp_file(const std::string& path);
std::size_t count_lines(const std::string& path);

}  // namespace sluice::testing

#include <chrono>
#include <thread>

template <class F>
bool sluice::testing::eventually(F done, int timeout_ms) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (std::chrono::steady_clock::now() < deadline) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return done();
}
