// connection_test.cc: listeners, connects, reads, writes and SO_REUSEPORT on real loopback sockets.
#include <criterion/criterion.h>

#include <memory>
#include <string>
#include <thread>

#include "net/connection.h"

using namespace sluice::net;

namespace {

// Echoes everything back and closes on "bye".
struct echo_handler : connection_handler {
  std::unique_ptr<connection> conn;
  void on_read(std::string_view data) override {
    std::string copy(data);
    bool bye = copy.find("bye") != std::string::npos;
    conn->write(std::move(copy));
    if (bye) conn->close();
  }
  void on_read_end(int) override { conn->close(); }
};

struct client_handler : connection_handler {
  std::unique_ptr<connection> conn;
  std::string received;
  int end_status = 0;
  bool ended = false;
  void on_read(std::string_view data) override { received.append(data); }
  void on_read_end(int status) override {
    ended = true;
    end_status = status;
    conn->close();
  }
};

}  // namespace

Test(net_connection, echo_round_trip_and_graceful_close) {
  loop l;
  std::vector<std::unique_ptr<echo_handler>> servers;
  listener lis(l, [&](std::unique_ptr<connection> c) {
    auto h = std::make_unique<echo_handler>();
    h->conn = std::move(c);
    h->conn->start_reading(h.get());
    servers.push_back(std::move(h));
  });
  endpoint where;
  cr_assert(endpoint::parse("127.0.0.1:0", where));
  cr_assert_eq(lis.listen(where), 0);
  endpoint bound = lis.bound();
  cr_assert_neq(bound.port(), 0);

  client_handler client;
  std::string payload(200000, 'x');
  payload += "bye";
  connect(l, bound, [&](std::unique_ptr<connection> c, int status) {
    cr_assert_eq(status, 0);
    client.conn = std::move(c);
    client.conn->start_reading(&client);
    client.conn->write(std::string(payload));
  });
  sluice::net::timer guard(l);
  guard.start(5000, 0, [&] { l.stop(); });
  sluice::net::timer check(l);
  check.start(10, 10, [&] {
    if (client.ended) {
      lis.close();
      check.stop();
      guard.stop();
    }
  });
  l.run();
  cr_assert(client.ended, "server must close after echoing");
  cr_assert_eq(client.received.size(), payload.size(), "every byte written before close arrives");
  cr_assert(client.received == payload);
}

Test(net_connection, reuseport_lets_two_listeners_share_a_port) {
  loop l;
  listener a(l, [](std::unique_ptr<connection>) {});
  listener b(l, [](std::unique_ptr<connection>) {});
  endpoint where;
  cr_assert(endpoint::parse("127.0.0.1:0", where));
  cr_assert_eq(a.listen(where), 0);
  endpoint same = a.bound();
  cr_assert_eq(b.listen(same), 0, "a second SO_REUSEPORT listener binds the same port");
}

Test(net_connection, connect_refused_reports_error) {
  loop l;
  listener probe(l, [](std::unique_ptr<connection>) {});
  endpoint where;
  cr_assert(endpoint::parse("127.0.0.1:0", where));
  cr_assert_eq(probe.listen(where), 0);
  endpoint target = probe.bound();
  probe.close();
  int result = 1;
  connect(l, target, [&](std::unique_ptr<connection> c, int status) {
    cr_assert_null(c.get());
    result = status;
  });
  l.run();
  cr_assert_eq(result, UV_ECONNREFUSED);
}

Test(net_endpoint, parse_and_format) {
  endpoint e;
  cr_assert(endpoint::parse("[::1]:2525", e));
  std::string text = e.text();
  cr_assert_str_eq(text.c_str(), "[::1]:2525");
  cr_assert(endpoint::parse("10.1.2.3:25", e));
  cr_assert_eq(e.port(), 25);
  cr_assert(!endpoint::parse("10.1.2.3", e));
  cr_assert(!endpoint::parse("10.1.2.3:70000", e));
  cr_assert(!endpoint::parse("host.example:25", e));
}
