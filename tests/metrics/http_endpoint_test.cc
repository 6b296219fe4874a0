// http_endpoint_test.cc: the metrics HTTP endpoint on a real loop and loopback sockets.
// Untrusted input: none (the test plays the hostile client).
#include <criterion/criterion.h>

#include <atomic>
#include <chrono>
#include <future>
#include <string>
#include <thread>

#include "loopback_client.h"
#include "metrics/http_endpoint.h"
#include "net/loop.h"

using namespace sluice;
using namespace metrics_test;

namespace {

// An endpoint on its own loop thread, as worker 0 runs it; port 0 picks a free port.
class running_endpoint {
 public:
  explicit running_endpoint(metrics::http_settings s = {}) {
    net::endpoint::parse("127.0.0.1:0", s.where);
    std::promise<std::string> ready;
    auto f = ready.get_future();
    thread_ = std::thread([this, s, &ready] {
      net::loop loop;
      metrics::http_endpoint ep(loop, s, [this](bool json) {
        ++renders;
        return json ? std::string("{\"x\":1}") : std::string("# TYPE x counter\nx 1\n");
      });
      loop.on_stop([&] {
        ep.close();
        loop.halt();
      });
      std::string error = ep.listen();
      port_ = ep.bound().port();
      loop_ = &loop;
      ready.set_value(error);
      if (!error.empty()) return;
      loop.run();
    });
    std::string error = f.get();
    cr_assert(error.empty(), "%s", error.c_str());
  }
  ~running_endpoint() {
    if (loop_) loop_->stop();
    thread_.join();
  }
  uint16_t port() const { return port_; }
  std::atomic<int> renders{0};

 private:
  std::thread thread_;
  net::loop* loop_ = nullptr;
  uint16_t port_ = 0;
};

std::string request(uint16_t port, const std::string& req) {
  int fd = connect_to(port);
  cr_assert(fd >= 0);
  send_all(fd, req);
  std::string r = read_all(fd);
  ::close(fd);
  return r;
}

}  // namespace

Test(metrics_http, serves_text_and_json_and_closes) {
  running_endpoint ep;
  std::string r = request(ep.port(), "GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n");
  cr_assert(r.starts_with("HTTP/1.1 200 OK\r\n"), "%s", r.c_str());
  cr_assert(r.find("Content-Type: text/plain; version=0.0.4") != std::string::npos, "%s", r.c_str());
  cr_assert(r.find("Connection: close\r\n") != std::string::npos);
  cr_assert(r.find("Content-Length: 21\r\n") != std::string::npos, "%s", r.c_str());
  cr_assert(r.ends_with("\r\n\r\n# TYPE x counter\nx 1\n"), "%s", r.c_str());
  r = request(ep.port(), "GET /metrics.json?pretty=1 HTTP/1.0\n\n");
  cr_assert(r.starts_with("HTTP/1.1 200 OK\r\n"), "%s", r.c_str());
  cr_assert(r.find("Content-Type: application/json") != std::string::npos);
  cr_assert(r.ends_with("{\"x\":1}"), "%s", r.c_str());
  r = request(ep.port(), "HEAD /metrics HTTP/1.1\r\n\r\n");
  cr_assert(r.starts_with("HTTP/1.1 200 OK\r\n") && r.ends_with("\r\n\r\n"), "%s", r.c_str());
}

Test(metrics_http, errors) {
  running_endpoint ep;
  cr_assert(request(ep.port(), "GET / HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 404 "));
  cr_assert(request(ep.port(), "GET /metricsx HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 404 "));
  cr_assert(request(ep.port(), "POST /metrics HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 405 "));
  cr_assert(request(ep.port(), "GET /metrics\r\n\r\n").starts_with("HTTP/1.1 400 "));
  cr_assert(request(ep.port(), "GET metrics HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 400 "));
  cr_assert(request(ep.port(), "GET /metrics HTTP/2.0\r\n\r\n").starts_with("HTTP/1.1 400 "));
  cr_assert(request(ep.port(), "\x16\x03\x01\x02\x05\x01\r\n\r\n").starts_with("HTTP/1.1 400 "));
  cr_assert_eq(ep.renders.load(), 0, "nothing was rendered for a bad request");
}

Test(metrics_http, a_huge_header_gets_431_and_the_endpoint_keeps_serving) {
  running_endpoint ep;
  std::string huge = "GET /metrics HTTP/1.1\r\nX-Junk: " + std::string(64 * 1024, 'a') + "\r\n\r\n";
  std::string r = request(ep.port(), huge);
  cr_assert(r.starts_with("HTTP/1.1 431 "), "%.200s", r.c_str());
  cr_assert(request(ep.port(), "GET /metrics HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 200 "));
}

Test(metrics_http, a_silent_client_does_not_block_others_and_times_out) {
  metrics::http_settings s;
  s.read_timeout_ms = 2000;
  running_endpoint ep(s);
  const auto t0 = std::chrono::steady_clock::now();
  int silent = connect_to(ep.port());
  int slow = connect_to(ep.port());
  cr_assert(silent >= 0 && slow >= 0);
  send_all(slow, "GET /met");  // a slowloris: part of a request, then a byte now and then
  // Both still open: another client is answered at once.
  std::string r = request(ep.port(), "GET /metrics HTTP/1.1\r\n\r\n");
  cr_assert(r.starts_with("HTTP/1.1 200 "), "%s", r.c_str());
  cr_assert(still_waiting(silent), "the silent connection is still open (not answered)");
  cr_assert(still_waiting(slow), "so is the slow one");
  // The deadline covers the whole request: bytes trickling in do not extend it, so the
  // 408 comes 2 s after the connect, not 2 s after the last byte (3.5 s).
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  send_all(slow, "ri");
  std::string late = read_all(slow, 4000);
  cr_assert(late.starts_with("HTTP/1.1 408 "), "%s", late.c_str());
  cr_assert_lt(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(3000), "the deadline was extended");
  std::string closed = read_all(silent, 4000);
  cr_assert(closed.starts_with("HTTP/1.1 408 "), "%s", closed.c_str());
  ::close(silent);
  ::close(slow);
}

// Full of clients that never finish a request: the oldest gives way (503) to the newcomer,
// which is answered; the others keep waiting for their own deadline.
Test(metrics_http, the_oldest_unanswered_connection_gives_way_at_the_limit) {
  metrics::http_settings s;
  s.max_connections = 2;
  running_endpoint ep(s);
  int a = connect_to(ep.port());
  // Let the loop accept each before the next arrives, so that the order is known.
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  int b = connect_to(ep.port());
  cr_assert(a >= 0 && b >= 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  std::string r = request(ep.port(), "GET /metrics HTTP/1.1\r\n\r\n");
  cr_assert(r.starts_with("HTTP/1.1 200 "), "%s", r.c_str());
  std::string evicted = read_all(a, 2000);
  cr_assert(evicted.starts_with("HTTP/1.1 503 "), "%s", evicted.c_str());
  cr_assert(still_waiting(b), "the younger slow client keeps its slot");
  ::close(a);
  ::close(b);
}
