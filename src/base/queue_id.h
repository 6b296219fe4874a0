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

// The low byte of an id names its issuer. Receive loops use their worker index; other
// sources of messages on a loop (the pickup directory, later the DSN generator) have
// bytes of their own, so two generators on one loop never issue the same id in the
// same microsecond.
namespace issuer {
inline constexpr unsigned max_loops = 128;  // worker indices 0..127
inline constexpr unsigned pickup = 128;
}  // namespace issuer

// One generator per issuer, used by one thread only, so it needs no atomics. Ids are
// strictly increasing per generator and above the floor in force when it was made.
class queue_id_generator {
 public:
  explicit queue_id_generator(unsigned issuer);
  queue_id next();

  // Once at start, before generators are made (the daemon: after opening the store,
  // before the loops start): every id issued from then on is above `highest`, the
  // highest id the store has ever committed, even if the clock now reads earlier than
  // when that id was issued (a clock stepped back across a restart).
  static void set_floor(queue_id highest);

 private:
  unsigned issuer_;
  uint64_t last_micros_ = 0;
};

}  // namespace sluice::base
