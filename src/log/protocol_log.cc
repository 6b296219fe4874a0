// protocol_log.cc: CSV formatting of protocol log events and the shared append-only files.
// Untrusted input: `data` carries client command lines verbatim.
#include "log/protocol_log.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <mutex>
#include <utility>
#include <vector>

#include "base/clock.h"

namespace sluice::log {

void append_csv_field(std::string& line, std::string_view field) {
  line.push_back('"');
  for (char c : field) {
    unsigned char u = static_cast<unsigned char>(c);
    if (c == '"') {
      line += "\"\"";
    } else if (u < 0x20 || u == 0x7f) {
      static const char hex[] = "0123456789ABCDEF";
      line += "\\x";
      line.push_back(hex[u >> 4]);
      line.push_back(hex[u & 0xf]);
    } else {
      line.push_back(c);
    }
  }
  line.push_back('"');
}

void append_event(std::string& out, std::string_view connector, uint64_t session, uint32_t sequence,
                  std::string_view local, std::string_view remote, event kind, std::string_view data) {
  out += base::iso8601_now_utc();
  out.push_back(',');
  append_csv_field(out, connector);
  out.push_back(',');
  out += std::to_string(session);
  out.push_back(',');
  out += std::to_string(sequence);
  out.push_back(',');
  out += local;
  out.push_back(',');
  out += remote;
  out.push_back(',');
  out.push_back(static_cast<char>(kind));
  out.push_back(',');
  append_csv_field(out, data);
  out.push_back('\n');
}

const char* protocol_log_header() {
  return "date-time,connector-id,session-id,sequence-number,local-endpoint,remote-endpoint,event,data\n";
}

namespace {

std::atomic<uint64_t> dropped{0};
// One mutex for every log file: generations opened before and after a reload hold two
// append_file objects for one path, and both may want to rename it. Log writes are a few
// batched appends per second per loop on the threadpool, so serializing them costs
// nothing a session can see, and rotation can never run twice for one file.
std::mutex files_mutex;

void count_dropped(std::string_view lines) {
  dropped.fetch_add(static_cast<uint64_t>(std::count(lines.begin(), lines.end(), '\n')), std::memory_order_relaxed);
}

int open_log(const std::string& path, const std::string& header) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
  // A new (empty) file gets the column names first.
  if (fd >= 0 && !header.empty() && ::lseek(fd, 0, SEEK_END) == 0) (void)!::write(fd, header.data(), header.size());
  return fd;
}

// Writes all of `data`; false on an error or a short write (ENOSPC shows as either).
bool write_all(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

}  // namespace

uint64_t dropped_lines() { return dropped.load(std::memory_order_relaxed); }

std::shared_ptr<const append_file> append_file::open(const std::string& path, const char* header, std::string& error,
                                                     rotation policy) {
  int fd = open_log(path, header ? header : "");
  if (fd < 0) {
    error = "cannot open " + path + ": " + std::strerror(errno);
    return nullptr;
  }
  return std::make_shared<const append_file>(private_tag{}, fd, path, header, policy);
}

void append_file::reopen_if_moved() const {
  struct stat by_path {}, by_fd {};
  if (fd_ >= 0 && ::stat(path_.c_str(), &by_path) == 0 && ::fstat(fd_, &by_fd) == 0 && by_path.st_ino == by_fd.st_ino &&
      by_path.st_dev == by_fd.st_dev)
    return;
  // Another generation's object (or the administrator) rotated it, or it is gone.
  if (fd_ >= 0) ::close(fd_);
  fd_ = open_log(path_, header_);
  if (fd_ < 0) open_errno_ = errno;
}

void append_file::rotate() const {
  namespace fs = std::filesystem;
  fs::path p(path_);
  std::time_t now = std::time(nullptr);
  std::tm utc{};
  gmtime_r(&now, &utc);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", &utc);
  // The sequence keeps names unique within a second and sorts like the time stamp.
  for (int seq = 0; seq < 10000; ++seq) {
    char suffix[48];
    std::snprintf(suffix, sizeof suffix, ".%s-%04d", stamp, seq);
    fs::path target = p.parent_path() / (p.stem().string() + suffix + p.extension().string());
    std::error_code ec;
    if (fs::exists(target, ec)) continue;
    if (::rename(path_.c_str(), target.c_str()) != 0) return;  // keep writing where we are
    break;
  }
  if (fd_ >= 0) ::close(fd_);
  fd_ = open_log(path_, header_);
  if (fd_ < 0) open_errno_ = errno;
  remove_old();
}

void append_file::remove_old() const {
  namespace fs = std::filesystem;
  fs::path p(path_);
  const std::string prefix = p.stem().string() + ".";
  const std::string ext = p.extension().string();
  std::vector<fs::path> rotated;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(p.parent_path(), ec)) {
    std::string name = entry.path().filename().string();
    // <stem>.YYYYMMDD-HHMMSS-NNNN<ext> and nothing else: never delete what we did not write.
    if (name.size() != prefix.size() + 20 + ext.size() || name.compare(0, prefix.size(), prefix) != 0 ||
        name.compare(name.size() - ext.size(), ext.size(), ext) != 0)
      continue;
    rotated.push_back(entry.path());
  }
  std::sort(rotated.begin(), rotated.end());  // oldest first: the names sort by time
  const auto horizon = fs::file_time_type::clock::now() - std::chrono::hours(24) * policy_.max_age_days;
  for (size_t i = 0; i < rotated.size(); ++i) {
    bool too_many = rotated.size() - i > policy_.keep;
    bool too_old = policy_.max_age_days != 0 && fs::last_write_time(rotated[i], ec) < horizon && !ec;
    if (too_many || too_old) fs::remove(rotated[i], ec);
  }
}

void append_file::failed(std::string_view lines, int error) const {
  const auto n = static_cast<uint64_t>(std::count(lines.begin(), lines.end(), '\n'));
  count_dropped(lines);
  dropped_here_ += n;
  if (failing_) return;
  failing_ = true;
  // Once per outage, not per line: a full disk would otherwise fill the disk stderr goes to.
  std::fprintf(stderr, "sluiced: log: cannot write %s: %s; its lines are dropped until it can be (mail is not affected)\n",
               path_.c_str(), std::strerror(error));
}

void append_file::append(std::string_view lines) const {
  std::lock_guard lock(files_mutex);
  reopen_if_moved();
  if (struct stat st {}; policy_.daily && fd_ >= 0 && ::fstat(fd_, &st) == 0 &&
                         static_cast<uint64_t>(st.st_size) > header_.size() &&
                         st.st_mtime / 86400 != std::time(nullptr) / 86400)
    rotate();  // days in UTC: Unix time has no leap seconds, so every day is 86400 s
  while (!lines.empty()) {
    if (fd_ < 0) {
      failed(lines, open_errno_);
      return;
    }
    struct stat st {};
    const bool known = ::fstat(fd_, &st) == 0;
    const bool regular = known && S_ISREG(st.st_mode);
    uint64_t size = known ? static_cast<uint64_t>(st.st_size) : 0;
    // A file opened while the disk was full lost its header then: it goes first now.
    if (regular && size == 0 && !header_.empty()) {
      if (!write_all(fd_, header_)) {
        const int error = errno;
        (void)!::ftruncate(fd_, 0);
        failed(lines, error);
        return;
      }
      size = header_.size();
    }
    std::string_view chunk = lines;
    if (policy_.max_size != 0) {
      uint64_t room = size < policy_.max_size ? policy_.max_size - size : 0;
      if (chunk.size() > room) {
        // The whole lines that still fit; none: rotate, unless the file holds nothing
        // but its header (then one over-long line goes in alone rather than never).
        size_t end = room == 0 ? std::string_view::npos : chunk.rfind('\n', room - 1);
        if (end != std::string_view::npos) {
          chunk = chunk.substr(0, end + 1);
        } else if (size > header_.size()) {
          rotate();
          continue;
        } else {
          size_t first = chunk.find('\n');
          if (first != std::string_view::npos) chunk = chunk.substr(0, first + 1);
        }
      }
    }
    if (!write_all(fd_, chunk)) {
      const int error = errno;
      // What went out of this chunk is cut back (we are this file's only writer, under
      // the mutex), so the line after the outage does not start inside a torn one.
      if (regular) (void)!::ftruncate(fd_, static_cast<off_t>(size));
      failed(lines, error);
      return;
    }
    lines.remove_prefix(chunk.size());
  }
  if (failing_) {
    failing_ = false;
    std::fprintf(stderr, "sluiced: log: writing %s again (%llu lines were dropped)\n", path_.c_str(),
                 static_cast<unsigned long long>(std::exchange(dropped_here_, 0)));
  }
}

append_file::~append_file() {
  if (fd_ >= 0) ::close(fd_);
}

}  // namespace sluice::log
