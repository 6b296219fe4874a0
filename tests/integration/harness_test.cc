// harness_test.cc: a daemon a test starts ends with the test's process, however that process ends.
#include <criterion/criterion.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <fstream>
#include <string>
#include <thread>

#include "harness.h"

using namespace sluice::testing;

namespace {

// Gone or a zombie waiting for its new parent to reap it: either way no longer running.
bool process_running(pid_t pid) {
  if (::kill(pid, 0) != 0) return errno != ESRCH;
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string pid_field, comm, state;
  stat >> pid_field >> comm >> state;
  return state != "Z" && state != "X";
}

}  // namespace

// Criterion ends a failed test's process with exit(), not by unwinding: the harness's
// destructor never runs. _exit() here plays that ending.
Test(integration_harness, daemon_dies_with_a_test_process_that_skips_destructors, .timeout = 60) {
  int report[2];
  cr_assert_eq(::pipe(report), 0);
  pid_t test_process = ::fork();
  cr_assert_geq(test_process, 0);
  if (test_process == 0) {
    ::close(report[0]);
    auto* d = new sluiced_process;  // never deleted: no destructor stops this daemon
    pid_t daemon = d->start() ? d->pid() : -1;
    (void)!::write(report[1], &daemon, sizeof daemon);
    ::_exit(0);
  }
  ::close(report[1]);
  pid_t daemon = -1;
  cr_assert_eq(::read(report[0], &daemon, sizeof daemon), static_cast<ssize_t>(sizeof daemon));
  ::close(report[0]);
  int status = 0;
  ::waitpid(test_process, &status, 0);
  cr_assert_gt(daemon, 0, "the daemon did not start");
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (process_running(daemon) && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  bool still_running = process_running(daemon);
  if (still_running) ::kill(daemon, SIGKILL);
  cr_assert_not(still_running, "sluiced %d outlived the test process that started it", static_cast<int>(daemon));
}
