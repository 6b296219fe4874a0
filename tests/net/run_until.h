// run_until.h: test helper: runs a loop until a condition holds, with a deadline so a broken test fails instead of hanging.
#pragma once
#include <functional>

#include "net/loop.h"

namespace net_test {

// Checks `done` every 2 ms; gives up after 5 s (the caller's assertions then fail).
inline void run_until(sluice::net::loop& l, const std::function<bool()>& done) {
  sluice::net::timer guard(l), poll(l);
  guard.start(5000, 0, [&l] { l.halt(); });
  poll.start(2, 2, [&l, &done] {
    if (done()) l.halt();
  });
  l.run();
}

}  // namespace net_test
