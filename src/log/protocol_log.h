// protocol_log.h: per-connector SMTP protocol logs, one CSV line per session event.
// Untrusted input: command lines from remote clients are logged, so fields are CSV-quoted.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace sluice::log {

// Event kinds of the Exchange-style protocol log.
enum class event : char { connect = '+', disconnect = '-', sent = '>', received = '<', info = '*' };

// Appends one quoted CSV field; quotes are doubled and control characters escaped so a
// hostile command line can neither break the line nor forge another record.
void append_csv_field(std::string& line, std::string_view field);

// The lines of one worker loop, buffered per log file and handed to the writer in
// batches (the worker flushes on a timer), so logging adds no syscall per event.
// Owned by one loop thread; not shared.
class protocol_log_buffer {
 public:
  // Files are numbered by the caller (one per receive connector with logging on).
  explicit protocol_log_buffer(size_t files) : pending_(files) {}

  void add(size_t file, std::string_view connector, uint64_t session, uint32_t sequence,
           std::string_view local, std::string_view remote, event kind, std::string_view data);

  // The batch for one file; the buffer starts empty again.
  std::string take(size_t file);
  size_t files() const { return pending_.size(); }
  size_t pending_bytes(size_t file) const { return pending_[file].size(); }

  static const char* header();  // the CSV column names, written once per new file

 private:
  std::vector<std::string> pending_;
};

}  // namespace sluice::log
