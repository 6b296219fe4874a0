// http_endpoint.cc: request heads read with a deadline and a size cap, one response, then close.
// Untrusted input: request bytes from network clients (only the request line is interpreted; headers
// are skipped, never stored beyond max_request).
#include "metrics/http_endpoint.h"

#include <utility>

#include "metrics/exposition.h"

namespace sluice::metrics {

namespace {

std::string_view reason(int status) {
  switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 431: return "Request Header Fields Too Large";
    case 503: return "Service Unavailable";
  }
  return "Error";
}

http_response error(int status) {
  http_response r;
  r.status = status;
  r.content_type = "text/plain; charset=utf-8";
  r.body = std::to_string(status) + " " + std::string(reason(status)) + "\n";
  return r;
}

// Where the head ends (after the empty line), or npos. Bare LF line ends are accepted too.
size_t head_end(std::string_view buf) {
  size_t crlf = buf.find("\r\n\r\n");
  size_t lf = buf.find("\n\n");
  if (crlf == std::string_view::npos && lf == std::string_view::npos) return std::string_view::npos;
  if (crlf == std::string_view::npos) return lf + 2;
  if (lf == std::string_view::npos) return crlf + 4;
  return std::min(crlf + 4, lf + 2);
}

}  // namespace

std::string http_response::serialize() const {
  std::string out = "HTTP/1.1 " + std::to_string(status) + " " + std::string(reason(status)) + "\r\n";
  out += "Content-Type: " + content_type + "\r\n";
  out += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  if (status == 405) out += "Allow: GET, HEAD\r\n";
  out += "Cache-Control: no-store\r\nConnection: close\r\n\r\n";
  if (!head_only) out += body;
  return out;
}

http_response answer_request(std::string_view head, const http_endpoint::render_fn& render) {
  std::string_view line = head.substr(0, head.find('\n'));
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  // request-line = method SP request-target SP HTTP-version (RFC 9112 3)
  const size_t sp1 = line.find(' ');
  const size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
  if (sp1 == 0 || sp2 == std::string_view::npos || line.find(' ', sp2 + 1) != std::string_view::npos) return error(400);
  const std::string_view method = line.substr(0, sp1);
  std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  const std::string_view version = line.substr(sp2 + 1);
  if (version != "HTTP/1.1" && version != "HTTP/1.0") return error(400);
  if (target.empty() || target[0] != '/') return error(400);
  for (char c : line)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) return error(400);
  const bool head_only = method == "HEAD";
  if (method != "GET" && !head_only) return error(405);
  if (size_t q = target.find('?'); q != std::string_view::npos) target = target.substr(0, q);
  http_response r;
  if (target == "/metrics") {
    r.content_type = std::string(text_content_type);
    r.body = render(false);
  } else if (target == "/metrics.json") {
    r.content_type = std::string(json_content_type);
    r.body = render(true);
  } else {
    r = error(404);
  }
  r.head_only = head_only;
  return r;
}

// One client: reads one request head within the deadline and the size cap, answers, closes.
// The request clock starts with the connection and covers the whole request, not each read:
// trickling a byte every few seconds does not extend it (net::timed_session).
class http_endpoint::session final : public net::timed_session {
 public:
  session(http_endpoint& owner, std::unique_ptr<net::connection> c)
      : timed_session(owner.loop_, std::move(c), {owner.settings_.read_timeout_ms, 0}), owner_(owner) {
    request_begun();
  }

  void on_read(std::string_view data) override {
    if (answered_) return;
    buffer_.append(data);
    const size_t end = head_end(buffer_);
    if (end == std::string::npos || end > owner_.settings_.max_request) {
      if (buffer_.size() > owner_.settings_.max_request) respond(error(431));
      return;
    }
    respond(answer_request(std::string_view(buffer_).substr(0, end), owner_.render_));
  }
  void on_read_end(int) override {
    if (!answered_) owner_.sessions_.finish(*this);
  }
  // Makes room for a newer connection (http_endpoint::accept).
  void evict() { respond(error(503)); }

 private:
  void on_request_timeout() override { respond(error(408)); }
  void respond(const http_response& r) {
    if (answered_) return;
    answered_ = true;
    stop_clock();
    buffer_.clear();
    buffer_.shrink_to_fit();
    conn().pause_reading();
    conn().write(r.serialize());
    // The connection closes once the response has reached the kernel (close() waits for
    // queued writes, bounded by its own deadline for a client that does not read).
    owner_.sessions_.finish(*this);
  }

  http_endpoint& owner_;
  std::string buffer_;
  bool answered_ = false;
};

http_endpoint::http_endpoint(net::loop& l, http_settings s, render_fn render)
    : loop_(l),
      settings_(std::move(s)),
      render_(std::move(render)),
      listener_(l, [this](std::unique_ptr<net::connection> c) { accept(std::move(c)); }),
      sessions_(l, settings_.max_connections) {}

http_endpoint::~http_endpoint() { close(); }

std::string http_endpoint::listen() {
  int rc = listener_.listen(settings_.where, 128);
  if (rc != 0) return "metrics endpoint " + settings_.where.text() + ": " + listener_.error_text(rc);
  return "";
}

void http_endpoint::close() {
  listener_.close();
  sessions_.close_all();
}

void http_endpoint::accept(std::unique_ptr<net::connection> c) {
  // Full of clients that have not finished a request (an answered one is gone at once): the
  // oldest has had longest to send it and gives way, so slow clients, however many, cannot
  // keep a scraper out for their whole read timeout.
  sessions_.admit(std::make_unique<session>(*this, std::move(c)), [](session& oldest) { oldest.evict(); });
}

}  // namespace sluice::metrics
