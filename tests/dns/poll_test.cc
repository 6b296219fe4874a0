// poll_test.cc: net::poll readiness on a real socket pair: events, stop, and no callback after destruction.
// Untrusted input: none.
#include <criterion/criterion.h>
#include <sys/socket.h>
#include <unistd.h>

#include <memory>

#include "dns_fixture.h"
#include "net/poll.h"

using sluice::net::loop;
using sluice::net::poll;

Test(poll, reports_readable_and_writable) {
  int sv[2];
  cr_assert_eq(::socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  loop l;
  poll p(l, sv[0]);
  cr_assert_eq(p.init_error(), 0);
  int seen = 0;
  cr_assert_eq(p.start(poll::writable, [&](int status, int events) {
    cr_assert_eq(status, 0);
    seen |= events;
  }), 0);
  net_test::run_until(l, [&] { return seen != 0; });
  cr_assert_eq(seen, poll::writable, "an empty socket is writable, not readable");
  seen = 0;
  p.start(poll::readable, [&](int, int events) { seen |= events; });
  dns_test::run_for(l, 50);
  cr_assert_eq(seen, 0, "nothing to read yet");
  cr_assert_eq(::write(sv[1], "x", 1), 1);
  net_test::run_until(l, [&] { return seen != 0; });
  cr_assert_eq(seen, poll::readable);
  ::close(sv[0]);
  ::close(sv[1]);
}

Test(poll, stop_and_destruction_silence_it) {
  int sv[2];
  cr_assert_eq(::socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  loop l;
  cr_assert_eq(::write(sv[1], "x", 1), 1);
  int calls = 0;
  auto p = std::make_unique<poll>(l, sv[0]);
  p->start(poll::readable, [&](int, int) { ++calls; });
  p->stop();
  auto q = std::make_unique<poll>(l, sv[1]);
  q->start(poll::writable, [&](int, int) { ++calls; });
  q.reset();
  dns_test::run_for(l, 50);
  cr_assert_eq(calls, 0);
  p->start(poll::readable, [&](int, int) { ++calls; });
  net_test::run_until(l, [&] { return calls > 0; });
  cr_assert(calls >= 1, "started again, it reports the pending byte");
  p.reset();
  ::close(sv[0]);
  ::close(sv[1]);
}

Test(poll, refuses_a_regular_file) {
  loop l;
  char path[] = "/tmp/sluice-poll-XXXXXX";
  int fd = ::mkstemp(path);
  poll p(l, fd);
  cr_assert_neq(p.init_error(), 0, "epoll cannot watch regular files");
  cr_assert_neq(p.start(poll::readable, [](int, int) {}), 0);
  ::close(fd);
  ::unlink(path);
}
