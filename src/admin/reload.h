// reload.h: carries `sluicectl reload` requests to the thread that reloads (sluiced's main thread) and its result back.
// Untrusted input: none (requests carry no data; results are the daemon's own messages).
#pragma once
#include <chrono>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

namespace sluice::admin {

// The admin loop must not reload itself (building a generation loads certificates and
// opens files, and the main thread owns the running generation), nor wait for the main
// thread. So a request is queued here and the main thread is woken the way an operator
// wakes it, with SIGHUP; the reload that follows answers it.
class reload_requests {
 public:
  // ("", the new configuration's loaded_at) = reloaded, else (the error text, {}).
  using done_fn = std::function<void(std::string, std::chrono::system_clock::time_point)>;

  // `wake` makes the reloading thread start a reload soon (sluiced: kill(getpid(), SIGHUP));
  // it is called on the requesting thread, outside the lock.
  explicit reload_requests(std::function<void()> wake) : wake_(std::move(wake)) {}
  reload_requests(const reload_requests&) = delete;
  reload_requests& operator=(const reload_requests&) = delete;

  // Any thread: queue `done` and wake the reloading thread. Requests still queued when
  // this object is destroyed are dropped without an answer.
  void request(done_fn done);

  // The reloading thread, as a reload starts and before it reads the file: the requests
  // this reload answers. One made after this call waits for the next reload, which its
  // wake-up causes, so no request is answered by a reload that read an older file.
  class batch {
   public:
    batch() = default;
    explicit batch(std::vector<done_fn> waiting) : waiting_(std::move(waiting)) {}
    // Answers every request of the batch once; later calls do nothing.
    void reloaded(std::chrono::system_clock::time_point loaded_at) { answer("", loaded_at); }
    void refused(const std::string& error_text) { answer(error_text.empty() ? "refused" : error_text, {}); }
    void refused(const std::vector<std::string>& errors);  // one error a line

   private:
    void answer(const std::string& result, std::chrono::system_clock::time_point loaded_at);
    std::vector<done_fn> waiting_;
  };
  batch take();

 private:
  std::function<void()> wake_;
  std::mutex mutex_;
  std::vector<done_fn> waiting_;
};

}  // namespace sluice::admin
