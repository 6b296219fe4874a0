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

// When a log file is rotated and how many old ones stay (the [server] log_* keys).
struct rotation {
  uint64_t max_size = 100ull << 20;  // bytes; 0 = never by size
  uint32_t keep = 10;                // rotated files kept per log, newest first
  uint32_t max_age_days = 30;        // rotated files older than this are deleted; 0 = no age limit
  bool daily = true;                 // also start a new file on the first write of each UTC day
};

// Lines the daemon failed to write to any log (full disk, I/O error), since start. A
// log write failure drops lines, never mail; this is how the operator learns of it.
uint64_t dropped_lines();

// An O_APPEND log file with size rotation. Shared (shared_ptr) by the configuration
// snapshot that opened it, the sessions started under that snapshot, and writes in
// flight, so a reload never closes a file something still writes to. Logically const:
// append() is safe from any thread and only changes which descriptor backs the path.
class append_file {
 public:
  // Opens (creating with the header line if new); null with `error` on failure.
  static std::shared_ptr<const append_file> open(const std::string& path, const char* header, std::string& error,
                                                 rotation policy = {});
  ~append_file();
  append_file(const append_file&) = delete;
  append_file& operator=(const append_file&) = delete;
  const std::string& path() const { return path_; }

  // Blocking (the threadpool calls it): writes whole lines, first renaming the file to
  // <stem>.<YYYYMMDD-HHMMSS-NNNN><ext> when they would take it past max_size (or, when
  // daily, when it was last written on an earlier UTC day), and
  // deleting rotated files past keep/max_age_days. Lines that cannot be written are
  // dropped and counted in dropped_lines(); a write that went out in part is cut back, so
  // the file only ever holds whole lines. The first failure after a success is said once
  // on stderr (with the file and the reason), and so is the first success after failures:
  // every append tries again, so the log resumes by itself when the disk has room.
  void append(std::string_view lines) const;

  struct private_tag {};
  append_file(private_tag, int fd, std::string path, const char* header, rotation policy)
      : fd_(fd), path_(std::move(path)), header_(header ? header : ""), policy_(policy) {}

 private:
  void reopen_if_moved() const;
  void rotate() const;
  void remove_old() const;

  void failed(std::string_view lines, int error) const;

  // Guarded by the file-wide mutex in protocol_log.cc.
  mutable int fd_;  // -1 = reopen on next append
  mutable int open_errno_ = 0;           // why the last open failed
  mutable bool failing_ = false;         // the last append dropped lines
  mutable uint64_t dropped_here_ = 0;    // lines dropped since failing_ was set
  std::string path_;
  std::string header_;
  rotation policy_;
};

}  // namespace sluice::log
