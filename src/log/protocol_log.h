// protocol_log.h: per-connector SMTP protocol logs, one CSV line per session event.
// Untrusted input: command lines from remote clients are logged, so fields are CSV-quoted.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace sluice::log {

// Event kinds of the Exchange-style protocol log.
enum class event : char { connect = '+', disconnect = '-', sent = '>', received = '<', info = '*' };

// Appends one quoted CSV field; quotes are doubled and control characters escaped so a
// hostile command line can neither break the line nor forge another record.
void append_csv_field(std::string& line, std::string_view field);

// Appends one event line: date-time, connector, session, sequence, local, remote, event, data.
void append_event(std::string& out, std::string_view connector, uint64_t session, uint32_t sequence,
                  std::string_view local, std::string_view remote, event kind, std::string_view data);

// The CSV column names, written once at the top of a new file.
const char* protocol_log_header();

// An open O_APPEND log file. Shared (shared_ptr) by the configuration snapshot that
// opened it, the sessions started under that snapshot, and writes in flight, so a
// reload never closes a file something still writes to.
class append_file {
 public:
  // Opens (creating with the header line if new); null with `error` on failure.
  static std::shared_ptr<const append_file> open(const std::string& path, const char* header, std::string& error);
  ~append_file();
  append_file(const append_file&) = delete;
  append_file& operator=(const append_file&) = delete;
  int fd() const { return fd_; }
  const std::string& path() const { return path_; }

  struct private_tag {};
  append_file(private_tag, int fd, std::string path) : fd_(fd), path_(std::move(path)) {}

 private:
  int fd_;
  std::string path_;
};

}  // namespace sluice::log
