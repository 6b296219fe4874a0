// fuzz_util.h: helpers shared by the libFuzzer drivers (input splitting, decision bits).
// Untrusted input: the fuzzer's byte string, read only through input_stream.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

namespace sluice::fuzz {

// Drivers check invariants with this rather than assert(): it stays active under -DNDEBUG
// and tells libFuzzer about the failure through abort().
#define FUZZ_CHECK(cond)                                                          \
  do {                                                                            \
    if (!(cond)) {                                                                \
      std::fprintf(stderr, "%s:%d: fuzz invariant failed: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                               \
    }                                                                             \
  } while (0)

// Reads the fuzzer input as a sequence of decisions and byte chunks. The first bytes
// are decision bits so that mutations of the payload do not reshuffle the choices.
class input_stream {
 public:
  input_stream(const uint8_t* data, size_t size) : p_(reinterpret_cast<const char*>(data)), n_(size) {}
  bool empty() const { return pos_ >= n_; }
  size_t remaining() const { return n_ - pos_; }
  uint8_t byte() { return pos_ < n_ ? static_cast<uint8_t>(p_[pos_++]) : 0; }
  // The next len bytes (fewer at the end). Drivers take len from the decision bits, so
  // the payload stays a plain transcript that seeds can be written as.
  std::string_view chunk(size_t len) {
    if (len > remaining()) len = remaining();
    std::string_view s(p_ + pos_, len);
    pos_ += len;
    return s;
  }
  std::string_view rest() {
    std::string_view s(p_ + pos_, n_ - pos_);
    pos_ = n_;
    return s;
  }

 private:
  const char* p_;
  size_t n_;
  size_t pos_ = 0;
};

// A deterministic bit source from a fixed seed (decisions not worth input bytes).
class bits {
 public:
  explicit bits(uint64_t seed) : s_(seed | 1) {}
  bool next() {
    s_ ^= s_ << 13;
    s_ ^= s_ >> 7;
    s_ ^= s_ << 17;
    return s_ & 1;
  }
  unsigned pick(unsigned n) {
    s_ ^= s_ << 13;
    s_ ^= s_ >> 7;
    s_ ^= s_ << 17;
    return static_cast<unsigned>((s_ >> 11) % n);
  }

 private:
  uint64_t s_;
};

}  // namespace sluice::fuzz
