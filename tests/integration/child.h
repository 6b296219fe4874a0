// child.h: ties a process a test starts (sluiced, blaster, openssl s_server) to the test's own process.
#pragma once
#include <sys/prctl.h>
#include <signal.h>
#include <unistd.h>

#include <cstdlib>

namespace sluice_test {

// Call in the child between fork() and exec(), with the parent's pid read before fork().
// Criterion ends a failed test's process without running destructors, so a daemon that
// only a destructor stops would outlive the test and the run. The kernel sends SIGKILL
// to the child when the forking thread dies (the flag survives exec); the getppid()
// check closes the window where the parent died before prctl() took effect.
inline void end_with_parent(pid_t parent) {
  if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || ::getppid() != parent) std::_Exit(127);
}

}  // namespace sluice_test
