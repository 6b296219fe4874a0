// bench_dir.h: where a store benchmark puts its LMDB files, and a refusal to time fsync on tmpfs.
#pragma once
#include <stdlib.h>
#include <sys/vfs.h>

#include <cstdio>
#include <string>

namespace sluice::bench {

// $SLUICE_BENCH_DIR, else /tmp, announced once on stderr. The figures are meant as
// fsync'd commits, and on tmpfs an fsync is free: such a directory is refused (exit 2)
// unless SLUICE_BENCH_ALLOW_TMPFS=1 says the figures are wanted anyway.
inline const std::string& bench_base_dir(const char* bench_name) {
  static const std::string dir = [&] {
    const char* chosen = getenv("SLUICE_BENCH_DIR");
    std::string d = chosen != nullptr && *chosen != '\0' ? chosen : "/tmp";
    std::fprintf(stderr, "%s: store files under %s (%s; set SLUICE_BENCH_DIR=<dir> to choose)\n", bench_name,
                 d.c_str(), chosen != nullptr && *chosen != '\0' ? "from SLUICE_BENCH_DIR" : "default");
    constexpr long tmpfs_magic = 0x01021994;  // TMPFS_MAGIC, linux/magic.h
    struct statfs fs {};
    if (statfs(d.c_str(), &fs) == 0 && static_cast<long>(fs.f_type) == tmpfs_magic) {
      const char* allow = getenv("SLUICE_BENCH_ALLOW_TMPFS");
      if (allow == nullptr || std::string(allow) != "1") {
        std::fprintf(stderr,
                     "%s: %s is tmpfs, where fsync costs nothing: these would not be fsync'd figures.\n"
                     "%s: set SLUICE_BENCH_DIR to a directory on the disk the daemon's queue_dir uses\n"
                     "%s: (or SLUICE_BENCH_ALLOW_TMPFS=1 to measure tmpfs anyway).\n",
                     bench_name, d.c_str(), bench_name, bench_name);
        std::exit(2);
      }
      std::fprintf(stderr, "%s: WARNING: %s is tmpfs: the figures are NOT fsync'd figures\n", bench_name, d.c_str());
    }
    return d;
  }();
  return dir;
}

}  // namespace sluice::bench
