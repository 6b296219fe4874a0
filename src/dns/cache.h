// cache.h: a bounded per-loop cache of DNS answers keyed by (name, type), expiring by TTL.
// Untrusted input: none directly (it stores answers the resolver has already parsed).
#pragma once
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "dns/mx.h"

namespace sluice::dns {

enum class answer_kind : uint8_t {
  records,   // the RRset exists (mx or addresses filled)
  nodata,    // the name exists, no records of this type
  nxdomain,  // the name does not exist
  failed,    // SERVFAIL, timeout, refused, malformed...: never cached
};

struct answer {
  answer_kind kind = answer_kind::failed;
  int error = 0;                        // the c-ares status behind failed/nodata/nxdomain, for logs
  std::vector<mx_record> mx;            // for MX queries
  std::vector<std::string> addresses;   // for A/AAAA queries, in answer order
  uint32_t ttl_s = 0;                   // remaining lifetime (0 when not cacheable)
};

// One per resolver, so one per loop: no locks. Times are milliseconds on any monotonic
// clock the caller keeps. At most `capacity` entries (0 disables caching); when full, the
// entry expiring soonest goes first (expired entries are the soonest of all).
class answer_cache {
 public:
  explicit answer_cache(size_t capacity) : capacity_(capacity) {}
  // A live entry with ttl_s set to what is left of it; an expired entry is dropped.
  std::optional<answer> find(const std::string& key, uint64_t now_ms);
  // Keeps `a` for a.ttl_s seconds; a zero TTL is not stored.
  void insert(const std::string& key, const answer& a, uint64_t now_ms);
  size_t size() const { return entries_.size(); }

 private:
  struct entry {
    answer value;
    uint64_t expires_ms = 0;
    std::multimap<uint64_t, std::string>::iterator by_expiry;
  };
  void erase(std::unordered_map<std::string, entry>::iterator it);

  size_t capacity_;
  std::unordered_map<std::string, entry> entries_;
  std::multimap<uint64_t, std::string> expiry_;  // expiry -> key, soonest first
};

}  // namespace sluice::dns
