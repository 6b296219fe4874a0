// histogram.h: an HDR-style log-linear latency histogram over microseconds, mergeable across loops.
#pragma once
#include <array>
#include <cstdint>

namespace sluice::blaster {

// Values below 128 have their own bucket; above, each power of two is split into 64
// linear sub-buckets, so any recorded value is reported within 1/64 (better than two
// significant digits). Each loop owns one histogram and nothing is shared on the hot
// path; the loops' histograms are merged at the end.
class histogram {
 public:
  static constexpr unsigned linear = 128;
  static constexpr unsigned sub = 64;
  static constexpr unsigned buckets = linear + 57 * sub;

  void record(uint64_t value);
  void merge(const histogram& other);

  uint64_t count() const { return count_; }
  uint64_t min() const { return count_ ? min_ : 0; }
  uint64_t max() const { return max_; }
  double mean() const { return count_ ? double(sum_) / double(count_) : 0.0; }
  // The smallest recorded value v such that at least q percent of values are <= v,
  // reported as the highest value its bucket can hold (capped by the maximum).
  uint64_t percentile(double q) const;

  static unsigned bucket_of(uint64_t value);
  static uint64_t bucket_high(unsigned index);

 private:
  std::array<uint64_t, buckets> counts_{};
  uint64_t count_ = 0;
  uint64_t sum_ = 0;
  uint64_t min_ = UINT64_MAX;
  uint64_t max_ = 0;
};

}  // namespace sluice::blaster
