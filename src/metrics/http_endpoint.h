// http_endpoint.h: a minimal HTTP/1.1 server on a libuv loop serving GET /metrics and /metrics.json.
// Untrusted input: HTTP requests from whoever can reach the listening address (size and time bounded).
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "net/connection.h"
#include "net/loop.h"
#include "net/session.h"

namespace sluice::metrics {

struct http_settings {
  net::endpoint where;
  // A request must be complete (request line and headers) within this long and this many
  // bytes: a client that trickles bytes (slowloris) or sends a huge header holds one slot
  // for at most read_timeout_ms, never the loop.
  uint32_t read_timeout_ms = 10'000;
  size_t max_request = 8192;
  // Beyond it the oldest unanswered connection gets 503 and is closed to admit the new one.
  size_t max_connections = 64;
};

// One listener on one loop. Every connection is served on the loop, concurrently, one
// request each: the response carries Connection: close and the socket is closed after it.
//   GET|HEAD /metrics       200, text/plain; version=0.0.4   (render(false))
//   GET|HEAD /metrics.json  200, application/json            (render(true))
//   other paths             404;  other methods 405;  malformed 400;  too large 431
// Loop thread only. Destroying the endpoint closes the listener and every connection;
// the net::connection objects own their buffers until their close completes.
class http_endpoint {
 public:
  // Runs on the loop thread for each request; the string is the body.
  using render_fn = std::function<std::string(bool json)>;
  http_endpoint(net::loop& l, http_settings s, render_fn render);
  ~http_endpoint();
  http_endpoint(const http_endpoint&) = delete;
  http_endpoint& operator=(const http_endpoint&) = delete;

  // "" or why it cannot listen.
  std::string listen();
  void close();
  net::endpoint bound() const { return listener_.bound(); }
  size_t connection_count() const { return sessions_.size(); }

 private:
  class session;
  void accept(std::unique_ptr<net::connection> c);

  net::loop& loop_;
  http_settings settings_;
  render_fn render_;
  net::listener listener_;
  // Capped at max_connections, the oldest evicted (503) for a newcomer.
  net::session_set<session> sessions_;
};

// The response for one complete request head (exposed for tests): status line, headers, body.
struct http_response {
  int status = 200;
  std::string content_type;
  std::string body;
  bool head_only = false;  // HEAD: headers (with the body's length) only
  std::string serialize() const;
};
http_response answer_request(std::string_view head, const http_endpoint::render_fn& render);

}  // namespace sluice::metrics
