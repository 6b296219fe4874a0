// durability_shim.cc: an LD_PRELOAD library that records, in the daemon, the LMDB open flags and how many fsyncs finished before each 250 reply.
// Untrusted input: none (it only observes the daemon's own calls).
// Loaded into sluiced by durability_test.cc. Each event is one line appended to the file
// named by SLUICE_SHIM_LOG, written with the raw system call so the shim never sees its
// own writes:
//   open flags=HEX          every mdb_env_open, with the flags sluiced passed
//   set_flags flags=HEX on=N every mdb_env_set_flags
//   txn flags=HEX           a write transaction begun with MDB_NOSYNC or MDB_NOMETASYNC
//   reply syncs=N           a socket write carrying "250 2.6.0", N = fsyncs finished before it
//   dirsync PATH            an fsync of a directory
// With SLUICE_SHIM_CLOCK_BACK_S=N, the wall clock (CLOCK_REALTIME) reads N seconds
// early: a clock stepped back, as across a restart after an NTP correction.
#include <dlfcn.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace {

std::atomic<unsigned long> syncs_finished{0};

void record(const char* line, size_t n) {
  static int fd = [] {
    const char* path = std::getenv("SLUICE_SHIM_LOG");
    return path ? static_cast<int>(::syscall(SYS_openat, AT_FDCWD, path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC,
                                             0644))
                : -1;
  }();
  if (fd >= 0) (void)::syscall(SYS_write, fd, line, n);
}

// Only sockets: the protocol log writes the same reply text to its file.
void note_if_reply(int fd, const void* data, size_t len) {
  static constexpr char marker[] = "250 2.6.0";
  if (data == nullptr || len < sizeof marker - 1) return;
  if (memmem(data, len, marker, sizeof marker - 1) == nullptr) return;
  struct stat st;
  if (::fstat(fd, &st) != 0 || !S_ISSOCK(st.st_mode)) return;
  char line[64];
  int n = std::snprintf(line, sizeof line, "reply syncs=%lu\n", syncs_finished.load());
  record(line, static_cast<size_t>(n));
}

template <typename Fn>
Fn next(const char* name) {
  return reinterpret_cast<Fn>(::dlsym(RTLD_NEXT, name));
}

}  // namespace

extern "C" {

int mdb_env_open(void* env, const char* path, unsigned int flags, unsigned int mode) {
  static auto real = next<int (*)(void*, const char*, unsigned int, unsigned int)>("mdb_env_open");
  char line[64];
  int n = std::snprintf(line, sizeof line, "open flags=%x\n", flags);
  record(line, static_cast<size_t>(n));
  return real(env, path, flags, mode);
}

int mdb_env_set_flags(void* env, unsigned int flags, int onoff) {
  static auto real = next<int (*)(void*, unsigned int, int)>("mdb_env_set_flags");
  char line[64];
  int n = std::snprintf(line, sizeof line, "set_flags flags=%x on=%d\n", flags, onoff);
  record(line, static_cast<size_t>(n));
  return real(env, flags, onoff);
}

int mdb_txn_begin(void* env, void* parent, unsigned int flags, void** txn) {
  static auto real = next<int (*)(void*, void*, unsigned int, void**)>("mdb_txn_begin");
  constexpr unsigned int no_sync = 0x10000, no_meta_sync = 0x40000;  // MDB_NOSYNC, MDB_NOMETASYNC
  if (flags & (no_sync | no_meta_sync)) {
    char line[64];
    int n = std::snprintf(line, sizeof line, "txn flags=%x\n", flags);
    record(line, static_cast<size_t>(n));
  }
  return real(env, parent, flags, txn);
}

int fdatasync(int fd) {
  static auto real = next<int (*)(int)>("fdatasync");
  int rc = real(fd);
  if (rc == 0) syncs_finished.fetch_add(1);
  return rc;
}

int fsync(int fd) {
  static auto real = next<int (*)(int)>("fsync");
  int rc = real(fd);
  if (rc == 0) syncs_finished.fetch_add(1);
  struct stat st;
  if (rc == 0 && ::fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
    char path[512];
    char proc[64];
    std::snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
    ssize_t n = ::readlink(proc, path, sizeof path - 1);
    if (n > 0) {
      char line[600];
      int len = std::snprintf(line, sizeof line, "dirsync %.*s\n", static_cast<int>(n), path);
      record(line, static_cast<size_t>(len));
    }
  }
  return rc;
}

int clock_gettime(clockid_t clock, struct timespec* ts) {
  static auto real = next<int (*)(clockid_t, struct timespec*)>("clock_gettime");
  static const long back = [] {
    const char* s = std::getenv("SLUICE_SHIM_CLOCK_BACK_S");
    return s ? std::atol(s) : 0L;
  }();
  int rc = real(clock, ts);
  if (rc == 0 && clock == CLOCK_REALTIME) ts->tv_sec -= back;
  return rc;
}

int msync(void* addr, size_t len, int flags) {
  static auto real = next<int (*)(void*, size_t, int)>("msync");
  int rc = real(addr, len, flags);
  if (rc == 0 && (flags & MS_SYNC)) syncs_finished.fetch_add(1);
  return rc;
}

ssize_t write(int fd, const void* buf, size_t n) {
  static auto real = next<ssize_t (*)(int, const void*, size_t)>("write");
  note_if_reply(fd, buf, n);
  return real(fd, buf, n);
}

ssize_t writev(int fd, const struct iovec* iov, int count) {
  static auto real = next<ssize_t (*)(int, const struct iovec*, int)>("writev");
  for (int i = 0; i < count; ++i) note_if_reply(fd, iov[i].iov_base, iov[i].iov_len);
  return real(fd, iov, count);
}

ssize_t send(int fd, const void* buf, size_t n, int flags) {
  static auto real = next<ssize_t (*)(int, const void*, size_t, int)>("send");
  note_if_reply(fd, buf, n);
  return real(fd, buf, n, flags);
}

ssize_t sendmsg(int fd, const struct msghdr* msg, int flags) {
  static auto real = next<ssize_t (*)(int, const struct msghdr*, int)>("sendmsg");
  for (size_t i = 0; msg != nullptr && i < msg->msg_iovlen; ++i)
    note_if_reply(fd, msg->msg_iov[i].iov_base, msg->msg_iov[i].iov_len);
  return real(fd, msg, flags);
}

}  // extern "C"
