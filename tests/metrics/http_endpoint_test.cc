// http_endpoint_test.cc: the metrics HTTP endpoint on a real loop and loopback sockets.
// Untrusted input: none (the test plays the hostile client).
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <future>
#include <string>
#include <thread>

#include "metrics/http_endpoint.h"
#include "net/loop.h"

using namespace sluice;

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

int connect_to(uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  cr_assert_eq(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  return fd;
}

void send_all(int fd, const std::string& data) {
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
    if (n <= 0) return;  // the server may hang up on an oversized request mid-way
    off += static_cast<size_t>(n);
  }
}

// Everything until the server closes, or what came within `timeout_ms`.
std::string read_all(int fd, int timeout_ms = 5000) {
  std::string out;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count();
    if (left <= 0) break;
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left)) <= 0) break;
    char buf[4096];
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

std::string request(uint16_t port, const std::string& req) {
  int fd = connect_to(port);
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
  s.read_timeout_ms = 1500;
  running_endpoint ep(s);
  int silent = connect_to(ep.port());
  int slow = connect_to(ep.port());
  send_all(slow, "GET /met");  // a slowloris: part of a request, then nothing
  // Both still open: another client is answered at once.
  std::string r = request(ep.port(), "GET /metrics HTTP/1.1\r\n\r\n");
  cr_assert(r.starts_with("HTTP/1.1 200 "), "%s", r.c_str());
  pollfd p{silent, POLLIN, 0};
  cr_assert_eq(::poll(&p, 1, 0), 0, "the silent connection is still open (not answered)");
  // The deadline covers the whole request: trickling bytes does not extend it.
  send_all(slow, "ri");
  std::string late = read_all(slow, 4000);
  cr_assert(late.starts_with("HTTP/1.1 408 "), "%s", late.c_str());
  std::string closed = read_all(silent, 4000);
  cr_assert(closed.starts_with("HTTP/1.1 408 "), "%s", closed.c_str());
  ::close(silent);
  ::close(slow);
}

Test(metrics_http, connections_beyond_the_limit_get_503) {
  metrics::http_settings s;
  s.max_connections = 2;
  running_endpoint ep(s);
  int a = connect_to(ep.port());
  int b = connect_to(ep.port());
  // Let the loop accept both before the third arrives.
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  std::string r = request(ep.port(), "GET /metrics HTTP/1.1\r\n\r\n");
  cr_assert(r.starts_with("HTTP/1.1 503 "), "%s", r.c_str());
  ::close(a);
  ::close(b);
  // Once they are gone there is room again.
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  cr_assert(request(ep.port(), "GET /metrics HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 200 "));
}
