// pickup.cc: scans the pickup directory on the threadpool, submits parsed files on the loop,
// deletes them once durable.
// Untrusted input: the directory's entries (names, types, owners, contents); reads are bounded,
// symlinks are never followed, unusable files are quarantined as *.bad.
#include "smtpd/pickup.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "base/clock.h"
#include "smtp/header.h"
#include "smtpd/pickup_message.h"
#include "store/store.h"

namespace sluice::smtpd {

namespace fs = std::filesystem;

struct pickup::job {
  std::string claimed_path;
  std::string original_name;  // what the dropping program called it, for logs and tracking
  store::submit_request request;
};

struct pickup::picked_file {
  std::string claimed_path;
  std::string original_name;
  pickup_result parsed;
};

namespace {

constexpr std::string_view claimed_suffix = ".queued";

// Everything a scan needs, copied so the threadpool shares no mutable state with the loop.
struct scan_request {
  std::string dir;
  uint64_t max_message_size = 0;
  unsigned max_received_headers = 0;
  size_t max_files = 0;
  uint64_t max_bytes = 0;
  std::set<std::string> held;               // claimed paths the loop owns: not touched
  std::vector<std::string> retry_delete;    // durable claimed files whose unlink failed before
};

struct scan_result {
  std::vector<pickup::picked_file> files;
  std::vector<std::string> deleted;  // entries of retry_delete that are gone now
};

std::string errno_text(int err) { return std::strerror(err); }

// The name a claimed file had before it was claimed: "x.eml.<token>.queued" -> "x.eml";
// "" if `name` is not a claimed name.
std::string original_of_claimed(std::string_view name) {
  if (name.size() <= claimed_suffix.size() || !name.ends_with(claimed_suffix)) return {};
  name.remove_suffix(claimed_suffix.size());
  auto dot = name.rfind('.');
  if (dot == std::string_view::npos) return {};
  name = name.substr(0, dot);
  if (!name.ends_with(".eml") || name.size() == 4) return {};
  return std::string(name);
}

// Unique for this process (counter) and across restarts (start time), so a claim never
// replaces an older claimed file of the same name that may not be durable yet.
std::string claim_token() {
  static const uint64_t started_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                                         std::chrono::system_clock::now().time_since_epoch())
                                         .count();
  static std::atomic<uint64_t> counter{0};
  char buf[48];
  std::snprintf(buf, sizeof buf, "%llx-%llx", static_cast<unsigned long long>(started_ms),
                static_cast<unsigned long long>(counter.fetch_add(1, std::memory_order_relaxed)));
  return buf;
}

// rename(2) that refuses to replace an existing target, where the filesystem can say so.
bool rename_noreplace(const std::string& from, const std::string& to, int& err) {
  if (::renameat2(AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), RENAME_NOREPLACE) == 0) return true;
  if (errno == EINVAL || errno == ENOSYS) {
    if (::rename(from.c_str(), to.c_str()) == 0) return true;
  }
  err = errno;
  return false;
}

// Renames `path` (a dropped or claimed file) to "<stem>.bad" beside it and logs why. The
// entry is renamed, never its target, so a symlink stays a symlink.
void quarantine(const fs::path& path, const std::string& original_name, const std::string& reason) {
  fs::path bad = path.parent_path() / fs::path(original_name).replace_extension(".bad");
  std::error_code ec;
  fs::rename(path, bad, ec);
  if (ec)
    std::fprintf(stderr, "sluiced: pickup: %s refused (%s), and cannot be renamed %s: %s\n", original_name.c_str(),
                 reason.c_str(), bad.filename().c_str(), ec.message().c_str());
  else
    std::fprintf(stderr, "sluiced: pickup: %s renamed %s: %s\n", original_name.c_str(), bad.filename().c_str(),
                 reason.c_str());
}

struct unique_fd {
  int fd = -1;
  explicit unique_fd(int f) : fd(f) {}
  ~unique_fd() {
    if (fd >= 0) ::close(fd);
  }
  unique_fd(const unique_fd&) = delete;
  unique_fd& operator=(const unique_fd&) = delete;
};

enum class read_status { ok, refused, over_budget, vanished, failed };

struct read_outcome {
  read_status status = read_status::failed;
  std::string content;
  std::string reason;
};

// Opens a claimed file without following a symlink and without blocking on a FIFO or a
// device, then trusts only what fstat says about the file actually opened: a check
// before the open could be raced by swapping the entry.
read_outcome read_claimed(const std::string& path, uint64_t max_message_size, uint64_t budget_left,
                          bool first_of_scan) {
  read_outcome out;
  unique_fd f(::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC));
  if (f.fd < 0) {
    int err = errno;
    if (err == ENOENT) {
      out.status = read_status::vanished;
    } else if (err == ELOOP) {
      out.status = read_status::refused;
      out.reason = "symbolic link (not followed)";
    } else {
      out.reason = "cannot open: " + errno_text(err);
    }
    return out;
  }
  struct stat st {};
  if (::fstat(f.fd, &st) != 0) {
    out.reason = "cannot stat: " + errno_text(errno);
    return out;
  }
  out.status = read_status::refused;
  if (!S_ISREG(st.st_mode)) {
    out.reason = "not a regular file";
    return out;
  }
  // The owner is the only proof of who dropped the file (there is no setgid postdrop as in
  // Postfix): accepting other users' files would let any local account inject mail as the MTA.
  if (st.st_uid != ::geteuid() && st.st_uid != 0) {
    out.reason = "owned by uid " + std::to_string(st.st_uid) + "; only the daemon's user (uid " +
                 std::to_string(::geteuid()) + ") or root may drop files";
    return out;
  }
  // A second link means the data lives elsewhere too: a link to a file its creator could
  // not read (e.g. one of root's) must not be mailed out by the daemon.
  if (st.st_nlink != 1) {
    out.reason = "has " + std::to_string(st.st_nlink) + " hard links; only a file of its own is accepted";
    return out;
  }
  // LF -> CRLF can grow a file a little; parse_pickup_file applies the exact limit.
  const uint64_t bound = max_message_size + max_message_size / 16;
  if (static_cast<uint64_t>(st.st_size) > bound) {
    out.reason = "file larger than the message size limit";
    return out;
  }
  if (!first_of_scan && static_cast<uint64_t>(st.st_size) > budget_left) {
    out.status = read_status::over_budget;
    return out;
  }
  out.content.resize(static_cast<size_t>(st.st_size) + 1);
  size_t got = 0;
  while (true) {
    if (got == out.content.size()) {
      if (got > bound) {
        out.reason = "file larger than the message size limit (it grew while read)";
        out.content.clear();
        return out;
      }
      out.content.resize(std::min<uint64_t>(bound + 1, got * 2));
    }
    ssize_t n = ::read(f.fd, out.content.data() + got, out.content.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      out.status = read_status::failed;
      out.reason = "read error: " + errno_text(errno);
      out.content.clear();
      return out;
    }
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  out.content.resize(got);
  out.status = read_status::ok;
  return out;
}

struct candidate {
  std::string original_name;
  std::string path;
  bool claimed = false;
};

// The threadpool half of a scan: list, claim, read, parse. Touches only the directory and
// `req`; what it returns is handed to the loop.
scan_result scan_directory(const scan_request& req) {
  scan_result result;
  for (const auto& path : req.retry_delete) {
    if (::unlink(path.c_str()) == 0 || errno == ENOENT) result.deleted.push_back(path);
  }
  std::vector<candidate> candidates;
  std::error_code ec;
  for (fs::directory_iterator it(req.dir, ec), end; !ec && it != end; it.increment(ec)) {
    const auto& entry = *it;
    std::string name = entry.path().filename().string();
    std::string original = original_of_claimed(name);
    bool claimed = !original.empty();
    if (!claimed && entry.path().extension() != ".eml") continue;
    if (claimed && req.held.count(entry.path().string()) != 0) continue;
    candidates.push_back({claimed ? original : name, entry.path().string(), claimed});
  }
  if (ec) std::fprintf(stderr, "sluiced: pickup: cannot list %s: %s\n", req.dir.c_str(), ec.message().c_str());
  // Oldest names first is as good an order as any and keeps runs repeatable.
  std::sort(candidates.begin(), candidates.end(),
            [](const candidate& a, const candidate& b) { return a.original_name < b.original_name; });

  uint64_t bytes = 0;
  for (auto& c : candidates) {
    if (result.files.size() >= req.max_files) break;
    if (!c.claimed) {
      // The entry's own type (lstat, no open): a symlink or FIFO is refused before anything
      // could follow it or block on it. fstat after the open below is the check that counts.
      std::error_code type_ec;
      auto type = fs::symlink_status(c.path, type_ec).type();
      if (type_ec) continue;  // vanished meanwhile
      if (type == fs::file_type::symlink) {
        quarantine(c.path, c.original_name, "symbolic link (not followed)");
        continue;
      }
      if (type != fs::file_type::regular) {
        quarantine(c.path, c.original_name, "not a regular file");
        continue;
      }
      std::string claimed = c.path + "." + claim_token() + std::string(claimed_suffix);
      int err = 0;
      if (!rename_noreplace(c.path, claimed, err)) {
        if (err != ENOENT)
          std::fprintf(stderr, "sluiced: pickup: cannot claim %s: %s\n", c.original_name.c_str(),
                       errno_text(err).c_str());
        continue;
      }
      c.path = claimed;
    }
    const uint64_t budget_left = req.max_bytes > bytes ? req.max_bytes - bytes : 0;
    read_outcome r = read_claimed(c.path, req.max_message_size, budget_left, bytes == 0);
    if (r.status == read_status::over_budget) break;  // stays claimed; the next scan reads it
    if (r.status == read_status::vanished) continue;
    if (r.status == read_status::failed) {
      std::fprintf(stderr, "sluiced: pickup: %s: %s; left for the next scan\n", c.original_name.c_str(),
                   r.reason.c_str());
      continue;
    }
    if (r.status == read_status::refused) {
      quarantine(c.path, c.original_name, r.reason);
      continue;
    }
    bytes += r.content.size();
    auto parsed = parse_pickup_file(r.content, req.max_message_size, req.max_received_headers);
    if (!parsed.ok) {
      quarantine(c.path, c.original_name, parsed.error);
      continue;
    }
    result.files.push_back({c.path, c.original_name, std::move(parsed)});
  }
  return result;
}

}  // namespace

pickup::pickup(net::loop& loop, pickup_settings settings, std::function<bool(store::submit_request*)> submit_fn)
    : loop_(loop), settings_(std::move(settings)), submit_fn_(std::move(submit_fn)), ids_(base::issuer::pickup),
      timer_(loop) {}

pickup::~pickup() = default;

void pickup::start() {
  if (settings_.dir.empty()) return;
  stopped_ = false;
  timer_.start(settings_.interval_ms, settings_.interval_ms, [this] { scan(); });
}

void pickup::stop() {
  stopped_ = true;
  timer_.stop();
}

std::set<std::string> pickup::held_paths() const {
  std::set<std::string> held(deleting_.begin(), deleting_.end());
  held.insert(undeletable_.begin(), undeletable_.end());
  for (const auto& j : in_flight_) held.insert(j->claimed_path);
  return held;
}

void pickup::scan() {
  if (scanning_ || stopped_ || settings_.dir.empty() || in_flight_.size() >= settings_.max_in_flight) return;
  auto req = std::make_shared<scan_request>();
  req->dir = settings_.dir;
  req->max_message_size = settings_.max_message_size;
  req->max_received_headers = settings_.max_received_headers;
  req->max_files = settings_.max_in_flight - in_flight_.size();
  req->max_bytes = settings_.max_bytes_per_scan;
  req->held = held_paths();
  req->retry_delete.assign(undeletable_.begin(), undeletable_.end());
  auto result = std::make_shared<scan_result>();
  scanning_ = true;
  // The request and result are shared by the two halves only; the work half never sees `this`.
  std::weak_ptr<int> alive = alive_;
  net::queue_work(
      loop_, [req, result] { *result = scan_directory(*req); },
      [this, alive, result] {
        if (alive.expired()) return;
        scanning_ = false;
        for (const auto& path : result->deleted) undeletable_.erase(path);
        submit_picked(result->files);
      });
}

void pickup::submit_picked(std::vector<picked_file>& files) {
  for (auto& f : files) {
    // Not submitted files stay claimed and unheld: the next scan (or start) reads them again.
    if (stopped_ || in_flight_.size() >= settings_.max_in_flight) return;
    auto j = std::make_unique<job>();
    j->claimed_path = std::move(f.claimed_path);
    j->original_name = std::move(f.original_name);
    auto& req = j->request;
    req.id = ids_.next();
    req.envelope = std::move(f.parsed.envelope);
    std::string id = req.id.text(), date = base::rfc5322_now();
    smtp::received_fields trace;
    trace.from_text = "pickup directory";
    trace.by_host = settings_.hostname;
    trace.with = "pickup";
    trace.id = id;
    trace.date = date;
    req.body = smtp::received_header(trace);
    req.body += f.parsed.body;
    f.parsed.body = std::string();  // the copy above is the one kept; free the parse buffer now
    req.connector = "pickup";
    req.client_address = "";
    req.received_at_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                             std::chrono::system_clock::now().time_since_epoch())
                             .count();
    req.user = static_cast<submit_client*>(this);
    if (!submit_fn_(&req)) return;  // queue ring full: the file stays claimed for the next scan
    in_flight_.push_back(std::move(j));
  }
}

void pickup::delete_claimed(std::string path, std::string queue_id) {
  deleting_.insert(path);
  ++deletes_pending_;
  auto err = std::make_shared<int>(0);
  std::weak_ptr<int> alive = alive_;
  net::queue_work(
      loop_, [path, err] { *err = ::unlink(path.c_str()) == 0 || errno == ENOENT ? 0 : errno; },
      [this, alive, path, err, queue_id] {
        if (alive.expired()) return;
        --deletes_pending_;
        deleting_.erase(path);
        if (*err == 0) return;
        // Kept off every later scan so the message is queued once; a restart queues it
        // again (duplicate, never lost) unless a later scan's retry removed it.
        undeletable_.insert(path);
        std::fprintf(stderr, "sluiced: pickup: cannot delete %s after queuing it as %s: %s; not queued again\n",
                     path.c_str(), queue_id.c_str(), errno_text(*err).c_str());
      });
}

void pickup::submitted(store::submit_request* request) {
  auto it = std::find_if(in_flight_.begin(), in_flight_.end(), [&](const auto& j) { return &j->request == request; });
  if (it == in_flight_.end()) return;
  job& j = **it;
  if (request->result == store::submit_status::ok) {
    delete_claimed(j.claimed_path, request->id.text());
    if (tracker_) {
      std::vector<std::string_view> rcpts;
      for (const auto& r : request->envelope.recipients) rcpts.push_back(r.address);
      std::string id = request->id.text();
      std::string detail = "file=" + j.original_name + " size=" + std::to_string(request->body.size());
      tracker_({log::tracking_event::receive, id, request->envelope.mail_from, rcpts, "pickup", detail});
    }
  } else {
    // Left claimed: the next scan tries again (storage full is usually temporary).
    std::fprintf(stderr, "sluiced: pickup: %s not queued: %s\n", j.original_name.c_str(), request->error.c_str());
  }
  in_flight_.erase(it);
}

}  // namespace sluice::smtpd
