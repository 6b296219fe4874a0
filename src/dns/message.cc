// message.cc: a bounds-checked walk over a DNS response's sections (RFC 1035 section 4).
// Untrusted input: the raw DNS response; nothing is trusted, offsets never leave the buffer.
#include "dns/message.h"

#include <algorithm>

namespace sluice::dns {

namespace {

constexpr uint16_t type_soa = 6;
constexpr size_t header_size = 12;

class walker {
 public:
  explicit walker(std::span<const uint8_t> m) : m_(m) {}

  bool u16(size_t at, uint16_t& out) const {
    if (at + 2 > m_.size()) return false;
    out = static_cast<uint16_t>(m_[at] << 8 | m_[at + 1]);
    return true;
  }
  bool u32(size_t at, uint32_t& out) const {
    uint16_t hi = 0, lo = 0;
    if (!u16(at, hi) || !u16(at + 2, lo)) return false;
    out = static_cast<uint32_t>(hi) << 16 | lo;
    return true;
  }
  // Steps over a possibly compressed name at pos_. Pointers are not followed: the name's
  // length in this record ends at the first pointer.
  bool skip_name() {
    for (int labels = 0; labels < 128; ++labels) {
      if (pos_ >= m_.size()) return false;
      uint8_t len = m_[pos_];
      if ((len & 0xC0) == 0xC0) {
        if (pos_ + 2 > m_.size()) return false;
        pos_ += 2;
        return true;
      }
      if ((len & 0xC0) != 0) return false;  // the 0x40/0x80 label types are obsolete
      pos_ += 1 + static_cast<size_t>(len);
      if (len == 0) return true;
    }
    return false;
  }
  bool skip_question() { return skip_name() && advance(4); }
  // Reads a record's fixed part; leaves pos_ at the next record and rdata_at at its data.
  bool record(uint16_t& type, uint32_t& ttl, size_t& rdata_at, uint16_t& rdlen) {
    if (!skip_name() || !u16(pos_, type) || !u32(pos_ + 4, ttl) || !u16(pos_ + 8, rdlen)) return false;
    rdata_at = pos_ + 10;
    if (rdata_at + rdlen > m_.size()) return false;
    pos_ = rdata_at + rdlen;
    return true;
  }
  bool advance(size_t n) {
    if (pos_ + n > m_.size()) return false;
    pos_ += n;
    return true;
  }
  size_t pos() const { return pos_; }
  void seek(size_t at) { pos_ = at; }

 private:
  std::span<const uint8_t> m_;
  size_t pos_ = header_size;
};

// RFC 2181 section 8: a TTL with the top bit set is treated as zero.
uint32_t clamp_ttl(uint32_t ttl) { return (ttl & 0x80000000u) != 0 ? 0 : ttl; }

struct counts {
  uint16_t qd = 0, an = 0, ns = 0;
};

bool read_counts(const walker& w, counts& c) { return w.u16(4, c.qd) && w.u16(6, c.an) && w.u16(8, c.ns); }

bool skip_questions(walker& w, uint16_t n) {
  for (uint16_t i = 0; i < n; ++i) {
    if (!w.skip_question()) return false;
  }
  return true;
}

}  // namespace

std::optional<uint32_t> answer_ttl(std::span<const uint8_t> message) {
  walker w(message);
  counts c;
  if (!read_counts(w, c) || !skip_questions(w, c.qd)) return std::nullopt;
  std::optional<uint32_t> best;
  for (uint16_t i = 0; i < c.an; ++i) {
    uint16_t type = 0, rdlen = 0;
    uint32_t ttl = 0;
    size_t rdata = 0;
    if (!w.record(type, ttl, rdata, rdlen)) return std::nullopt;
    ttl = clamp_ttl(ttl);
    best = best ? std::min(*best, ttl) : ttl;
  }
  return best;
}

std::optional<uint32_t> negative_ttl(std::span<const uint8_t> message) {
  walker w(message);
  counts c;
  if (!read_counts(w, c) || !skip_questions(w, c.qd)) return std::nullopt;
  uint16_t type = 0, rdlen = 0;
  uint32_t ttl = 0;
  size_t rdata = 0;
  for (uint16_t i = 0; i < c.an; ++i) {
    if (!w.record(type, ttl, rdata, rdlen)) return std::nullopt;
  }
  for (uint16_t i = 0; i < c.ns; ++i) {
    if (!w.record(type, ttl, rdata, rdlen)) return std::nullopt;
    if (type != type_soa) continue;
    // SOA rdata: MNAME, RNAME, then SERIAL REFRESH RETRY EXPIRE MINIMUM (32 bits each).
    size_t next = w.pos();
    w.seek(rdata);
    uint32_t minimum = 0;
    bool ok = w.skip_name() && w.skip_name() && w.pos() + 20 <= rdata + rdlen && w.u32(w.pos() + 16, minimum);
    w.seek(next);
    if (ok) return std::min(clamp_ttl(ttl), clamp_ttl(minimum));
  }
  return std::nullopt;
}

}  // namespace sluice::dns
