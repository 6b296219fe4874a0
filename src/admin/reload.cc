// reload.cc: the queue of pending admin reload requests between the admin loop and the reloading thread.
// Untrusted input: none.
#include "admin/reload.h"

#include <utility>

namespace sluice::admin {

void reload_requests::request(done_fn done) {
  {
    std::lock_guard lock(mutex_);
    waiting_.push_back(std::move(done));
  }
  if (wake_) wake_();
}

reload_requests::batch reload_requests::take() {
  std::lock_guard lock(mutex_);
  return batch(std::exchange(waiting_, {}));
}

void reload_requests::batch::answer(const std::string& result, std::chrono::system_clock::time_point loaded_at) {
  for (auto& done : std::exchange(waiting_, {})) done(result, loaded_at);
}

void reload_requests::batch::refused(const std::vector<std::string>& errors) {
  std::string text;
  for (const auto& e : errors) text += (text.empty() ? "" : "\n") + e;
  refused(text);
}

}  // namespace sluice::admin
