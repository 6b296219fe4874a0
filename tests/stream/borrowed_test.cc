// borrowed_test.cc: byte_stream::send_borrowed over real loopback sockets: no copy, plaintext and TLS, safe close.
// Untrusted input: none (both ends are the test's own).
#include <criterion/criterion.h>

#include <functional>
#include <memory>
#include <string>

#include "../net/run_until.h"
#include "../tls/tls_fixture.h"
#include "net/connection.h"
#include "stream/stream.h"

using sluice::net::connection;
using sluice::net::endpoint;
using sluice::net::listener;
using sluice::net::loop;
using sluice::stream::byte_stream;
using sluice::stream::end_reason;
using sluice::stream::stream_handler;

namespace {

struct collector : stream_handler {
  std::unique_ptr<byte_stream> stream;
  std::string input;
  bool ended = false, secured = false;
  std::string detail;
  std::function<void(collector&)> after_input;
  void on_input(std::string_view d) override {
    input.append(d);
    if (after_input) after_input(*this);
  }
  void on_end(end_reason, std::string_view d) override {
    ended = true;
    detail = d;
    stream->close();
  }
  void on_secured() override { secured = true; }
};

struct fixture {
  loop l;
  collector server;
  std::function<void()> on_accept;
  listener lis{l, [this](std::unique_ptr<connection> c) {
                 server.stream = std::make_unique<byte_stream>(std::move(c));
                 server.stream->start(server);
                 if (on_accept) on_accept();
               }};
  collector client;

  void connect_client() {
    endpoint where;
    cr_assert(endpoint::parse("127.0.0.1:0", where));
    cr_assert_eq(lis.listen(where), 0);
    bool done = false;
    byte_stream::connect(l, lis.bound(), [&](std::unique_ptr<byte_stream> s, std::string_view e) {
      cr_assert(s != nullptr, "%.*s", int(e.size()), e.data());
      client.stream = std::move(s);
      client.stream->start(client);
      done = true;
    });
    run([&] { return done && server.stream != nullptr; });
    cr_assert(done && server.stream != nullptr);
  }
  void run(const std::function<bool()>& until) { net_test::run_until(l, until); }
};

std::string pattern(size_t n) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = char('a' + (i * 7 + i / 1000) % 26);
  return s;
}

}  // namespace

Test(stream_borrowed, plaintext_goes_from_the_callers_memory) {
  fixture f;
  f.connect_client();
  // Large enough that libuv cannot hand it all to the kernel at once: part waits in the
  // queue, pointing at our buffer.
  const std::string body = pattern(8u << 20);
  const size_t piece = 2048;
  for (size_t at = 0; at < body.size(); at += piece)
    f.client.stream->send_borrowed(body.data() + at, std::min(piece, body.size() - at));
  f.client.stream->send(std::string_view("END"));
  f.run([&] { return f.server.input.size() >= body.size() + 3; });
  cr_assert_eq(f.server.input.size(), body.size() + 3);
  cr_assert(f.server.input.compare(0, body.size(), body) == 0, "the peer got the bytes as they were");
  const auto& st = f.client.stream->stats();
  cr_assert_eq(st.borrowed, body.size());
  cr_assert_eq(st.copied, 3u, "only the string_view send copied");
  cr_assert_eq(st.moved, 0u);
}

Test(stream_borrowed, tls_encrypts_straight_from_the_callers_memory) {
  tls_test::temp_dir dir;
  sluice::tls::server_options so;
  so.pair = tls_test::store(dir, "mx", tls_test::issue("mx.example.test", {"mx.example.test"}));
  auto server_ctx = tls_test::server_ctx(so);
  auto client_ctx = tls_test::client_ctx(sluice::tls::client_options{});
  fixture f;
  f.on_accept = [&] { f.server.stream->start_tls(server_ctx); };
  f.connect_client();
  f.client.stream->start_tls(client_ctx, "mx.example.test");
  // Sent before the handshake is done: it has to wait in a copy, and is counted so.
  f.client.stream->send_borrowed("early\n", 6);
  f.run([&] { return f.client.secured; });
  cr_assert(f.client.secured);
  const std::string body = pattern(1u << 20);
  for (size_t at = 0; at < body.size(); at += 4096)
    f.client.stream->send_borrowed(body.data() + at, std::min<size_t>(4096, body.size() - at));
  f.run([&] { return f.server.input.size() >= body.size() + 6; });
  cr_assert(f.server.input == "early\n" + body);
  const auto& st = f.client.stream->stats();
  cr_assert_eq(st.borrowed, body.size());
  cr_assert_eq(st.copied, 6u);
}

// close() must not leave libuv writing from memory the caller frees once close() has
// returned: a borrowed write still queued is dropped, never sent late.
Test(stream_borrowed, close_drops_queued_borrowed_writes) {
  fixture f;
  f.connect_client();
  f.server.stream->hold_input();  // the peer does not read: writes pile up in our queue
  std::string body(32u << 20, 'b');
  f.client.stream->send_borrowed(body.data(), body.size());
  cr_assert_gt(f.client.stream->queued_output(), 0u, "part of the write waits in libuv's queue");
  f.client.stream->close();
  // Were libuv still writing from `body`, these bytes would reach the peer.
  body.assign(body.size(), 'X');
  f.server.stream->release_input();
  f.run([&] { return f.server.ended; });
  cr_assert(f.server.ended, "the peer sees the close");
  cr_assert_gt(f.server.input.size(), 0u, "what the kernel had taken still arrives");
  cr_assert_lt(f.server.input.size(), body.size());
  cr_assert_eq(f.server.input.find('X'), std::string::npos, "no byte was read from the buffer after close()");
}
