// server.cc: admin sessions: read request lines, dispatch them, write framed responses.
// Untrusted input: request bytes from local admin socket clients (line length capped, peer uid checked).
#include "admin/server.h"

#include <unistd.h>

#include <algorithm>

#include "admin/commands.h"

namespace sluice::admin {

// One client connection. Requests are answered in order as their lines complete.
class server::session final : public net::connection_handler {
 public:
  static constexpr size_t max_unread_output = 1u << 20;

  session(server& owner, std::unique_ptr<net::connection> c)
      : owner_(owner), conn_(std::move(c)), idle_(owner.loop_) {}

  void start(std::list<std::unique_ptr<session>>::iterator self) {
    self_ = self;
    idle_.start(idle_timeout_ms, 0, [this] { owner_.finish(this); });
    conn_->start_reading(this);
  }
  std::list<std::unique_ptr<session>>::iterator self() const { return self_; }

  void on_read(std::string_view data) override {
    buffer_.append(data);
    size_t start = 0;
    for (;;) {
      size_t nl = buffer_.find('\n', start);
      if (nl == std::string::npos) break;
      std::string_view line(buffer_.data() + start, nl - start);
      conn_->write(encode_response(owner_.answer(line)));
      start = nl + 1;
    }
    buffer_.erase(0, start);
    // A client that sends requests without reading the answers stops being read
    // until it catches up, so its responses cannot pile up in memory.
    if (conn_->write_queue_size() > max_unread_output) {
      conn_->pause_reading();
      paused_ = true;
    }
    if (buffer_.size() > max_request_line + 1) {
      // No line end within the limit: answer once and hang up rather than buffer on.
      conn_->write(encode_response(
          response::failure("request longer than " + std::to_string(max_request_line) + " bytes")));
      owner_.finish(this);
      return;
    }
    idle_.again();
  }

  void on_read_end(int) override { owner_.finish(this); }
  void on_drained() override {
    if (!paused_) return;
    paused_ = false;
    conn_->resume_reading();
  }

  void close() { conn_->close(); }

 private:
  server& owner_;
  std::unique_ptr<net::connection> conn_;
  net::timer idle_;
  std::string buffer_;
  bool paused_ = false;
  std::list<std::unique_ptr<session>>::iterator self_;
};

command_table server::default_table() { return default_commands(); }

server::server(net::loop& l, std::string socket_path, daemon_info info, command_table commands)
    : loop_(l),
      path_(std::move(socket_path)),
      info_(std::move(info)),
      commands_(std::move(commands)),
      listener_(l, [this](std::unique_ptr<net::connection> c) { accept(std::move(c)); }),
      reap_(l) {}

server::~server() { close(); }

std::string server::listen() {
  int rc = listener_.listen(path_, 0600);
  if (rc != 0) return "admin socket: " + listener_.error_text(rc);
  return "";
}

void server::close() {
  listener_.close();
  for (auto& s : sessions_) s->close();
  sessions_.clear();
  finished_.clear();
}

void server::accept(std::unique_ptr<net::connection> c) {
  // The socket's mode already keeps others out; the credential check also covers a
  // socket directory with looser permissions than intended.
  const uid_t uid = c->credentials().uid;
  if (uid != 0 && uid != ::geteuid()) {
    c->write(encode_response(response::failure("permission denied")));
    c->close();
    return;
  }
  sessions_.push_back(std::make_unique<session>(*this, std::move(c)));
  sessions_.back()->start(std::prev(sessions_.end()));
}

void server::finish(session* s) {
  s->close();
  auto it = s->self();
  finished_.push_back(std::move(*it));
  sessions_.erase(it);
  reap_.start(0, 0, [this] { finished_.clear(); });
}

response server::answer(std::string_view line) {
  context ctx{state_, info_, std::chrono::system_clock::now()};
  return commands_.dispatch(line, ctx);
}

}  // namespace sluice::admin
