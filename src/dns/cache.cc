// cache.cc: TTL expiry and eviction for the per-loop DNS answer cache.
// Untrusted input: none.
#include "dns/cache.h"

#include "metrics/daemon.h"

namespace sluice::dns {

std::optional<answer> answer_cache::find(const std::string& key, uint64_t now_ms) {
  metrics::daemon().dns_lookups.get().inc();
  auto it = entries_.find(key);
  if (it == entries_.end()) return std::nullopt;
  if (it->second.expires_ms <= now_ms) {
    erase(it);
    return std::nullopt;
  }
  metrics::daemon().dns_cache_hits.get().inc();
  answer a = it->second.value;
  // Round up so an entry that is still live never reports a TTL of zero.
  a.ttl_s = static_cast<uint32_t>((it->second.expires_ms - now_ms + 999) / 1000);
  return a;
}

void answer_cache::insert(const std::string& key, const answer& a, uint64_t now_ms) {
  if (capacity_ == 0 || a.ttl_s == 0 || a.kind == answer_kind::failed) return;
  if (auto it = entries_.find(key); it != entries_.end()) erase(it);
  while (entries_.size() >= capacity_) erase(entries_.find(expiry_.begin()->second));
  uint64_t expires = now_ms + static_cast<uint64_t>(a.ttl_s) * 1000;
  auto by_expiry = expiry_.emplace(expires, key);
  entries_.emplace(key, entry{a, expires, by_expiry});
}

void answer_cache::erase(std::unordered_map<std::string, entry>::iterator it) {
  expiry_.erase(it->second.by_expiry);
  entries_.erase(it);
}

}  // namespace sluice::dns
