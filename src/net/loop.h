// loop.h: one libuv event loop, its cross-thread wake-ups and timers (RAII over uv handles).
#pragma once
#include <uv.h>

#include <functional>
#include <memory>

namespace sluice::net {

// A uv handle is freed only in its close callback, after the loop has let go of it,
// so wrappers own the handle memory through this deleter-on-close helper.
void close_and_free(uv_handle_t* handle);

// One uv_loop_t. Created and run on the same thread; stop() may be called from any thread.
class loop;

// An owner of handles whose close outlives the object that asked for it (a connection
// waiting for its last writes after its owner is gone). Its memory is freed by its own
// close callbacks, so the loop's destructor must not close those handles blindly: it asks
// every tracked owner to close them itself first. Loop thread only.
class closing_handles {
 public:
  virtual void close_for_teardown() = 0;

 protected:
  closing_handles() = default;
  ~closing_handles();  // untracks

 private:
  friend class loop;
  loop* tracked_by_ = nullptr;
  closing_handles* prev_ = nullptr;
  closing_handles* next_ = nullptr;
};

class loop {
 public:
  loop();
  ~loop();  // closes every handle still open, runs the loop until they are freed
  loop(const loop&) = delete;
  loop& operator=(const loop&) = delete;

  uv_loop_t* get() { return &loop_; }
  void run();             // until halt() or no more active handles
  // Thread-safe request to stop. Without an on_stop handler the loop halts at once;
  // with one, the handler runs on the loop thread and calls halt() when it has drained.
  void stop();
  void on_stop(std::function<void()> fn) { on_stop_ = std::move(fn); }
  void halt() { uv_stop(&loop_); }  // loop thread only
  // The net::loop a uv_loop_t belongs to (every loop in sluice is one).
  static loop* of(uv_loop_t* l) { return static_cast<loop*>(l->data); }
  // Loop thread only; `c` is untracked by its own destructor.
  void track(closing_handles* c);

 private:
  friend class closing_handles;
  closing_handles* closing_ = nullptr;
  uv_loop_t loop_{};
  uv_async_t* stop_async_ = nullptr;  // freed by close_and_free
  std::function<void()> on_stop_;
};

// uv_async_t: send() is safe from any thread and coalesces; the callback runs on the loop.
class async_signal {
 public:
  async_signal(loop& l, std::function<void()> callback);
  ~async_signal();
  async_signal(const async_signal&) = delete;
  async_signal& operator=(const async_signal&) = delete;
  void send();

 private:
  uv_async_t* handle_;
  std::function<void()> callback_;
};

// uv_timer_t with a callback; stopping or destroying it cancels a pending expiry.
class timer {
 public:
  explicit timer(loop& l);
  ~timer();
  timer(const timer&) = delete;
  timer& operator=(const timer&) = delete;
  void start(uint64_t timeout_ms, uint64_t repeat_ms, std::function<void()> callback);
  void again();           // restart a repeating or one-shot timer with its last timeout
  void stop();
  void fire() { callback_(); }  // called by the uv callback

 private:
  uv_timer_t* handle_;
  std::function<void()> callback_;
  uint64_t timeout_ms_ = 0;
};

// Runs `work` on libuv's threadpool, then `after` on the loop thread. Both functions are
// owned by the request until `after` has run; `after` must check that whatever it
// touches still exists (the work may outlive the object that queued it).
void queue_work(loop& l, std::function<void()> work, std::function<void()> after);

}  // namespace sluice::net
