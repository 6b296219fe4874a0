// digest.cc: the body digest (four-lane multiply-rotate hash with a final avalanche).
#include "digest.h"

#include <bit>
#include <cstring>

namespace sluice::blaster {

namespace {
constexpr uint64_t k1 = 0x9E3779B185EBCA87ull;  // odd constants with well-mixed bits
constexpr uint64_t k2 = 0xC2B2AE3D27D4EB4Full;
constexpr uint64_t k3 = 0x165667B19E3779F9ull;
constexpr uint64_t k4 = 0x85EBCA77C2B2AE63ull;

uint64_t load64(const char* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}

uint64_t lane(uint64_t acc, uint64_t w) { return std::rotl(acc + w * k2, 31) * k1; }

uint64_t avalanche(uint64_t h) {
  h ^= h >> 33;
  h *= k2;
  h ^= h >> 29;
  h *= k3;
  h ^= h >> 32;
  return h;
}
}  // namespace

uint64_t digest64(std::string_view data) {
  const char* p = data.data();
  size_t n = data.size();
  uint64_t a = k1 + k2, b = k2, c = 0, d = 0 - k1;
  while (n >= 32) {
    a = lane(a, load64(p));
    b = lane(b, load64(p + 8));
    c = lane(c, load64(p + 16));
    d = lane(d, load64(p + 24));
    p += 32;
    n -= 32;
  }
  uint64_t h = std::rotl(a, 1) + std::rotl(b, 7) + std::rotl(c, 12) + std::rotl(d, 18);
  h += uint64_t(data.size()) * k4;
  while (n >= 8) {
    h ^= lane(0, load64(p));
    h = std::rotl(h, 27) * k1 + k4;
    p += 8;
    n -= 8;
  }
  while (n > 0) {
    h ^= uint64_t(uint8_t(*p)) * k1;
    h = std::rotl(h, 11) * k3;
    ++p;
    --n;
  }
  return avalanche(h);
}

std::string digest_hex(uint64_t d) {
  static constexpr char hex[] = "0123456789abcdef";
  std::string s(16, '0');
  for (int i = 15; i >= 0; --i, d >>= 4) s[size_t(i)] = hex[d & 15];
  return s;
}

}  // namespace sluice::blaster
