// store_fixture.h: temp directories and submit-and-wait helpers shared by the store tests.
#pragma once
#include <stdlib.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "store/store.h"

namespace store_test {

// mkdtemp under /tmp, removed with everything in it on destruction.
class temp_dir {
 public:
  temp_dir() {
    char tmpl[] = "/tmp/sluice-store-test-XXXXXX";
    if (mkdtemp(tmpl)) path_ = tmpl;
  }
  ~temp_dir() {
    std::error_code ec;
    if (!path_.empty()) std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }
  std::string sub(const char* name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// A store opened on a fresh temp directory with one producer, and an id generator: what
// most tests start from. `ok` is false, with `error`, when open failed.
struct opened_store {
  explicit opened_store(std::size_t map_size = std::size_t{256} << 20) {
    sluice::store::store_options o;
    o.dir = tmp.sub("q");
    o.map_size = map_size;
    ok = store.open(std::move(o), error);
  }
  temp_dir tmp;
  sluice::store::queue_store store;
  sluice::base::queue_id_generator gen{0};
  bool ok = false;
  std::string error;
};

inline sluice::store::submit_request make_request(sluice::base::queue_id id, std::size_t body_size,
                                                  unsigned rcpts = 1) {
  sluice::store::submit_request r;
  r.id = id;
  r.envelope.helo = "client.example";
  r.envelope.esmtp = true;
  r.envelope.mail_from = "sender@example.org";
  for (unsigned i = 0; i < rcpts; ++i)
    r.envelope.recipients.push_back({"rcpt" + std::to_string(i) + "@example.com", 0, ""});
  r.body.resize(body_size);
  for (std::size_t i = 0; i < body_size; ++i)
    r.body[i] = static_cast<char>('A' + (i * 7 + id.value) % 26);
  r.connector = "default";
  r.client_address = "127.0.0.1";
  r.client_helo = "client.example";
  r.received_at_ms = 1700000000000 + static_cast<int64_t>(id.value % 1000);
  return r;
}

// Hands every request to the store with `post` (retrying while the lane is full) and
// waits until all have come back through `take`. Returns false on a 60 s timeout.
template <typename Request, typename Post, typename Take>
bool hand_all(std::vector<Request>& reqs, Post&& post, Take&& take) {
  std::size_t next = 0, done = 0;
  Request* out[256];
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (done < reqs.size()) {
    while (next < reqs.size() && post(&reqs[next])) ++next;
    std::size_t n = take(out, 256);
    done += n;
    if (n == 0) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
  }
  return true;
}

inline bool submit_all(sluice::store::queue_store& store, unsigned producer,
                       std::vector<sluice::store::submit_request>& reqs) {
  return hand_all(
      reqs, [&](sluice::store::submit_request* r) { return store.submit(producer, r); },
      [&](sluice::store::submit_request** out, std::size_t max) { return store.take_completed(producer, out, max); });
}

inline bool categorize_all(sluice::store::queue_store& store, unsigned producer,
                           std::vector<sluice::store::categorize_request>& reqs) {
  return hand_all(
      reqs, [&](sluice::store::categorize_request* r) { return store.categorize(producer, r); },
      [&](sluice::store::categorize_request** out, std::size_t max) {
        return store.take_categorized(producer, out, max);
      });
}

inline bool deliver_all(sluice::store::queue_store& store, unsigned producer,
                        std::vector<sluice::store::deliver_request>& reqs) {
  return hand_all(
      reqs, [&](sluice::store::deliver_request* r) { return store.deliver(producer, r); },
      [&](sluice::store::deliver_request** out, std::size_t max) { return store.take_delivered(producer, out, max); });
}

inline bool report_all(sluice::store::queue_store& store, unsigned producer,
                       std::vector<sluice::store::report_request>& reqs) {
  return hand_all(
      reqs, [&](sluice::store::report_request* r) { return store.report(producer, r); },
      [&](sluice::store::report_request** out, std::size_t max) { return store.take_reported(producer, out, max); });
}

}  // namespace store_test
