// pickup.h: the pickup directory: *.eml files dropped by local programs become queued messages.
// Untrusted input: file names, types, owners and contents in the pickup directory.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <set>
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
  size_t max_in_flight = 64;  // files read per scan and held unacknowledged at most, bounding memory
  // File bytes read per scan; the first file of a scan is always read (up to the size limit)
  // so one large file cannot starve, and the rest wait for the next scan.
  uint64_t max_bytes_per_scan = 64u << 20;
};

// Runs on one worker loop; the directory is listed and files are claimed, read, parsed and
// deleted on libuv's threadpool, so a large file or a slow disk never delays that loop's
// SMTP sessions. The loop thread only submits parsed messages and keeps the books.
//
// A file's life: `x.eml` is claimed by renaming it to `x.eml.<token>.queued` (so no later
// scan, here or in another process, takes it again), then read and submitted; once the
// transaction holding it is durable the claimed file is deleted. A claimed file found at
// start is a leftover of a crash between claim and delete and is queued again: a
// duplicate, never a loss, as the store's rule is. A claimed file that cannot be deleted
// is logged and not queued again while the daemon runs (later scans retry the deletion).
// A file that cannot be used — unparsable, a symlink, not a regular file, hard-linked,
// owned by someone else than the daemon's user or root — is renamed `x.bad` and the
// reason logged.
class pickup final : public submit_client {
 public:
  // Its queue ids carry base::issuer::pickup, whichever loop it runs on.
  pickup(net::loop& loop, pickup_settings settings, std::function<bool(store::submit_request*)> submit_fn);
  ~pickup() override;
  void start();
  void stop();  // no new scans; a scan under way submits nothing (its files stay claimed)
  bool idle() const { return in_flight_.empty() && !scanning_ && deletes_pending_ == 0; }

  void submitted(store::submit_request* request) override;
  // Starts one scan on the threadpool unless one is under way; returns at once.
  void scan();
  // Where RECEIVE events of picked-up messages go (the loop's tracking log).
  void set_tracker(std::function<void(const log::tracking_record&)> fn) { tracker_ = std::move(fn); }

  struct picked_file;  // one claimed, parsed file handed from the threadpool to the loop

 private:
  struct job;
  void submit_picked(std::vector<picked_file>& files);
  void delete_claimed(std::string path, std::string queue_id);
  std::set<std::string> held_paths() const;

  net::loop& loop_;
  pickup_settings settings_;
  std::function<bool(store::submit_request*)> submit_fn_;
  base::queue_id_generator ids_;
  net::timer timer_;
  std::vector<std::unique_ptr<job>> in_flight_;
  // Claimed files whose message is durable: deleting_ while the unlink runs, undeletable_
  // when it failed. Both are skipped by scans, so a file is queued once per run.
  std::set<std::string> deleting_;
  std::set<std::string> undeletable_;
  bool scanning_ = false;
  bool stopped_ = false;
  size_t deletes_pending_ = 0;
  // Threadpool completions hold a weak reference: one that finishes after the pickup is
  // gone does nothing (its claimed files are picked up at the next start).
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);
  std::function<void(const log::tracking_record&)> tracker_;
};

}  // namespace sluice::smtpd
