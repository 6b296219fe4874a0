// queue_id.h: message identifiers, time-ordered so that store key order is queue order.
#pragma once
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace sluice::base {

// 64 bits: microseconds since the epoch in the high 56 bits, the issuing worker in
// the low 8. Each worker issues strictly increasing values, so ids never collide
// across workers and sort by arrival time.
struct queue_id {
  uint64_t value = 0;

  std::string text() const;                       // 16 upper-case hex digits
  static std::optional<queue_id> parse(std::string_view text);
  std::array<unsigned char, 8> key() const;        // big-endian, for LMDB keys
  static queue_id from_key(const void* data);      // reads 8 big-endian bytes
  auto operator<=>(const queue_id&) const = default;
};

// One generator per worker thread; not shared, so it needs no atomics.
class queue_id_generator {
 public:
  explicit queue_id_generator(unsigned worker) : worker_(worker & 0xff) {}
  queue_id next();

 private:
  unsigned worker_;
  uint64_t last_micros_ = 0;
};

}  // namespace sluice::base
