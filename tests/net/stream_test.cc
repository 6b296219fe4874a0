// stream_test.cc: stream::byte_stream over real loopback sockets: plaintext, STARTTLS both sides, back-pressure.
#include <criterion/criterion.h>

#include <functional>
#include <memory>
#include <string>

#include "../tls/tls_fixture.h"
#include "run_until.h"
#include "net/connection.h"
#include "stream/stream.h"

using sluice::net::connection;
using sluice::net::endpoint;
using sluice::net::listener;
using sluice::net::loop;
using sluice::net::timer;
using sluice::stream::byte_stream;
using sluice::stream::end_reason;
using sluice::stream::stream_handler;

namespace {

// A handler whose behaviour each test fills in.
struct scripted : stream_handler {
  std::unique_ptr<byte_stream> stream;
  std::string input;
  bool secured = false, ended = false, writable = false;
  end_reason why{};
  std::string detail;
  std::function<void(scripted&)> after_input;
  void on_input(std::string_view data) override {
    input.append(data);
    if (after_input) after_input(*this);
  }
  void on_end(end_reason r, std::string_view d) override {
    ended = true;
    why = r;
    detail = d;
    stream->close();
  }
  void on_secured() override { secured = true; }
  void on_writable() override { writable = true; }
};

struct fixture {
  loop l;
  scripted server;
  listener lis{l, [this](std::unique_ptr<connection> c) {
                 server.stream = std::make_unique<byte_stream>(std::move(c), limit);
                 server.stream->start(server);
                 if (on_accept) on_accept();
               }};
  size_t limit = byte_stream::default_output_limit;
  std::function<void()> on_accept;

  endpoint listen() {
    endpoint where;
    cr_assert(endpoint::parse("127.0.0.1:0", where));
    cr_assert_eq(lis.listen(where), 0);
    return lis.bound();
  }
  void run_until(const std::function<bool()>& done) { net_test::run_until(l, done); }
};

}  // namespace

Test(stream, plaintext_round_trip_and_peer_close) {
  fixture f;
  endpoint at = f.listen();
  f.server.after_input = [](scripted& s) {
    if (s.input.find("\r\n") != std::string::npos) s.stream->send(std::string("250 " + s.input));
  };
  scripted client;
  std::string connect_error = "not called";
  byte_stream::connect(f.l, at, [&](std::unique_ptr<byte_stream> s, std::string_view error) {
    connect_error = error;
    client.stream = std::move(s);
    client.stream->start(client);
    client.stream->send(std::string_view("hello\r\n"));
  });
  f.run_until([&] { return client.input.size() >= 11; });
  cr_assert(connect_error.empty(), "%s", connect_error.c_str());
  cr_assert_str_eq(client.input.c_str(), "250 hello\r\n");
  cr_assert_null(client.stream->tls());

  client.stream->close();
  f.run_until([&] { return f.server.ended; });
  cr_assert(f.server.ended);
  cr_assert(f.server.why == end_reason::peer_closed);
  cr_assert_str_eq(f.server.detail.c_str(), "connection closed");
}

Test(stream, connect_failure_says_why) {
  fixture f;
  endpoint at = f.listen();
  f.lis.close();  // nothing listens there any more
  bool called = false;
  std::string error;
  byte_stream::connect(f.l, at, [&](std::unique_ptr<byte_stream> s, std::string_view e) {
    called = true;
    cr_assert_null(s.get());
    error = e;
  });
  f.run_until([&] { return called; });
  cr_assert(called);
  cr_assert(error.rfind("connect: ", 0) == 0 && error.size() > 9, "%s", error.c_str());
}

// The STARTTLS switch-over as SMTP does it: a plaintext exchange, then both sides turn
// TLS on at their own moment, the client with SNI and a verified certificate.
Test(stream, starttls_switch_over_with_verified_server) {
  tls_test::temp_dir dir;
  auto ca = tls_test::issue("Test CA", {}, nullptr, true);
  sluice::tls::server_options so;
  so.pair = tls_test::store(dir, "mx", tls_test::issue("mx.example.test", {"mx.example.test"}, &ca));
  auto server_ctx = tls_test::server_ctx(so);
  sluice::tls::client_options co;
  co.policy = sluice::tls::verify_policy::verified;
  co.ca_file = dir.file("ca.crt", ca.cert_pem);
  auto client_ctx = tls_test::client_ctx(co);

  fixture f;
  endpoint at = f.listen();
  f.server.after_input = [&](scripted& s) {
    if (s.input == "STARTTLS\r\n") {
      s.stream->send(std::string("220 go ahead\r\n"));  // in plaintext, before the switch
      s.stream->start_tls(server_ctx);
      s.input.clear();
    } else if (s.input.find("\r\n") != std::string::npos) {
      s.stream->send(std::string("250 secret " + s.input));
      s.input.clear();
    }
  };
  scripted client;
  client.after_input = [&](scripted& c) {
    if (c.input == "220 go ahead\r\n") {
      c.stream->start_tls(client_ctx, "mx.example.test");
      cr_assert_not(c.stream->tls()->failed());
      c.stream->send(std::string("EHLO under tls\r\n"));  // held until the handshake is done
      c.input.clear();
    }
  };
  byte_stream::connect(f.l, at, [&](std::unique_ptr<byte_stream> s, std::string_view) {
    client.stream = std::move(s);
    client.stream->start(client);
    client.stream->send(std::string("STARTTLS\r\n"));
  });
  f.run_until([&] { return client.input.find("\r\n") != std::string::npos || client.ended; });
  cr_assert_not(client.ended, "%s", client.detail.c_str());
  cr_assert_str_eq(client.input.c_str(), "250 secret EHLO under tls\r\n");
  cr_assert(client.secured && f.server.secured);
  cr_assert(client.stream->secured());
  cr_assert(client.stream->tls()->peer_verified(), "%s", client.stream->tls()->verify_result().c_str());
  std::string sni = f.server.stream->tls()->sni();
  cr_assert_str_eq(sni.c_str(), "mx.example.test");

  // A graceful close sends close_notify: the server learns it from TLS, not from TCP.
  client.stream->close();
  f.run_until([&] { return f.server.ended; });
  cr_assert(f.server.why == end_reason::tls_closed, "%s", f.server.detail.c_str());
}

Test(stream, tls_failure_ends_the_stream) {
  tls_test::temp_dir dir;
  sluice::tls::server_options so;
  so.pair = tls_test::store(dir, "mx", tls_test::issue("mx.example.test", {"mx.example.test"}));
  auto server_ctx = tls_test::server_ctx(so);
  fixture f;
  endpoint at = f.listen();
  f.on_accept = [&] { f.server.stream->start_tls(server_ctx); };
  scripted client;
  byte_stream::connect(f.l, at, [&](std::unique_ptr<byte_stream> s, std::string_view) {
    client.stream = std::move(s);
    client.stream->start(client);
    client.stream->send(std::string("this is no ClientHello\r\n\r\n"));
  });
  f.run_until([&] { return f.server.ended; });
  cr_assert(f.server.ended);
  cr_assert(f.server.why == end_reason::tls_failed);
  cr_assert_not(f.server.detail.empty());
  cr_assert(f.server.input.empty(), "nothing undecrypted reaches the handler");
}

// A peer that sends but never reads: once more than the limit waits for the kernel, the
// stream stops reading, so the peer's further input stays in the kernel, not in us.
Test(stream, back_pressure_pauses_input_until_the_peer_reads) {
  fixture f;
  f.limit = 64 * 1024;
  endpoint at = f.listen();
  const size_t flood = 32u << 20;  // far beyond what loopback socket buffers hold
  f.on_accept = [&] { f.server.stream->send(std::string(flood, 'r')); };

  struct raw_client : sluice::net::connection_handler {
    std::unique_ptr<connection> conn;
    size_t received = 0;
    void on_read(std::string_view d) override { received += d.size(); }
    void on_read_end(int) override {}
  } client;
  sluice::net::connect(f.l, at, [&](std::unique_ptr<connection> c, int status) {
    cr_assert_eq(status, 0);
    client.conn = std::move(c);
    client.conn->start_reading(&client);
    client.conn->pause_reading();  // the client that never reads its replies
  });
  f.run_until([&] { return f.server.stream && f.server.stream->output_blocked(); });
  cr_assert(f.server.stream->output_blocked());
  client.conn->write(std::string("ping\r\n"));
  bool waited = false;
  timer settle(f.l);
  settle.start(200, 0, [&] { waited = true; });
  f.run_until([&] { return waited; });
  cr_assert(f.server.input.empty(), "input must wait while our output is stuck");

  client.conn->resume_reading();
  f.run_until([&] { return f.server.writable && !f.server.input.empty(); });
  cr_assert(f.server.writable, "on_writable once the peer has taken the output");
  cr_assert_not(f.server.stream->output_blocked());
  cr_assert_str_eq(f.server.input.c_str(), "ping\r\n");
  f.run_until([&] { return client.received == flood; });
  cr_assert_eq(client.received, flood);
}

// Owner holds nest: input flows again only when the last one is released.
Test(stream, input_holds_nest) {
  fixture f;
  endpoint at = f.listen();
  f.on_accept = [&] {
    f.server.stream->hold_input();
    f.server.stream->hold_input();
  };
  scripted client;
  byte_stream::connect(f.l, at, [&](std::unique_ptr<byte_stream> s, std::string_view) {
    client.stream = std::move(s);
    client.stream->start(client);
    client.stream->send(std::string("queued\r\n"));
  });
  bool waited = false;
  timer settle(f.l);
  settle.start(100, 0, [&] {
    waited = true;
    f.server.stream->release_input();
  });
  f.run_until([&] { return waited; });
  bool waited_again = false;
  settle.start(100, 0, [&] { waited_again = true; });
  f.run_until([&] { return waited_again; });
  cr_assert(f.server.input.empty(), "one hold is still on");
  f.server.stream->release_input();
  f.run_until([&] { return !f.server.input.empty(); });
  cr_assert_str_eq(f.server.input.c_str(), "queued\r\n");
}

// The owner may destroy the stream from inside its own callback.
Test(stream, handler_may_destroy_the_stream_in_a_callback) {
  fixture f;
  endpoint at = f.listen();
  bool destroyed = false;
  f.server.after_input = [&](scripted& s) {
    s.stream.reset();
    destroyed = true;
  };
  scripted client;
  byte_stream::connect(f.l, at, [&](std::unique_ptr<byte_stream> s, std::string_view) {
    client.stream = std::move(s);
    client.stream->start(client);
    client.stream->send(std::string("bye\r\n"));
  });
  f.run_until([&] { return destroyed && client.ended; });
  cr_assert(destroyed);
  cr_assert(client.ended, "the peer sees the close");
}
