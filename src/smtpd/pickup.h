// pickup.h: the pickup directory: *.eml files dropped by local programs become queued messages.
// Untrusted input: file names and contents in the pickup directory.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "base/queue_id.h"
#include "log/tracking_log.h"
#include "net/loop.h"
#include "smtpd/session.h"

namespace sluice::smtpd {

struct pickup_settings {
  std::string dir;
  uint32_t interval_ms = 1000;
  uint64_t max_message_size = 36u << 20;
  std::string hostname;
  unsigned max_received_headers = 100;  // server.max_received_headers: the mail-loop limit
  size_t max_in_flight = 64;  // files read per scan at most, bounding memory and loop stalls
};

// Runs on one worker loop. A file is deleted only after the transaction holding its
// message is durable; a crash in between queues it twice, never loses it. A file that
// cannot be parsed is renamed *.bad and the reason logged.
class pickup final : public submit_client {
 public:
  pickup(net::loop& loop, pickup_settings settings, unsigned worker_index,
         std::function<bool(store::submit_request*)> submit_fn);
  ~pickup() override;
  void start();
  void stop();
  bool idle() const { return in_flight_.empty(); }

  void submitted(store::submit_request* request) override;
  void scan();
  // Where RECEIVE events of picked-up messages go (the loop's tracking log).
  void set_tracker(std::function<void(const log::tracking_record&)> fn) { tracker_ = std::move(fn); }

 private:
  struct job;
  pickup_settings settings_;
  std::function<bool(store::submit_request*)> submit_fn_;
  base::queue_id_generator ids_;
  net::timer timer_;
  std::vector<std::unique_ptr<job>> in_flight_;
  std::function<void(const log::tracking_record&)> tracker_;
};

}  // namespace sluice::smtpd
