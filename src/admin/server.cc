// server.cc: admin sessions: read request lines, dispatch them, write framed responses.
// Untrusted input: request bytes from local admin socket clients (line length capped, peer uid checked).
#include "admin/server.h"

#include <unistd.h>

#include <algorithm>
#include <optional>
#include <utility>

#include "admin/commands.h"

namespace sluice::admin {

// One client connection. Requests are answered in order as their lines complete. The idle
// clock runs from the last answer; a request line, once begun, must be complete within
// request_timeout_ms, and its further bytes do not extend that (net::timed_session).
class server::session final : public net::timed_session {
 public:
  static constexpr size_t max_unread_output = 1u << 20;

  session(server& owner, std::unique_ptr<net::connection> c)
      : timed_session(owner.loop_, std::move(c), {request_timeout_ms, idle_timeout_ms}), owner_(owner) {
    request_state(false, true);  // the idle clock runs until a request begins
  }

  // Checked at accept (server::accept): root or the daemon's own user.
  int64_t peer_uid() const { return static_cast<int64_t>(conn().credentials().uid); }

  void on_read(std::string_view data) override {
    buffer_.append(data);
    process();
  }

  // Answers the complete lines in the buffer, in order, until one is answered later.
  // False when the session has finished (the caller must not touch it again).
  bool process(bool answered_later = false) {
    size_t start = 0;
    while (waiting_ == 0) {
      size_t nl = buffer_.find('\n', start);
      if (nl == std::string::npos) break;
      std::string_view line(buffer_.data() + start, nl - start);
      start = nl + 1;
      std::optional<response> now = owner_.answer(line, *this);
      if (now) conn().write(encode_response(*now));
    }
    buffer_.erase(0, start);
    // A client that sends requests without reading the answers stops being read
    // until it catches up, so its responses cannot pile up in memory; one whose
    // request is being answered later is not read on either.
    if (waiting_ != 0 || conn().write_queue_size() > max_unread_output) pause();
    if (waiting_ == 0 && buffer_.size() > max_request_line + 1) {
      // No line end within the limit: answer once and hang up rather than buffer on.
      conn().write(encode_response(
          response::failure("request longer than " + std::to_string(max_request_line) + " bytes")));
      owner_.sessions_.finish(*this);
      return false;
    }
    request_state(waiting_ == 0 && !buffer_.empty(), start > 0 || answered_later);
    return true;
  }

  // The request waiting for ticket `t` will be answered later (server::answer).
  void wait_for(uint64_t t) { waiting_ = t; }
  uint64_t waiting_for() const { return waiting_; }
  // Loop thread: the later answer has come; the requests held behind it go on.
  void answered(const response& r) {
    waiting_ = 0;
    conn().write(encode_response(r));
    if (process(true) && waiting_ == 0 && conn().write_queue_size() <= max_unread_output) resume();
  }

  void on_read_end(int) override { owner_.sessions_.finish(*this); }
  void on_drained() override {
    if (waiting_ == 0) resume();
  }

 private:
  void on_request_timeout() override {
    conn().write(encode_response(
        response::failure("request not complete within " + std::to_string(request_timeout_ms / 1000) + " s")));
    owner_.sessions_.finish(*this);
  }
  void on_idle_timeout() override { owner_.sessions_.finish(*this); }
  void pause() {
    if (paused_) return;
    conn().pause_reading();
    paused_ = true;
  }
  void resume() {
    if (!paused_) return;
    paused_ = false;
    conn().resume_reading();
  }

  server& owner_;
  std::string buffer_;
  bool paused_ = false;
  uint64_t waiting_ = 0;  // the ticket of the request answered later, 0 = none
};

command_table server::default_table() { return default_commands(); }

server::server(net::loop& l, std::string socket_path, daemon_info info, command_table commands)
    : loop_(l),
      path_(std::move(socket_path)),
      info_(std::move(info)),
      commands_(std::move(commands)),
      listener_(l, [this](std::unique_ptr<net::connection> c) { accept(std::move(c)); }),
      sessions_(l),
      inbox_(std::make_shared<inbox>()),
      inbox_wake_(l, [this] { deliver_later_answers(); }) {
  inbox_->wake = &inbox_wake_;
}

server::~server() {
  close();
  std::lock_guard lock(inbox_->mutex);
  inbox_->wake = nullptr;  // answers still on their way are dropped from now on
}

std::string server::listen() {
  int rc = listener_.listen(path_, 0600);
  if (rc != 0) return "admin socket: " + listener_.error_text(rc);
  return "";
}

void server::close() {
  listener_.close();
  sessions_.close_all();
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
  sessions_.admit(std::make_unique<session>(*this, std::move(c)));
}

std::optional<response> server::answer(std::string_view line, session& s) {
  uint64_t ticket = 0;
  context ctx{state_, info_, std::chrono::system_clock::now()};
  ctx.peer_uid = s.peer_uid();
  ctx.defer = [this, &ticket]() -> reply_fn {
    ticket = next_ticket_++;
    // Called from any thread, possibly after the server is gone: it only touches the
    // inbox, which it keeps alive.
    return [box = inbox_, ticket](response r, std::chrono::system_clock::time_point answer_from) {
      std::lock_guard lock(box->mutex);
      if (box->wake == nullptr) return;
      box->ready.push_back({ticket, std::move(r), answer_from});
      box->wake->send();
    };
  };
  response r = commands_.dispatch(line, ctx);
  if (ticket == 0) return r;
  s.wait_for(ticket);
  return std::nullopt;
}

void server::set_state(snapshot s) {
  state_ = std::move(s);
  if (!held_.empty()) deliver_later_answers();
}

void server::deliver_later_answers() {
  std::vector<later_answer> ready = std::exchange(held_, {});
  {
    std::lock_guard lock(inbox_->mutex);
    for (auto& a : inbox_->ready) ready.push_back(std::move(a));
    inbox_->ready.clear();
  }
  for (auto& a : ready) {
    // A reload's answer can come back before this loop has taken the generation it
    // built (they travel separately): it waits for it here.
    if (state_.loaded_at < a.answer_from) {
      held_.push_back(std::move(a));
      continue;
    }
    // The client may have gone (or timed out) meanwhile: then nobody is told.
    if (session* s = sessions_.find([t = a.ticket](const session& x) { return x.waiting_for() == t; }))
      s->answered(a.reply);
  }
}

}  // namespace sluice::admin
