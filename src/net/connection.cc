// connection.cc: libuv TCP and Unix-domain connections, SO_REUSEPORT listeners and outbound connects (TCP and Unix).
// Untrusted input: peer bytes pass through to the handler; nothing here parses them.
#include "net/connection.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>

namespace sluice::net {

std::string endpoint::host() const {
  char buf[INET6_ADDRSTRLEN] = "";
  if (addr.ss_family == AF_INET) {
    auto* in = reinterpret_cast<const sockaddr_in*>(&addr);
    inet_ntop(AF_INET, &in->sin_addr, buf, sizeof buf);
  } else if (addr.ss_family == AF_INET6) {
    auto* in6 = reinterpret_cast<const sockaddr_in6*>(&addr);
    inet_ntop(AF_INET6, &in6->sin6_addr, buf, sizeof buf);
  }
  return buf;
}

uint16_t endpoint::port() const {
  if (addr.ss_family == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in*>(&addr)->sin_port);
  if (addr.ss_family == AF_INET6) return ntohs(reinterpret_cast<const sockaddr_in6*>(&addr)->sin6_port);
  return 0;
}

std::string endpoint::text() const {
  if (addr.ss_family == AF_INET6) return "[" + host() + "]:" + std::to_string(port());
  return host() + ":" + std::to_string(port());
}

bool endpoint::parse(std::string_view text, endpoint& out) {
  std::string host;
  std::string_view port_text;
  if (!text.empty() && text.front() == '[') {
    auto close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') return false;
    host.assign(text.substr(1, close - 1));
    port_text = text.substr(close + 2);
  } else {
    auto colon = text.rfind(':');
    if (colon == std::string_view::npos) return false;
    host.assign(text.substr(0, colon));
    port_text = text.substr(colon + 1);
  }
  unsigned port = 0;
  auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (ec != std::errc() || end != port_text.data() + port_text.size() || port > 65535) return false;
  out = endpoint{};
  auto* in = reinterpret_cast<sockaddr_in*>(&out.addr);
  auto* in6 = reinterpret_cast<sockaddr_in6*>(&out.addr);
  if (inet_pton(AF_INET, host.c_str(), &in->sin_addr) == 1) {
    in->sin_family = AF_INET;
    in->sin_port = htons(static_cast<uint16_t>(port));
    return true;
  }
  if (inet_pton(AF_INET6, host.c_str(), &in6->sin6_addr) == 1) {
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(static_cast<uint16_t>(port));
    return true;
  }
  return false;
}

struct connection::state final : closing_handles {
  // A TCP or a Unix-domain stream; the handle's own `type` field, common to both,
  // says which. Its `data` points back to this state.
  union handle {
    uv_tcp_t tcp;
    uv_pipe_t pipe;
  } h;
  connection_handler* handler = nullptr;  // null once the connection object is gone
  size_t queued_bytes = 0;
  bool closing = false;
  // Bounds how long a close waits for queued writes; armed by begin_close only.
  uv_timer_t close_deadline{};
  uint32_t close_deadline_ms = connection::default_close_deadline_ms;
  // This state is freed when the last of its handles (the stream, the deadline timer
  // once armed) has been closed by the loop.
  int open_handles = 1;
  std::function<void()> socket_closed;

  state() { std::memset(&h, 0, sizeof h); }
  // A loop torn down while this state waits for its shutdown: closed abortively here, so
  // on_closed still frees it (the loop would close the handles without a callback).
  void close_for_teardown() override;
  uv_stream_t* stream() { return reinterpret_cast<uv_stream_t*>(&h); }
  uv_handle_t* handle() { return reinterpret_cast<uv_handle_t*>(&h); }
};

namespace {

using state = connection::state;

// Reads land in one buffer per loop thread: handlers consume them synchronously,
// so a connection never holds read memory while idle.
thread_local char read_buffer[64 * 1024];

void on_alloc(uv_handle_t*, size_t, uv_buf_t* buf) {
  buf->base = read_buffer;
  buf->len = sizeof read_buffer;
}

void on_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) {
  auto* s = static_cast<state*>(stream->data);
  if (s == nullptr || s->handler == nullptr || s->closing) return;
  if (nread > 0) {
    s->handler->on_read(std::string_view(buf->base, static_cast<size_t>(nread)));
  } else if (nread < 0) {
    uv_read_stop(stream);
    s->handler->on_read_end(static_cast<int>(nread));
  }
}

void on_closed(uv_handle_t* handle) {
  auto* s = static_cast<state*>(handle->data);
  if (handle == s->handle() && s->socket_closed) {
    // uv_close has closed the descriptor by now.
    auto fn = std::move(s->socket_closed);
    fn();
  }
  if (--s->open_handles == 0) delete s;
}

// A write request owns its bytes (or borrows the caller's) until libuv is done with them.
struct write_request {
  uv_write_t req{};
  std::string owned;
  size_t size = 0;
};

void on_written(uv_write_t* req, int) {
  std::unique_ptr<write_request> owned(static_cast<write_request*>(req->data));
  auto* s = static_cast<state*>(req->handle->data);
  if (s == nullptr) return;
  s->queued_bytes -= owned->size;
  if (s->queued_bytes == 0 && s->handler != nullptr && !s->closing) s->handler->on_drained();
}

// Closes the stream (and the deadline timer, if armed). An abortive close resets the
// connection instead of leaving unsent data for the kernel to retry.
void finish_close(state* s, bool abortive) {
  if (abortive) {
    uv_os_fd_t fd;
    linger reset{1, 0};
    if (uv_fileno(s->handle(), &fd) == 0) setsockopt(fd, SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
  }
  if (!uv_is_closing(s->handle())) uv_close(s->handle(), on_closed);
  auto* deadline = reinterpret_cast<uv_handle_t*>(&s->close_deadline);
  if (s->open_handles > 1 && !uv_is_closing(deadline)) uv_close(deadline, on_closed);
}

void begin_close(state* s) {
  if (s->closing) return;
  s->closing = true;
  s->handler = nullptr;
  uv_read_stop(s->stream());
  // uv_close would cancel queued writes (a final 221 or 421 must reach the peer), so
  // shut the write side down first: the callback runs once every queued write is done.
  auto shutdown = std::make_unique<uv_shutdown_t>();
  int rc = uv_shutdown(shutdown.get(), s->stream(), [](uv_shutdown_t* req, int) {
    std::unique_ptr<uv_shutdown_t> owned(req);
    // A loop being torn down, or the deadline, may have closed the handle already.
    auto* handle = reinterpret_cast<uv_handle_t*>(req->handle);
    if (!uv_is_closing(handle)) finish_close(static_cast<state*>(handle->data), false);
  });
  if (rc != 0) {
    finish_close(s, false);
    return;
  }
  shutdown.release();
  loop::of(s->handle()->loop)->track(s);
  // A peer that never reads (zero window) would hold the shutdown, and the descriptor,
  // for ever: past the deadline the queued writes are given up.
  uv_timer_init(s->handle()->loop, &s->close_deadline);
  // From now, not from the start of the loop turn: the writes before the close may have
  // taken a while (a busy machine), and the deadline is the close's own.
  uv_update_time(s->handle()->loop);
  s->close_deadline.data = s;
  ++s->open_handles;
  uv_timer_start(&s->close_deadline, [](uv_timer_t* t) { finish_close(static_cast<state*>(t->data), true); },
                 s->close_deadline_ms, 0);
}

void fill_endpoints(uv_tcp_t* tcp, endpoint& local, endpoint& peer) {
  int len = sizeof local.addr;
  uv_tcp_getsockname(tcp, reinterpret_cast<sockaddr*>(&local.addr), &len);
  len = sizeof peer.addr;
  uv_tcp_getpeername(tcp, reinterpret_cast<sockaddr*>(&peer.addr), &len);
}

}  // namespace

void connection::state::close_for_teardown() { finish_close(this, true); }

connection::connection(state* s) : state_(s) {
  if (s->handle()->type == UV_TCP) {
    fill_endpoints(&s->h.tcp, local_, peer_);
    uv_tcp_nodelay(&s->h.tcp, 1);
    return;
  }
  uv_os_fd_t fd;
  struct ucred cred {};
  socklen_t len = sizeof cred;
  if (uv_fileno(s->handle(), &fd) == 0 && getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0)
    credentials_ = {cred.pid, cred.uid, cred.gid};
}

std::unique_ptr<connection> connection::accept_from(uv_stream_t* server) {
  auto s = std::make_unique<state>();
  if (server->type == UV_TCP) {
    uv_tcp_init(server->loop, &s->h.tcp);
  } else {
    uv_pipe_init(server->loop, &s->h.pipe, 0);
  }
  s->handle()->data = s.get();
  if (uv_accept(server, s->stream()) != 0) {
    uv_close(s.release()->handle(), on_closed);
    return nullptr;
  }
  return std::make_unique<connection>(s.release());
}

connection::~connection() { close(); }

void connection::start_reading(connection_handler* handler) {
  if (state_ == nullptr) return;
  state_->handler = handler;
  uv_read_start(state_->stream(), on_alloc, on_read);
}

void connection::pause_reading() {
  if (state_ != nullptr && !state_->closing) uv_read_stop(state_->stream());
}

void connection::resume_reading() {
  if (state_ != nullptr && !state_->closing) uv_read_start(state_->stream(), on_alloc, on_read);
}

namespace {

// Writes what the kernel takes at once, without a request: on loopback and on most
// connections that is everything, and then no write request is allocated, no callback
// waits for the next loop turn and libuv does not re-arm the descriptor (its write
// completion re-registers the socket with epoll: one epoll_ctl per write). Only when
// nothing is queued, so bytes keep their order. Returns the bytes written (0 on EAGAIN
// or any error: the queued write that follows reports the error as before).
size_t try_write_now(state* s, uv_buf_t* bufs, unsigned nbufs) {
  if (s->queued_bytes != 0) return 0;
  const int n = uv_try_write(s->stream(), bufs, nbufs);
  return n > 0 ? static_cast<size_t>(n) : 0;
}

// Drops the first `n` bytes of bufs[0..nbufs): the part try_write_now already sent.
// Returns the index of the first buffer with bytes left (nbufs when none are).
unsigned skip_written(uv_buf_t* bufs, unsigned nbufs, size_t n) {
  unsigned i = 0;
  while (i < nbufs && n >= bufs[i].len) n -= bufs[i++].len;
  if (i < nbufs) {
    bufs[i].base += n;
    bufs[i].len -= n;
  }
  return i;
}

// Queues bufs[0..nbufs) (borrowed bytes try_write_now left) under a request.
void queue_write(state* s, uv_buf_t* bufs, unsigned nbufs, size_t size) {
  auto req = std::make_unique<write_request>();
  req->size = size;
  req->req.data = req.get();
  if (uv_write(&req->req, s->stream(), bufs, nbufs, on_written) == 0) {
    s->queued_bytes += size;
    req.release();
  }
}

// Queues what is left of `data` past its first `sent` bytes, the request owning the string.
void queue_write(state* s, std::string&& data, size_t sent) {
  auto req = std::make_unique<write_request>();
  req->owned = std::move(data);
  req->size = req->owned.size() - sent;
  uv_buf_t rest = uv_buf_init(req->owned.data() + sent, static_cast<unsigned>(req->size));
  req->req.data = req.get();
  if (uv_write(&req->req, s->stream(), &rest, 1, on_written) == 0) {
    s->queued_bytes += req->size;
    req.release();
  }
}

}  // namespace

void connection::write(std::string&& data) {
  if (state_ == nullptr || state_->closing || data.empty()) return;
  uv_buf_t buf = uv_buf_init(data.data(), static_cast<unsigned>(data.size()));
  const size_t sent = try_write_now(state_, &buf, 1);
  if (sent == data.size()) {
    data.clear();  // taken, as if moved: the caller keeps only the capacity
    return;
  }
  queue_write(state_, std::move(data), sent);
}

void connection::write_borrowed(const char* data, size_t size) {
  if (state_ == nullptr || state_->closing || size == 0) return;
  uv_buf_t buf = uv_buf_init(const_cast<char*>(data), static_cast<unsigned>(size));
  const size_t sent = try_write_now(state_, &buf, 1);
  if (sent == size) return;
  skip_written(&buf, 1, sent);
  queue_write(state_, &buf, 1, size - sent);
}

void connection::write_borrowed(std::span<const std::string_view> pieces) {
  if (state_ == nullptr || state_->closing || pieces.empty()) return;
  std::vector<uv_buf_t> bufs;  // libuv copies the array into the request when it must wait
  bufs.reserve(pieces.size());
  size_t size = 0;
  for (auto p : pieces) {
    if (p.empty()) continue;
    bufs.push_back(uv_buf_init(const_cast<char*>(p.data()), static_cast<unsigned>(p.size())));
    size += p.size();
  }
  if (bufs.empty()) return;
  const size_t sent = try_write_now(state_, bufs.data(), static_cast<unsigned>(bufs.size()));
  if (sent == size) return;
  const unsigned first = skip_written(bufs.data(), static_cast<unsigned>(bufs.size()), sent);
  queue_write(state_, bufs.data() + first, static_cast<unsigned>(bufs.size()) - first, size - sent);
}

size_t connection::write_queue_size() const { return state_ == nullptr ? 0 : state_->queued_bytes; }

void connection::close() {
  if (state_ == nullptr) return;
  begin_close(state_);
  state_ = nullptr;
}

void connection::close_now() {
  state* s = state_;
  state_ = nullptr;
  if (s == nullptr || s->closing) return;
  s->closing = true;
  s->handler = nullptr;
  uv_read_stop(s->stream());
  finish_close(s, false);  // uv_close closes the descriptor before it returns
}

void connection::set_close_deadline(uint32_t ms) {
  if (state_ != nullptr) state_->close_deadline_ms = ms;
}

void connection::on_socket_closed(std::function<void()> fn) {
  if (state_ != nullptr) state_->socket_closed = std::move(fn);
}

uv_loop_t* connection::uv_loop() const { return state_ == nullptr ? nullptr : state_->handle()->loop; }

listener::listener(loop& l, accept_fn on_accept) : on_accept_(std::move(on_accept)), loop_(l.get()) {}

listener::~listener() { close(); }

std::string listener::error_text(int code) const { return uv_strerror(code); }

int listener::listen(const endpoint& where, int backlog) {
  int family = where.addr.ss_family;
  int fd = ::socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return uv_translate_sys_error(errno);
  int one = 1;
  // libuv 1.44 has no SO_REUSEPORT flag: set it before bind so every loop can bind.
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) {
    int err = errno;
    ::close(fd);
    return uv_translate_sys_error(err);
  }
  if (family == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  socklen_t len = family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&where.addr), len) != 0) {
    int err = errno;
    ::close(fd);
    return uv_translate_sys_error(err);
  }
  handle_ = static_cast<uv_tcp_t*>(std::calloc(1, sizeof(uv_tcp_t)));
  uv_tcp_init(loop_, handle_);
  handle_->data = this;
  int rc = uv_tcp_open(handle_, fd);
  if (rc == 0) {
    rc = uv_listen(reinterpret_cast<uv_stream_t*>(handle_), backlog, [](uv_stream_t* server, int status) {
      auto* self = static_cast<listener*>(server->data);
      if (self == nullptr || status < 0) return;
      if (auto c = connection::accept_from(server)) self->on_accept_(std::move(c));
    });
  }
  if (rc != 0) close();
  return rc;
}

endpoint listener::bound() const {
  endpoint e;
  int len = sizeof e.addr;
  if (handle_ != nullptr) uv_tcp_getsockname(handle_, reinterpret_cast<sockaddr*>(&e.addr), &len);
  return e;
}

void listener::close() {
  close_and_free(reinterpret_cast<uv_handle_t*>(handle_));
  handle_ = nullptr;
}

std::string status_text(int status) { return uv_strerror(status); }

bool is_end_of_stream(int status) { return status == UV_EOF; }

namespace {

// One connect in progress. It owns the socket's state until the callback hands it to a
// connection (or closes it), and the caller's callback until that call.
struct connect_request {
  uv_connect_t req{};
  std::unique_ptr<connection::state> s = std::make_unique<connection::state>();
  std::function<void(std::unique_ptr<connection>, int)> done;
};

void on_connected(uv_connect_t* req, int status) {
  std::unique_ptr<connect_request> owned(static_cast<connect_request*>(req->data));
  if (status != 0) {
    uv_close(owned->s.release()->handle(), on_closed);  // on_closed frees the state
    owned->done(nullptr, status);
    return;
  }
  owned->done(std::make_unique<connection>(owned->s.release()), 0);
}

// The request could not be made: the handle is closed and the caller told at once.
void refuse(std::unique_ptr<connect_request> r, int rc) {
  auto cb = std::move(r->done);
  uv_close(r->s.release()->handle(), on_closed);
  cb(nullptr, rc);
}

}  // namespace

void connect(loop& l, const endpoint& to, std::function<void(std::unique_ptr<connection>, int)> done) {
  auto r = std::make_unique<connect_request>();
  r->done = std::move(done);
  uv_tcp_init(l.get(), &r->s->h.tcp);
  r->s->handle()->data = r->s.get();
  r->req.data = r.get();
  int rc = uv_tcp_connect(&r->req, &r->s->h.tcp, reinterpret_cast<const sockaddr*>(&to.addr), on_connected);
  if (rc != 0) return refuse(std::move(r), rc);
  r.release();  // owned by the request until on_connected
}

void connect_unix(loop& l, const std::string& path, std::function<void(std::unique_ptr<connection>, int)> done) {
  auto r = std::make_unique<connect_request>();
  r->done = std::move(done);
  uv_pipe_init(l.get(), &r->s->h.pipe, 0);
  r->s->handle()->data = r->s.get();
  r->req.data = r.get();
  // libuv 1.44 silently truncates a long path (and would connect to another socket).
  if (path.empty() || path.size() >= sizeof(sockaddr_un{}.sun_path))
    return refuse(std::move(r), path.empty() ? UV_EINVAL : UV_ENAMETOOLONG);
  // uv_pipe_connect reports every failure through the callback, on a later loop turn.
  uv_pipe_connect(&r->req, &r->s->h.pipe, path.c_str(), on_connected);
  r.release();  // owned by the request until on_connected
}

}  // namespace sluice::net
