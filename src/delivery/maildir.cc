// maildir.cc: Maildir delivery: recipient directories, the tmp/ -> new/ write with its fsyncs, errors as replies.
// Untrusted input: envelope addresses from remote clients (escaped before they name a directory) and message content.
#include "delivery/maildir.h"

#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <string>
#include <utility>
#include <vector>

#include "base/ascii.h"

namespace sluice::delivery {
namespace {

// One open descriptor, closed on destruction.
class owned_fd {
 public:
  owned_fd() = default;
  explicit owned_fd(int v) : v_(v) {}
  owned_fd(owned_fd&& o) noexcept : v_(std::exchange(o.v_, -1)) {}
  owned_fd& operator=(owned_fd&& o) noexcept {
    if (this != &o) {
      reset();
      v_ = std::exchange(o.v_, -1);
    }
    return *this;
  }
  owned_fd(const owned_fd&) = delete;
  owned_fd& operator=(const owned_fd&) = delete;
  ~owned_fd() { reset(); }

  int get() const { return v_; }
  bool valid() const { return v_ >= 0; }
  // close() can report a write error (NFS, quotas): it is part of writing the file.
  int close_checked() {
    int rc = ::close(std::exchange(v_, -1));
    return rc == 0 ? 0 : errno;
  }
  void reset() {
    if (v_ >= 0) ::close(std::exchange(v_, -1));
  }

 private:
  int v_ = -1;
};

constexpr char hex_digits[] = "0123456789ABCDEF";

// One path component from client text; see maildir_for in the header for the rule.
void append_escaped(std::string& out, std::string_view s) {
  if (s.empty()) {
    out += '%';  // never the result of escaping anything else: '%' is always followed by two digits
    return;
  }
  for (size_t i = 0; i < s.size(); ++i) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c == '/' || c == '%' || c < 0x20 || c == 0x7f || (i == 0 && c == '.')) {
      out += '%';
      out += hex_digits[c >> 4];
      out += hex_digits[c & 0xf];
    } else {
      out += static_cast<char>(c);
    }
  }
}

// A failed step: the errno and what was being done to which path ("mkdir /var/mail/x").
struct failure {
  int err = 0;
  std::string what;
};

// Opens name in parent as a directory, creating it first when missing. A directory made
// here has its entry fsynced in parent, or a crash could take the new directory, and the
// message renamed into it, away with it.
bool open_dir(int parent, const std::string& path, std::string_view name, owned_fd& out, failure& f) {
  std::string n(name);
  for (int attempt = 0; attempt < 2; ++attempt) {
    out = owned_fd(::openat(parent, n.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (out.valid()) return true;
    if (errno != ENOENT || attempt == 1) break;
    if (::mkdirat(parent, n.c_str(), 0700) == 0) {
      if (::fsync(parent) != 0) {
        f = {errno, "fsync " + path};
        return false;
      }
    } else if (errno != EEXIST) {  // EEXIST: another delivery made it just now
      f = {errno, "mkdir " + path + "/" + n};
      return false;
    }
  }
  f = {errno, "open " + path + "/" + n};
  return false;
}

// The Maildir of dir and its tmp/ and new/, every missing directory below root created.
struct maildir_fds {
  owned_fd tmp, fresh;  // tmp/ and new/
};

bool open_maildir(const std::string& root, const std::string& dir, maildir_fds& out, failure& f) {
  owned_fd cur(::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!cur.valid()) {
    f = {errno, "open " + root};
    return false;
  }
  if (dir.compare(0, root.size(), root) != 0 || (dir.size() > root.size() && dir[root.size()] != '/')) {
    f = {EINVAL, "maildir " + dir + " is not under " + root};
    return false;
  }
  std::string path = root;
  std::string_view rest = std::string_view(dir).substr(root.size());
  while (!rest.empty()) {
    size_t slash = rest.find('/');
    std::string_view part = rest.substr(0, slash);
    rest = slash == std::string_view::npos ? std::string_view() : rest.substr(slash + 1);
    if (part.empty()) continue;
    if (part == "." || part == "..") {  // the loader refuses such templates; never climb out of root
      f = {EINVAL, "maildir " + dir + " has a '" + std::string(part) + "' component"};
      return false;
    }
    owned_fd next;
    if (!open_dir(cur.get(), path, part, next, f)) return false;
    cur = std::move(next);
    path += '/';
    path += part;
  }
  owned_fd unused_cur;
  return open_dir(cur.get(), path, "tmp", out.tmp, f) && open_dir(cur.get(), path, "new", out.fresh, f) &&
         open_dir(cur.get(), path, "cur", unused_cur, f);
}

// Characters that would end or split a Maildir name's parts become \ooo, as qmail does for
// host names ('/' is \057, ':' is \072).
void append_name_part(std::string& out, std::string_view s, bool keep_dots) {
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    bool plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
                 c == '_' || (keep_dots && c == '.');
    if (plain) {
      out += ch;
    } else {
      out += '\\';
      out += static_cast<char>('0' + (c >> 6));
      out += static_cast<char>('0' + ((c >> 3) & 7));
      out += static_cast<char>('0' + (c & 7));
    }
  }
}

std::atomic<uint64_t> deliveries{0};

// <seconds>.M<microseconds>P<pid>Q<counter>I<queue id>R<recipient index>.<host>: the time,
// pid and counter make it unique on this host (the counter across threads and attempts of
// one process), the host across hosts sharing the file system.
std::string unique_name(const maildir_message& m, uint32_t recipient) {
  timespec now{};
  ::clock_gettime(CLOCK_REALTIME, &now);
  std::string name = std::to_string(now.tv_sec) + ".M" + std::to_string(now.tv_nsec / 1000) + "P" +
                     std::to_string(::getpid()) + "Q" + std::to_string(deliveries.fetch_add(1) + 1) + "I";
  append_name_part(name, m.queue_id, false);
  name += "R" + std::to_string(recipient) + ".";
  append_name_part(name, m.hostname.empty() ? std::string_view("localhost") : m.hostname, true);
  return name;
}

// "\r\n" unless the content's first line ends in a bare "\n" (it may span chunks).
std::string_view line_end_of(std::span<const std::string_view> body) {
  char prev = '\0';
  for (std::string_view chunk : body) {
    for (char c : chunk) {
      if (c == '\n') return prev == '\r' ? "\r\n" : "\n";
      prev = c;
    }
  }
  return "\r\n";
}

// An address in a header line: the SMTP parser admits no control bytes, but a line break
// here would forge header fields, so none can get through.
void append_header_address(std::string& out, std::string_view address) {
  for (char ch : address) {
    auto c = static_cast<unsigned char>(ch);
    out += (c < 0x20 || c == 0x7f) ? '?' : ch;
  }
}

// writev over the header and the chunks, resuming after short writes.
int write_all(int fd, std::string_view head, std::span<const std::string_view> body) {
  std::vector<iovec> iov;
  iov.reserve(body.size() + 1);
  auto add = [&](std::string_view s) {
    if (!s.empty()) iov.push_back({const_cast<char*>(s.data()), s.size()});
  };
  add(head);
  for (std::string_view chunk : body) add(chunk);
  size_t first = 0;
  while (first < iov.size()) {
    int count = static_cast<int>(std::min<size_t>(iov.size() - first, IOV_MAX));
    ssize_t n = ::writev(fd, iov.data() + first, count);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    auto left = static_cast<size_t>(n);
    while (first < iov.size() && left >= iov[first].iov_len) left -= iov[first++].iov_len;
    if (left > 0) {
      iov[first].iov_base = static_cast<char*>(iov[first].iov_base) + left;
      iov[first].iov_len -= left;
    }
  }
  return 0;
}

smtp::reply deferral(const failure& f) {
  std::string text = f.what + ": " + std::strerror(f.err);
  if (f.err == ENOSPC) return {452, "4.3.1", std::move(text)};
  if (f.err == EDQUOT) return {452, "4.2.2", std::move(text)};
  return {451, "4.3.0", std::move(text)};
}

// Writes the file for one recipient into the opened Maildir at path; on failure no file is
// left in tmp/ or new/.
bool write_message(const maildir_fds& dirs, const std::string& path, const std::string& name,
                   const std::string& head, const maildir_message& m, failure& f) {
  const std::string tmp_path = path + "/tmp/" + name;
  owned_fd file(::openat(dirs.tmp.get(), name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
  if (!file.valid()) {
    f = {errno, "create " + tmp_path};
    return false;
  }
  int err = write_all(file.get(), head, m.body);
  if (err != 0) f = {err, "write " + tmp_path};
  else if (::fsync(file.get()) != 0) f = {errno, "fsync " + tmp_path};
  else if ((err = file.close_checked()) != 0) f = {err, "close " + tmp_path};
  else if (::fsync(dirs.tmp.get()) != 0) f = {errno, "fsync " + path + "/tmp"};
  else if (::renameat(dirs.tmp.get(), name.c_str(), dirs.fresh.get(), name.c_str()) != 0)
    f = {errno, "rename " + tmp_path + " to new/"};
  else if (::fsync(dirs.fresh.get()) != 0) {
    // Not durable, so not delivered: the retry may duplicate it, but a file left in new/
    // would duplicate it for sure (unless the reader has taken it already).
    f = {errno, "fsync " + path + "/new"};
    ::unlinkat(dirs.fresh.get(), name.c_str(), 0);
    return false;
  } else {
    return true;
  }
  ::unlinkat(dirs.tmp.get(), name.c_str(), 0);
  return false;
}

smtp::reply deliver_one(const maildir_target& t, const maildir_message& m, uint32_t index, std::string_view address,
                        std::string_view eol) {
  auto at = address.rfind('@');
  std::string_view local = at == std::string_view::npos ? address : address.substr(0, at);
  std::string_view domain = at == std::string_view::npos ? std::string_view() : address.substr(at + 1);
  const std::string dir = maildir_for(t, local, domain);
  failure f;
  maildir_fds dirs;
  if (!open_maildir(t.root, dir, dirs, f)) return deferral(f);
  std::string head = "Return-Path: <";
  append_header_address(head, m.mail_from);
  head += ">";
  head += eol;
  head += "Delivered-To: ";
  append_header_address(head, address);
  head += eol;
  std::string name = unique_name(m, index);
  if (!write_message(dirs, dir, name, head, m, f)) return deferral(f);
  return {250, "2.0.0", "delivered to " + dir + "/new/" + name};
}

}  // namespace

std::string maildir_for(const maildir_target& t, std::string_view local, std::string_view domain) {
  std::string lowered(domain);
  for (char& c : lowered) c = base::ascii_lower(c);
  std::string out;
  out.reserve(t.path_template.size() + t.root.size() + local.size() + domain.size());
  std::string_view rest = t.path_template;
  while (!rest.empty()) {
    std::string_view placeholder;
    for (std::string_view p : {std::string_view("{root}"), std::string_view("{domain}"), std::string_view("{local}")}) {
      if (rest.substr(0, p.size()) == p) placeholder = p;
    }
    if (placeholder == "{root}") out += t.root;
    else if (placeholder == "{domain}") append_escaped(out, lowered);
    else if (placeholder == "{local}") append_escaped(out, local);
    else out += rest.front();
    rest.remove_prefix(placeholder.empty() ? 1 : placeholder.size());
  }
  return out;
}

attempt_result deliver_to_maildirs(const maildir_target& t, const maildir_message& m) {
  attempt_result result;
  result.remote_mta = "maildir:" + t.root;
  result.recipients.reserve(m.recipients.size());
  const std::string_view eol = line_end_of(m.body);
  for (const auto& [index, address] : m.recipients) {
    smtp::reply r = deliver_one(t, m, index, address, eol);
    recipient_outcome outcome = outcome_of(r);
    result.recipients.push_back({index, outcome, std::move(r)});
  }
  return result;
}

}  // namespace sluice::delivery
