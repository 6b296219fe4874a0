// queue_id.cc: queue id generation, text form and big-endian keys.
#include "base/queue_id.h"

#include <atomic>
#include <chrono>

namespace sluice::base {

std::string queue_id::text() const {
  static const char digits[] = "0123456789ABCDEF";
  std::string out(16, '0');
  for (int i = 15, shift = 0; i >= 0; --i, shift += 4) out[i] = digits[(value >> shift) & 0xf];
  return out;
}

std::optional<queue_id> queue_id::parse(std::string_view text) {
  if (text.size() != 16) return std::nullopt;
  uint64_t v = 0;
  for (char c : text) {
    int d;
    if (c >= '0' && c <= '9') d = c - '0';
    else if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
    else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
    else return std::nullopt;
    v = (v << 4) | static_cast<uint64_t>(d);
  }
  return queue_id{v};
}

std::array<unsigned char, 8> queue_id::key() const {
  std::array<unsigned char, 8> k{};
  for (int i = 0; i < 8; ++i) k[i] = static_cast<unsigned char>(value >> (56 - 8 * i));
  return k;
}

queue_id queue_id::from_key(const void* data) {
  auto* p = static_cast<const unsigned char*>(data);
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | p[i];
  return queue_id{v};
}

namespace {
// Read by generators' constructors on the loop threads, written once before they start.
std::atomic<uint64_t> floor_micros{0};
}  // namespace

void queue_id_generator::set_floor(queue_id highest) { floor_micros.store(highest.value >> 8); }

queue_id_generator::queue_id_generator(unsigned issuer)
    : issuer_(issuer & 0xff), last_micros_(floor_micros.load()) {}

queue_id queue_id_generator::next() {
  using namespace std::chrono;
  auto now = static_cast<uint64_t>(
      duration_cast<microseconds>(system_clock::now().time_since_epoch()).count());
  // Strictly increasing even if the clock stalls or steps back.
  last_micros_ = now > last_micros_ ? now : last_micros_ + 1;
  return queue_id{(last_micros_ << 8) | issuer_};
}

}  // namespace sluice::base
