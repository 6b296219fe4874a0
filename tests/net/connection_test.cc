// connection_test.cc: listeners, connects, reads, writes and SO_REUSEPORT on real loopback sockets.
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
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

namespace {

// A blocking client socket with a tiny receive buffer, so the server's writes stall fast.
int stalled_client(const endpoint& to) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  int tiny = 1024;
  ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &tiny, sizeof tiny);
  cr_assert_eq(::connect(fd, reinterpret_cast<const sockaddr*>(&to.addr), sizeof(sockaddr_in)), 0);
  return fd;
}

// Runs the loop until the accepted connection reports its socket closed, or `limit_ms`.
struct close_probe {
  loop l;
  listener lis{l, [this](std::unique_ptr<connection> c) { accepted(std::move(c)); }};
  std::unique_ptr<connection> conn;
  std::string to_write;
  uint32_t deadline_ms = 0;
  bool socket_closed = false;
  std::chrono::steady_clock::time_point close_called, closed_at;

  void accepted(std::unique_ptr<connection> c) {
    conn = std::move(c);
    if (deadline_ms != 0) conn->set_close_deadline(deadline_ms);
    conn->on_socket_closed([this] {
      socket_closed = true;
      closed_at = std::chrono::steady_clock::now();
    });
    conn->write(std::string(to_write));
    close_called = std::chrono::steady_clock::now();
    conn.reset();  // the owner lets go at once; the close goes on without it
  }
  endpoint start() {
    endpoint where;
    cr_assert(endpoint::parse("127.0.0.1:0", where));
    cr_assert_eq(lis.listen(where), 0);
    return lis.bound();
  }
  void run(uint32_t limit_ms) {
    sluice::net::timer guard(l);
    guard.start(limit_ms, 0, [&] { l.halt(); });
    sluice::net::timer check(l);
    check.start(10, 10, [&] {
      if (socket_closed) l.halt();
    });
    l.run();
  }
  long close_ms() const {
    return std::chrono::duration_cast<std::chrono::milliseconds>(closed_at - close_called).count();
  }
};

}  // namespace

Test(net_connection, close_reports_socket_closed_after_graceful_drain) {
  close_probe p;
  p.to_write = "221 bye\r\n";
  endpoint to = p.start();
  int fd = stalled_client(to);
  p.run(3000);
  cr_assert(p.socket_closed, "a drained connection closes at once");
  char buf[64];
  ssize_t n = ::recv(fd, buf, sizeof buf, 0);
  cr_assert_eq(n, 9, "the final reply arrives before the FIN");
  cr_assert_eq(::recv(fd, buf, sizeof buf, 0), 0);
  ::close(fd);
}

Test(net_connection, close_of_a_peer_that_never_reads_is_bounded_and_abortive) {
  close_probe p;
  p.to_write = std::string(8 << 20, 'x');  // far more than both kernel buffers hold
  p.deadline_ms = 300;
  endpoint to = p.start();
  int fd = stalled_client(to);
  p.run(5000);
  cr_assert(p.socket_closed, "the close must not wait for a peer that never reads");
  cr_assert_geq(p.close_ms(), 250);
  cr_assert_lt(p.close_ms(), 2000, "closed after %ld ms", p.close_ms());
  // Reset, not a FIN after a partial body: the peer cannot mistake it for a complete reply.
  char buf[65536];
  ssize_t n;
  size_t got = 0;
  while ((n = ::recv(fd, buf, sizeof buf, 0)) > 0) got += size_t(n);
  cr_assert_eq(n, -1, "read %zu octets then %zd", got, n);
  cr_assert_eq(errno, ECONNRESET);
  cr_assert_lt(got, p.to_write.size());
  ::close(fd);
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

namespace {

// The server side of a write test: what the connection reported, and when it drained.
struct drain_counter : connection_handler {
  int drained = 0;
  void on_read(std::string_view) override {}
  void on_read_end(int) override {}
  void on_drained() override { ++drained; }
};

}  // namespace

// What the kernel takes goes out during write() itself: nothing stays queued, so no
// request waits for the next loop turn. What it cannot take (a peer that does not read)
// is queued behind, in order, with the bytes written after it.
Test(net_connection, writes_go_out_at_once_and_the_rest_queues_in_order) {
  loop l;
  drain_counter server;
  std::unique_ptr<connection> conn;
  listener lis(l, [&](std::unique_ptr<connection> c) {
    conn = std::move(c);
    conn->start_reading(&server);
    l.halt();
  });
  endpoint where;
  cr_assert(endpoint::parse("127.0.0.1:0", where));
  cr_assert_eq(lis.listen(where), 0);
  int fd = stalled_client(lis.bound());
  sluice::net::timer guard(l);
  guard.start(3000, 0, [&] { l.halt(); });
  l.run();
  cr_assert(conn != nullptr, "accepted");

  std::string first = "250 2.0.0 small reply\r\n";
  conn->write(std::string(first));
  cr_assert_eq(conn->write_queue_size(), 0u, "a short write is in the kernel when write() returns");

  // Far more than the kernel's buffers hold while the client does not read.
  std::string big(8 << 20, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = char('a' + i % 23);
  const std::string_view pieces[] = {std::string_view(big).substr(0, 1 << 20), std::string_view(big).substr(1 << 20)};
  conn->write_borrowed(pieces);
  const size_t queued = conn->write_queue_size();
  cr_assert_gt(queued, 0u, "the kernel cannot take 8 MiB at once");
  cr_assert_lt(queued, big.size(), "what the kernel took at once is not counted as queued (%zu)", queued);
  const std::string last = "tail\r\n";
  conn->write(std::string(last));
  cr_assert_eq(conn->write_queue_size(), queued + last.size(), "queued behind the rest, not written past it");

  std::string received;
  std::thread reader([&] {
    char buf[65536];
    const size_t want = first.size() + big.size() + last.size();
    while (received.size() < want) {
      ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0) break;
      received.append(buf, size_t(n));
    }
  });
  sluice::net::timer check(l);
  check.start(10, 10, [&] {
    if (conn->write_queue_size() == 0) l.halt();
  });
  guard.start(10000, 0, [&] { l.halt(); });
  l.run();
  reader.join();
  cr_assert_eq(conn->write_queue_size(), 0u);
  cr_assert_eq(server.drained, 1, "drained once, when the queued part had gone");
  cr_assert(received == first + big + last, "every byte, in order (%zu of %zu)", received.size(),
            first.size() + big.size() + last.size());
  conn.reset();
  ::close(fd);
}
