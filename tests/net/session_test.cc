// session_test.cc: net::timed_session's request and idle clocks and net::session_set's cap and eviction, on real loopback sockets.
// Untrusted input: none.
#include <criterion/criterion.h>

#include <memory>
#include <string>
#include <vector>

#include "net/connection.h"
#include "net/session.h"
#include "run_until.h"

using namespace sluice::net;

namespace {

struct line_server;

// Answers "ok\n" to every complete line; remembers which clock ended it.
class line_session final : public timed_session {
 public:
  line_session(line_server& owner, loop& l, std::unique_ptr<connection> c, session_deadlines d);
  void on_read(std::string_view data) override;
  void on_read_end(int) override;
  void evict();

 private:
  void on_request_timeout() override;
  void on_idle_timeout() override;
  line_server& owner_;
  std::string buffer_;
};

struct line_server {
  loop& l;
  session_deadlines deadlines;
  session_set<line_session> sessions;
  listener lis;
  std::vector<std::string> ended;  // "request", "idle", "evicted", "eof", in order
  line_server(loop& lp, session_deadlines d, std::size_t cap)
      : l(lp), deadlines(d), sessions(lp, cap), lis(lp, [this](std::unique_ptr<connection> c) {
          sessions.admit(std::make_unique<line_session>(*this, l, std::move(c), deadlines),
                         [](line_session& oldest) { oldest.evict(); });
        }) {
    endpoint where;
    endpoint::parse("127.0.0.1:0", where);
    cr_assert_eq(lis.listen(where), 0);
  }
};

line_session::line_session(line_server& owner, loop& l, std::unique_ptr<connection> c, session_deadlines d)
    : timed_session(l, std::move(c), d), owner_(owner) {
  request_state(false, true);
}
void line_session::on_read(std::string_view data) {
  buffer_.append(data);
  bool answered = false;
  for (size_t nl; (nl = buffer_.find('\n')) != std::string::npos; answered = true) {
    buffer_.erase(0, nl + 1);
    conn().write("ok\n");
  }
  request_state(!buffer_.empty(), answered);
}
void line_session::on_read_end(int) {
  owner_.ended.push_back("eof");
  owner_.sessions.finish(*this);
}
void line_session::evict() {
  owner_.ended.push_back("evicted");
  conn().write("busy\n");
  owner_.sessions.finish(*this);
}
void line_session::on_request_timeout() {
  owner_.ended.push_back("request");
  conn().write("late\n");
  owner_.sessions.finish(*this);
}
void line_session::on_idle_timeout() {
  owner_.ended.push_back("idle");
  owner_.sessions.finish(*this);
}

// A client that records what it reads and whether the server closed.
struct client final : connection_handler {
  std::unique_ptr<connection> conn;
  std::string received;
  bool closed = false;
  void on_read(std::string_view d) override { received.append(d); }
  void on_read_end(int) override {
    closed = true;
    conn->close();
  }
};

void connect_client(loop& l, const endpoint& to, client& c) {
  connect(l, to, [&c](std::unique_ptr<connection> conn, int status) {
    cr_assert_eq(status, 0);
    c.conn = std::move(conn);
    c.conn->start_reading(&c);
  });
  net_test::run_until(l, [&] { return c.conn != nullptr; });
}

}  // namespace

Test(net_session, a_trickled_request_does_not_extend_its_deadline) {
  loop l;
  line_server server(l, {200, 60'000}, 0);
  client c;
  connect_client(l, server.lis.bound(), c);
  // One byte of an unfinished line every 20 ms, 60 of them: far past the 200 ms deadline.
  int sent = 0;
  timer trickle(l);
  trickle.start(20, 20, [&] {
    if (c.closed || sent == 60) return trickle.stop();
    c.conn->write("x");
    ++sent;
  });
  net_test::run_until(l, [&] { return c.closed; });
  trickle.stop();
  cr_assert(c.closed, "the server closed the trickling client");
  cr_assert_eq(server.ended.size(), 1u);
  cr_assert_eq(server.ended[0], "request");
  cr_assert_eq(c.received, "late\n");
  cr_assert_lt(sent, 60, "cut off while bytes were still coming (%d sent)", sent);
  net_test::run_until(l, [&] { return server.sessions.size() == 0; });
  cr_assert_eq(server.sessions.size(), 0u);
}

Test(net_session, the_idle_clock_runs_between_requests_only) {
  loop l;
  line_server server(l, {60'000, 300}, 0);
  client c;
  connect_client(l, server.lis.bound(), c);
  // Requests every 100 ms keep it open past several idle periods.
  int requests = 0;
  timer talk(l);
  talk.start(100, 100, [&] {
    if (++requests > 8) return talk.stop();
    c.conn->write("ping\n");
  });
  net_test::run_until(l, [&] { return c.closed; });
  cr_assert(c.closed);
  cr_assert_eq(server.ended.size(), 1u);
  cr_assert_eq(server.ended[0], "idle", "ended by %s", server.ended[0].c_str());
  cr_assert_eq(c.received, "ok\nok\nok\nok\nok\nok\nok\nok\n", "every request answered before the idle clock ran out: %s",
               c.received.c_str());
}

Test(net_session, past_the_cap_the_oldest_gives_way) {
  loop l;
  line_server server(l, {60'000, 60'000}, 2);
  client a, b, n;
  connect_client(l, server.lis.bound(), a);
  net_test::run_until(l, [&] { return server.sessions.size() == 1; });
  connect_client(l, server.lis.bound(), b);
  net_test::run_until(l, [&] { return server.sessions.size() == 2; });
  connect_client(l, server.lis.bound(), n);
  net_test::run_until(l, [&] { return a.closed; });
  cr_assert(a.closed && a.received == "busy\n", "the oldest was told and closed: '%s'", a.received.c_str());
  cr_assert_eq(server.sessions.size(), 2u);
  cr_assert(!b.closed && !n.closed);
  n.conn->write("hi\n");
  net_test::run_until(l, [&] { return n.received == "ok\n"; });
  cr_assert_eq(n.received, "ok\n", "the newcomer is served");
  server.sessions.close_all();
  net_test::run_until(l, [&] { return b.closed && n.closed; });
  cr_assert(b.closed && n.closed);
}
