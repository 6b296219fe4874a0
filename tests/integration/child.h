// child.h: ties a process a test starts (sluiced, blaster, openssl s_server) to the test's own process.
#pragma once
#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

namespace sluice_test {

// Call in the child between fork() and exec(), with the parent's pid read before fork().
// Criterion ends a failed test's process without running destructors, so a daemon that
// only a destructor stops would outlive the test and the run. The kernel sends SIGKILL
// to the child when the forking thread dies (the flag survives exec); the getppid()
// check closes the window where the parent died before prctl() took effect.
inline void end_with_parent(pid_t parent) {
  if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || ::getppid() != parent) std::_Exit(127);
}

// Starts a test peer: `args[0]` is run from /usr/sbin (where Debian puts daemons, which a
// non-root PATH often lacks) or else from PATH, with stdout and stderr in `output_path`,
// ending with the calling thread (end_with_parent). `own_group`: the child leads a process
// group of its own, so that killing the group ends the children it forks too.
// Returns the pid, or -1 if fork failed.
inline pid_t spawn_peer(std::vector<std::string> args, const std::string& output_path, bool own_group = false) {
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  const std::string sbin = "/usr/sbin/" + args.front();
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid == 0) {
    end_with_parent(parent);
    if (own_group) ::setpgid(0, 0);
    int out = ::open(output_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ::dup2(out, 1);
    ::dup2(out, 2);
    ::execv(sbin.c_str(), argv.data());
    ::execvp(argv[0], argv.data());
    std::_Exit(127);
  }
  return pid;
}

// Polls `ready` every 20 ms for up to 10 s while `pid` runs. True once it is ready; false
// when the process exited first (`exit_status` set, the child reaped) or on the deadline
// (`exit_status` -1, the process still running).
template <class Ready>
bool wait_ready(pid_t pid, Ready ready, int& exit_status) {
  exit_status = -1;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    if (::waitpid(pid, &status, WNOHANG) == pid) {
      exit_status = status;
      return false;
    }
    if (ready()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

}  // namespace sluice_test
