// loop.cc: libuv loop lifetime, async wake-ups and timers.
#include "net/loop.h"

#include <cstdlib>

namespace sluice::net {

void close_and_free(uv_handle_t* handle) {
  if (handle == nullptr) return;
  handle->data = nullptr;
  if (uv_is_closing(handle)) return;
  uv_close(handle, [](uv_handle_t* h) { std::free(h); });
}

namespace {
template <typename H>
H* alloc_handle() {
  // malloc (mimalloc underneath) pairs with the std::free in close_and_free; the
  // handle type is trivially constructible C.
  return static_cast<H*>(std::calloc(1, sizeof(H)));
}
}  // namespace

closing_handles::~closing_handles() {
  if (tracked_by_ == nullptr) return;
  if (prev_ != nullptr) prev_->next_ = next_; else tracked_by_->closing_ = next_;
  if (next_ != nullptr) next_->prev_ = prev_;
}

void loop::track(closing_handles* c) {
  if (c->tracked_by_ != nullptr) return;
  c->tracked_by_ = this;
  c->next_ = closing_;
  if (closing_ != nullptr) closing_->prev_ = c;
  closing_ = c;
}

loop::loop() {
  uv_loop_init(&loop_);
  loop_.data = this;
  stop_async_ = alloc_handle<uv_async_t>();
  uv_async_init(&loop_, stop_async_, [](uv_async_t* a) {
    auto* self = static_cast<loop*>(a->data);
    if (self == nullptr) return;
    if (self->on_stop_) {
      self->on_stop_();
    } else {
      self->halt();
    }
  });
  stop_async_->data = this;
  // The stop wake-up must not keep the loop alive on its own.
  uv_unref(reinterpret_cast<uv_handle_t*>(stop_async_));
}

loop::~loop() {
  close_and_free(reinterpret_cast<uv_handle_t*>(stop_async_));
  // Their close callbacks free them during the runs below (and untrack them).
  for (closing_handles* c = closing_; c != nullptr; c = c->next_) c->close_for_teardown();
  uv_walk(&loop_, [](uv_handle_t* h, void*) { if (!uv_is_closing(h)) uv_close(h, nullptr); }, nullptr);
  while (uv_run(&loop_, UV_RUN_DEFAULT) != 0) {
  }
  uv_loop_close(&loop_);
}

void loop::run() { uv_run(&loop_, UV_RUN_DEFAULT); }

void loop::stop() { uv_async_send(stop_async_); }

async_signal::async_signal(loop& l, std::function<void()> callback)
    : handle_(alloc_handle<uv_async_t>()), callback_(std::move(callback)) {
  uv_async_init(l.get(), handle_, [](uv_async_t* a) {
    if (auto* self = static_cast<async_signal*>(a->data)) self->callback_();
  });
  handle_->data = this;
}

async_signal::~async_signal() { close_and_free(reinterpret_cast<uv_handle_t*>(handle_)); }

void async_signal::send() { uv_async_send(handle_); }

timer::timer(loop& l) : handle_(alloc_handle<uv_timer_t>()) {
  uv_timer_init(l.get(), handle_);
  handle_->data = this;
}

timer::~timer() { close_and_free(reinterpret_cast<uv_handle_t*>(handle_)); }

namespace {
void on_timer(uv_timer_t* t) {
  if (auto* self = static_cast<timer*>(t->data)) self->fire();
}
}  // namespace

void timer::start(uint64_t timeout_ms, uint64_t repeat_ms, std::function<void()> callback) {
  callback_ = std::move(callback);
  timeout_ms_ = timeout_ms;
  uv_timer_start(handle_, on_timer, timeout_ms, repeat_ms);
}

void timer::again() { uv_timer_start(handle_, on_timer, timeout_ms_, uv_timer_get_repeat(handle_)); }

void timer::stop() { uv_timer_stop(handle_); }

namespace {
struct work_request {
  uv_work_t req{};
  std::function<void()> work;
  std::function<void()> after;
};
}  // namespace

void queue_work(loop& l, std::function<void()> work, std::function<void()> after) {
  auto r = std::make_unique<work_request>();
  r->work = std::move(work);
  r->after = std::move(after);
  r->req.data = r.get();
  int rc = uv_queue_work(
      l.get(), &r->req, [](uv_work_t* req) { static_cast<work_request*>(req->data)->work(); },
      [](uv_work_t* req, int) {
        std::unique_ptr<work_request> owned(static_cast<work_request*>(req->data));
        owned->after();
      });
  if (rc == 0) r.release();
}

}  // namespace sluice::net
