// index.h: internal to route: name normalisation, hashing and the immutable string-keyed hash index.
// Untrusted input: address bytes handed to parse_address (any length, any bytes).
#pragma once
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace sluice::route::detail {

inline constexpr uint64_t fnv_basis = 0xcbf29ce484222325ull;
inline constexpr uint64_t fnv_prime = 0x100000001b3ull;

inline char lower(char c) noexcept { return (c >= 'A' && c <= 'Z') ? char(c | 0x20) : c; }

// Hashes run right to left so that one pass over a domain yields the hash of
// every parent suffix ("b.example.com", "example.com", "com") on the way: each
// wildcard probe then costs no extra hashing.
inline uint64_t suffix_step(uint64_t h, char c) noexcept {
  return (h ^ static_cast<unsigned char>(c)) * fnv_prime;
}
inline uint64_t domain_hash(std::string_view s) noexcept {
  uint64_t h = fnv_basis;
  for (size_t i = s.size(); i-- > 0;) h = suffix_step(h, s[i]);
  return h;
}

// Local parts are hashed eight bytes at a time; the recipient key is this mixed
// with the domain hash, so the domain is never hashed twice.
inline uint64_t mix(uint64_t h) noexcept {
  h ^= h >> 32;
  h *= 0xd6e8feb86659fd93ull;
  h ^= h >> 32;
  return h;
}
inline uint64_t address_hash(std::string_view local, uint64_t dhash) noexcept {
  uint64_t h = dhash ^ (local.size() * 0x9e3779b97f4a7c15ull);
  size_t i = 0;
  for (; i + 8 <= local.size(); i += 8) {
    uint64_t w;
    std::memcpy(&w, local.data() + i, 8);
    h = mix(h ^ w) + 0x9e3779b97f4a7c15ull;
  }
  if (i < local.size()) {
    uint64_t w = 0;
    std::memcpy(&w, local.data() + i, local.size() - i);
    h = mix(h ^ w) + 0x9e3779b97f4a7c15ull;
  }
  return mix(h);
}

inline constexpr size_t max_domain = 255;
inline constexpr size_t max_address = 512;  // generous: RFC 5321 says 64 + 1 + 255
inline constexpr size_t max_labels = 128;

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
bool parse_address(std::string_view in, char (&buf)[max_address], parsed_address& out) noexcept;

// Normalises a configured domain or pattern: lower-case, one trailing dot dropped.
std::string normalise_name(std::string_view name);
// "" when the (normalised) domain is acceptable, else what is wrong with it.
std::string domain_problem(std::string_view domain);

// Open addressing, linear probing, load factor <= 1/2, built once and then only
// read. Keys live in one arena string; a slot keeps the full hash so a probe
// touches the arena only on a probable hit. The tag is part of the key (the
// recipient index uses it for the owning accepted domain).
template <class V>
class string_index {
 public:
  struct slot {
    uint64_t hash = 0;
    uint32_t off = 0;
    uint16_t len = 0;
    bool used = false;
    uint32_t tag = 0;
    V value{};
  };

  void reserve(size_t n) {
    size_t cap = 16;
    while (cap < n * 2) cap <<= 1;
    slots_.assign(cap, slot{});
    shift_ = 64 - __builtin_ctzll(cap);
    mask_ = cap - 1;
  }
  size_t size() const noexcept { return count_; }

  // Returns the value for key/tag, inserting a default one first if absent.
  // `prefix` bytes are stored in the arena just before the key (see table.cc).
  V& upsert(std::string_view key, uint64_t hash, uint32_t tag, std::string_view prefix = {}) {
    if ((count_ + 1) * 2 > slots_.size()) grow();
    size_t i = (hash * 0x9e3779b97f4a7c15ull) >> shift_;
    for (;; i = (i + 1) & mask_) {
      slot& s = slots_[i];
      if (!s.used) {
        arena_.append(prefix);
        s.off = static_cast<uint32_t>(arena_.size());
        arena_.append(key);
        s.len = static_cast<uint16_t>(key.size());
        s.hash = hash;
        s.tag = tag;
        s.used = true;
        ++count_;
        return s.value;
      }
      if (s.hash == hash && s.tag == tag && key_of(s) == key) return s.value;
    }
  }

  const slot* find(std::string_view key, uint64_t hash, uint32_t tag = 0) const noexcept {
    size_t i = (hash * 0x9e3779b97f4a7c15ull) >> shift_;
    for (;; i = (i + 1) & mask_) {
      const slot& s = slots_[i];
      if (!s.used) return nullptr;
      if (s.hash == hash && s.tag == tag && s.len == key.size() &&
          std::memcmp(arena_.data() + s.off, key.data(), key.size()) == 0)
        return &s;
    }
  }

  // Valid until the next upsert (the arena may move); stable once built.
  std::string_view key_of(const slot& s) const noexcept {
    return std::string_view(arena_.data() + s.off, s.len);
  }
  std::string_view arena_view(uint32_t off, uint32_t len) const noexcept {
    return std::string_view(arena_.data() + off, len);
  }

 private:
  void grow() {
    std::vector<slot> old = std::move(slots_);
    reserve(old.empty() ? 8 : old.size());
    count_ = 0;
    for (const slot& s : old) {
      if (!s.used) continue;
      size_t i = (s.hash * 0x9e3779b97f4a7c15ull) >> shift_;
      while (slots_[i].used) i = (i + 1) & mask_;
      slots_[i] = s;
      ++count_;
    }
  }

  std::vector<slot> slots_;
  std::string arena_;
  size_t count_ = 0;
  unsigned shift_ = 60;
  size_t mask_ = 0;
};

}  // namespace sluice::route::detail
