// index.h: internal to route: name normalisation, hashing and the immutable string-keyed hash index.
// Untrusted input: address bytes handed to parse_address (any length, any bytes).
#pragma once
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace sluice::route::detail {

inline constexpr uint64_t hash_seed = 0xcbf29ce484222325ull;

inline char lower(char c) noexcept { return (c >= 'A' && c <= 'Z') ? char(c | 0x20) : c; }

// Domains hash label by label from the right: H(label "." rest) = combine(H(rest),
// label_hash(label)). One pass over a domain therefore yields the hash of every
// parent suffix ("b.example.com", "example.com", "com") on the way, and each
// wildcard probe costs no extra hashing. Labels are read eight bytes at a time.
inline uint64_t mix(uint64_t h) noexcept {
  h ^= h >> 32;
  h *= 0xd6e8feb86659fd93ull;
  h ^= h >> 32;
  return h;
}
inline uint64_t chunk_hash(uint64_t h, const char* p, size_t n) noexcept {
  h ^= n * 0x9e3779b97f4a7c15ull;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    std::memcpy(&w, p + i, 8);
    h = mix(h ^ w) + 0x9e3779b97f4a7c15ull;
  }
  if (i < n) {
    uint64_t w = 0;
    std::memcpy(&w, p + i, n - i);
    h = mix(h ^ w) + 0x9e3779b97f4a7c15ull;
  }
  return h;
}
inline uint64_t suffix_combine(uint64_t parent, const char* label, size_t n) noexcept {
  return mix(chunk_hash(parent, label, n));
}
inline uint64_t domain_hash(std::string_view s) noexcept {
  uint64_t h = hash_seed;
  size_t end = s.size();
  for (size_t i = s.size(); i-- > 0;) {
    if (s[i] == '.') {
      h = suffix_combine(h, s.data() + i + 1, end - i - 1);
      end = i;
    }
  }
  return suffix_combine(h, s.data(), end);
}

// The recipient key hash: the local part mixed with the domain hash, so the
// domain is never hashed twice.
inline uint64_t address_hash(std::string_view local, uint64_t dhash) noexcept {
  return mix(chunk_hash(dhash, local.data(), local.size()));
}

// Lower-cases the ASCII letters of eight bytes at once; bytes >= 0x80 (UTF-8)
// are left alone. Per byte: b + 0x3f carries into bit 7 iff b >= 'A', b + 0x25
// iff b > 'Z'; heptets cannot carry into the next byte.
inline uint64_t lower8(uint64_t w) noexcept {
  const uint64_t heptets = w & 0x7f7f7f7f7f7f7f7full;
  const uint64_t ge_a = heptets + 0x3f3f3f3f3f3f3f3full;
  const uint64_t gt_z = heptets + 0x2525252525252525ull;
  const uint64_t upper = ge_a & ~gt_z & ~w & 0x8080808080808080ull;
  return w | (upper >> 2);
}
// Writes whole words: dst needs 7 bytes of slack past n. Reads only [src, src+n).
inline void lower_copy(char* dst, const char* src, size_t n) noexcept {
  size_t i = 0;
  uint64_t w;
  for (; i + 8 <= n; i += 8) {
    std::memcpy(&w, src + i, 8);
    w = lower8(w);
    std::memcpy(dst + i, &w, 8);
  }
  if (i < n) {
    w = 0;
    std::memcpy(&w, src + i, n - i);
    w = lower8(w);
    std::memcpy(dst + i, &w, 8);
  }
}

inline constexpr size_t max_domain = 255;
inline constexpr size_t max_address = 512;  // generous: RFC 5321 says 64 + 1 + 255
inline constexpr size_t max_labels = 128;
inline constexpr size_t buffer_size = max_address + 8;  // slack for lower_copy

// A recipient split and normalised into caller-provided storage (no allocation).
struct parsed_address {
  std::string_view raw_domain;   // in the caller's string, trailing dot removed
  std::string_view local;        // normalised, in buf
  std::string_view domain;       // normalised, in buf
  std::string_view address;      // normalised "local@domain", in buf
  uint64_t dhash = 0;            // domain_hash(domain)
  // Label starts, rightmost (TLD) first; suffix_hash[k] = domain_hash(domain.substr(label_start[k])).
  uint32_t labels = 0;
  uint16_t label_start[max_labels];
  uint64_t suffix_hash[max_labels];
};

// False for: no '@', empty local part or domain, empty label, over-long parts.
bool parse_address(std::string_view in, char (&buf)[buffer_size], parsed_address& out) noexcept;

// Normalises a configured domain or pattern: lower-case, one trailing dot dropped.
std::string normalise_name(std::string_view name);
// "" when the (normalised) domain is acceptable, else what is wrong with it.
std::string domain_problem(std::string_view domain);

// Open addressing with linear probing, built once and then only read. A byte
// array of control bytes (0 = empty, else 0x80 | 7 hash bits) is probed first:
// it is small enough to stay in L1/L2, so a miss (most wildcard probes) never
// touches a slot. Slots are one aligned block of Align bytes holding the value
// and the key's first H bytes, so a hit usually costs one cache miss; the full
// key also lives in an arena (for string_views and long keys). The tag is part
// of the key (the recipient index uses it for the owning accepted domain).
template <class V, size_t H, size_t Align>
class string_index {
 public:
  struct alignas(Align) slot {
    uint32_t tag = 0;
    uint32_t off = 0;
    uint16_t len = 0;
    char head[H];
    V value{};
  };
  static_assert(sizeof(slot) == Align, "slot must fill its cache-line share exactly");

  void reserve(size_t n) {
    // Load factor up to 0.8: linear probing runs get long, but they are runs of
    // control bytes (contiguous, cached), and fingerprints spare the slots.
    size_t cap = 16;
    while (cap * 4 < n * 5) cap <<= 1;
    ctrl_.assign(cap, 0);
    slots_.assign(cap, slot{});
    shift_ = 64 - static_cast<unsigned>(__builtin_ctzll(cap));
    mask_ = cap - 1;
    count_ = 0;
  }
  size_t size() const noexcept { return count_; }

  // Returns the value for key/tag, inserting a default one first if absent.
  // `prefix` bytes are stored in the arena just before the key (see table_impl.h).
  V& upsert(std::string_view key, uint64_t hash, uint32_t tag, std::string_view prefix = {}) {
    if (slot* s = lookup(key, hash, tag)) return s->value;
    if ((count_ + 1) * 5 > slots_.size() * 4) grow();
    size_t i = index(hash);
    while (ctrl_[i] != 0) i = (i + 1) & mask_;
    slot& s = slots_[i];
    ctrl_[i] = fingerprint(hash);
    arena_.append(prefix);
    s.off = static_cast<uint32_t>(arena_.size());
    arena_.append(key);
    s.len = static_cast<uint16_t>(key.size());
    std::memcpy(s.head, key.data(), key.size() < H ? key.size() : H);
    s.tag = tag;
    hashes_.push_back(hash);
    order_.push_back(static_cast<uint32_t>(i));
    ++count_;
    return s.value;
  }

  const slot* find(std::string_view key, uint64_t hash, uint32_t tag = 0) const noexcept {
    const uint8_t fp = fingerprint(hash);
    for (size_t i = index(hash);; i = (i + 1) & mask_) {
      const uint8_t c = ctrl_[i];
      if (c == 0) return nullptr;
      if (c == fp && equal(slots_[i], key, tag)) return &slots_[i];
    }
  }

  // Starts the likely cache misses of a later find() so that independent
  // lookups overlap instead of queueing behind each other.
  void prefetch(uint64_t hash) const noexcept {
    const size_t i = index(hash);
    __builtin_prefetch(&ctrl_[i]);
    __builtin_prefetch(&slots_[i]);
  }

  // Views into the arena: stable once the index is built.
  std::string_view key_of(const slot& s) const noexcept {
    return std::string_view(arena_.data() + s.off, s.len);
  }
  std::string_view arena_view(uint32_t off, uint32_t len) const noexcept {
    return std::string_view(arena_.data() + off, len);
  }

 private:
  size_t index(uint64_t hash) const noexcept { return (hash * 0x9e3779b97f4a7c15ull) >> shift_; }
  static uint8_t fingerprint(uint64_t hash) noexcept { return static_cast<uint8_t>(0x80 | (hash >> 57)); }

  bool equal(const slot& s, std::string_view key, uint32_t tag) const noexcept {
    if (s.tag != tag || s.len != key.size()) return false;
    if (key.size() <= H) return std::memcmp(s.head, key.data(), key.size()) == 0;
    return std::memcmp(s.head, key.data(), H) == 0 &&
           std::memcmp(arena_.data() + s.off + H, key.data() + H, key.size() - H) == 0;
  }

  slot* lookup(std::string_view key, uint64_t hash, uint32_t tag) noexcept {
    if (slots_.empty()) return nullptr;
    return const_cast<slot*>(find(key, hash, tag));
  }

  void grow() {
    std::vector<slot> old = std::move(slots_);
    std::vector<uint32_t> old_order = std::move(order_);
    std::vector<uint64_t> old_hashes = std::move(hashes_);
    reserve(old.empty() ? 8 : old.size());
    for (size_t k = 0; k < old_order.size(); ++k) {
      size_t i = index(old_hashes[k]);
      while (ctrl_[i] != 0) i = (i + 1) & mask_;
      ctrl_[i] = fingerprint(old_hashes[k]);
      slots_[i] = old[old_order[k]];
      order_.push_back(static_cast<uint32_t>(i));
      hashes_.push_back(old_hashes[k]);
      ++count_;
    }
  }

  std::vector<uint8_t> ctrl_;
  std::vector<slot> slots_;
  std::string arena_;
  std::vector<uint64_t> hashes_;  // build time only: rehashing on growth
  std::vector<uint32_t> order_;
  size_t count_ = 0;
  unsigned shift_ = 60;
  size_t mask_ = 0;
};

}  // namespace sluice::route::detail
