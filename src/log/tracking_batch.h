// tracking_batch.h: a worker loop's message tracking lines not yet written, and the file each belongs to.
// Untrusted input: addresses and reply texts inside the records (formatted by append_tracking_event).
#pragma once
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "log/protocol_log.h"
#include "log/tracking_log.h"

namespace sluice::log {

// One per worker loop, owned by the worker and used on its thread only: the receiver
// (RECEIVE), the pickup directory and the categorizer (ROUTE, FAIL, RULE) all add to it,
// and the worker hands what take() returns to the file writer on a timer and at stop, so
// the events of one loop leave it in one write, not one per event. No I/O here.
class tracking_batch {
 public:
  // The tracking log of the configuration now in force; lines added from now on go to
  // it. Lines already added stay bound to the file that was in force when they were
  // added, so a reload never moves an event into the next generation's file. Null:
  // tracking is off and add() drops its records.
  void set_file(std::shared_ptr<const append_file> file);
  // Formats one event (with the current time) into the batch. The record's views are
  // only read during the call.
  void add(const tracking_record& record);
  // The same with a given time stamp (one clock read for several events; tests).
  void add(std::string_view time, const tracking_record& record);

  struct lines_for_file {
    std::shared_ptr<const append_file> file;  // never null
    std::string lines;                        // never empty
  };
  // Everything added since the last take(), oldest file first; the batch is empty
  // afterwards. The caller owns the strings and keeps each file open while writing.
  std::vector<lines_for_file> take();
  bool empty() const { return current_.empty() && sealed_.empty(); }

 private:
  std::shared_ptr<const append_file> file_;
  std::string current_;  // lines for file_
  std::vector<lines_for_file> sealed_;  // lines for files of earlier set_file() calls
};

}  // namespace sluice::log
