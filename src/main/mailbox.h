// mailbox.h: a one-slot, latest-wins hand-over of a shared object from any thread to one loop.
#pragma once
#include <atomic>
#include <memory>

namespace sluice::main {

// The poster and the taker each do one atomic exchange on a pointer, so neither ever
// waits for the other (a reload must not stall a loop, nor a busy loop the reload).
template <class T>
class mailbox {
 public:
  mailbox() = default;
  ~mailbox() { std::unique_ptr<std::shared_ptr<const T>> unclaimed(slot_.exchange(nullptr)); }
  mailbox(const mailbox&) = delete;
  mailbox& operator=(const mailbox&) = delete;

  // Any thread: leaves `value` for the taker; one posted earlier and not yet taken is dropped.
  void post(std::shared_ptr<const T> value) {
    auto box = std::make_unique<std::shared_ptr<const T>>(std::move(value));
    std::unique_ptr<std::shared_ptr<const T>> replaced(slot_.exchange(box.release(), std::memory_order_acq_rel));
  }
  // The taker's thread: the latest value posted since the last take, or null.
  std::shared_ptr<const T> take() {
    // A plain load first: the taker polls on every wake-up, and an exchange would pull
    // the line away from the poster's core each time for nothing.
    if (slot_.load(std::memory_order_relaxed) == nullptr) return nullptr;
    std::unique_ptr<std::shared_ptr<const T>> box(slot_.exchange(nullptr, std::memory_order_acq_rel));
    return box ? std::move(*box) : nullptr;
  }

 private:
  std::atomic<std::shared_ptr<const T>*> slot_{nullptr};
};

}  // namespace sluice::main
