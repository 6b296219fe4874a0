// session.h: a served connection with a request deadline and an idle deadline, and the set of them a server keeps (cap, eviction, deferred destruction).
// Untrusted input: none is examined here: the peer's bytes go to the owner's on_read unexamined; a peer controls only when they come.
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <utility>
#include <vector>

#include "net/connection.h"
#include "net/loop.h"

namespace sluice::net {

// How long a served connection may take. A request must be complete within request_ms of
// its beginning, and the bytes that leave it incomplete do not extend that: a client that
// trickles a byte every few seconds (slowloris) holds the connection for request_ms, never
// longer. Between requests the connection may stay silent for idle_ms (0: no idle clock, the
// owner ends the connection itself, e.g. after its one answer).
struct session_deadlines {
  uint64_t request_ms = 10'000;
  uint64_t idle_ms = 0;
};

// One connection a server answers on (the admin socket, the metrics endpoint), with the two
// clocks that keep slow clients from holding it. One timer, so one clock runs at a time:
// starting either replaces the other. The owner's subclass reads (connection_handler) and
// says where its requests stand (request_begun, request_state); the session keeps the clocks.
//
// Ownership: the session owns its connection and timer; destroying it cancels the timer and
// closes the connection (bounded, see connection::close). The timeouts run on the loop thread,
// from the timer; the subclass may end the session in them, through a session_set, which
// destroys it on a later turn, never inside its own callback. Loop thread only.
class timed_session : public connection_handler {
 public:
  enum class clock { none, request, idle };

  timed_session(loop& l, std::unique_ptr<connection> c, session_deadlines d)
      : conn_(std::move(c)), timer_(l), deadlines_(d) {}
  ~timed_session() override = default;
  timed_session(const timed_session&) = delete;
  timed_session& operator=(const timed_session&) = delete;

  // The connection's bytes go to this session's on_read from now on.
  void start_reading() { conn_->start_reading(this); }

  // A request begins now (for a server whose request starts with the connection): the
  // request clock starts.
  void request_begun() { start(clock::request); }
  // Where the requests stand after a read or an answer: `partial`, a request has begun and is
  // not complete; `answered`, a request was completed since the last call. The request clock
  // starts when a request begins and is left running by further bytes of it; the idle clock
  // (if any) runs from the last answer while no request is partial.
  void request_state(bool partial, bool answered) {
    if (partial && (answered || !partial_)) start(clock::request);
    else if (!partial && (answered || partial_)) start(deadlines_.idle_ms != 0 ? clock::idle : clock::none);
    partial_ = partial;
  }
  // No clock runs until the next request_begun or request_state (the request was answered).
  void stop_clock() { start(clock::none); }
  clock running() const { return running_; }

  connection& conn() { return *conn_; }
  const connection& conn() const { return *conn_; }
  void close() { conn_->close(); }

 protected:
  // The request was not complete within request_ms of its beginning.
  virtual void on_request_timeout() = 0;
  // Nothing came for idle_ms after the last answer.
  virtual void on_idle_timeout() {}

 private:
  void start(clock c) {
    running_ = c;
    if (c == clock::none) return timer_.stop();
    const bool request = c == clock::request;
    timer_.start(request ? deadlines_.request_ms : deadlines_.idle_ms, 0, [this, request] {
      running_ = clock::none;
      if (request) on_request_timeout();
      else on_idle_timeout();
    });
  }

  std::unique_ptr<connection> conn_;
  timer timer_;
  session_deadlines deadlines_;
  clock running_ = clock::none;
  bool partial_ = false;  // a request has begun and is incomplete: its clock runs
};

// The sessions one server has open, oldest first. A session ends inside its own callbacks (a
// read, its timer), which must not destroy the object they run in, so finish() closes it and
// destroys it on a later loop turn. With a cap, admitting one more first has the oldest give
// way (`evict`, which must finish it): slow clients, however many, cannot keep a newcomer out.
// Session derives from timed_session. Loop thread only; the set owns every session in it.
template <class Session>
class session_set {
 public:
  explicit session_set(loop& l, std::size_t cap = 0) : reap_(l), cap_(cap) {}  // cap 0: none
  ~session_set() { close_all(); }
  session_set(const session_set&) = delete;
  session_set& operator=(const session_set&) = delete;

  // Takes `s` and starts reading it; the set owns it until finish() or close_all().
  Session& admit(std::unique_ptr<Session> s, const std::function<void(Session&)>& evict = {}) {
    if (cap_ != 0 && open_.size() >= cap_ && evict) evict(*open_.front());
    open_.push_back(std::move(s));
    Session& admitted = *open_.back();
    admitted.start_reading();
    return admitted;
  }
  // Closes `s` (its queued writes still go out, see connection::close); `s` is destroyed on
  // a later loop turn and must not be used after its current callback returns. Twice is harmless.
  void finish(Session& s) {
    auto it = std::find_if(open_.begin(), open_.end(), [&s](const auto& p) { return p.get() == &s; });
    if (it == open_.end()) return;
    s.close();
    finished_.push_back(std::move(*it));
    open_.erase(it);
    reap_.start(0, 0, [this] { finished_.clear(); });
  }
  // Closes and destroys every session now: for the server's own close, never from a
  // session's callback.
  void close_all() {
    for (auto& s : open_) s->close();
    open_.clear();
    finished_.clear();
    reap_.stop();
  }
  std::size_t size() const { return open_.size(); }
  // The first open session `pred` is true of, or nullptr.
  template <class Pred>
  Session* find(Pred&& pred) {
    auto it = std::find_if(open_.begin(), open_.end(), [&pred](const auto& p) { return pred(*p); });
    return it == open_.end() ? nullptr : it->get();
  }

 private:
  std::list<std::unique_ptr<Session>> open_;
  std::vector<std::unique_ptr<Session>> finished_;
  timer reap_;
  std::size_t cap_;
};

}  // namespace sluice::net
