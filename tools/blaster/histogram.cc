// histogram.cc: log-linear bucketing and percentile walk for blaster latencies.
#include "histogram.h"

#include <algorithm>
#include <bit>
#include <cmath>

namespace sluice::blaster {

unsigned histogram::bucket_of(uint64_t v) {
  if (v < linear) return unsigned(v);
  unsigned msb = 63u - unsigned(std::countl_zero(v));  // >= 7
  unsigned shift = msb - 6;                             // v >> shift lies in [64, 127]
  return linear + (shift - 1) * sub + unsigned((v >> shift) - sub);
}

uint64_t histogram::bucket_high(unsigned index) {
  if (index < linear) return index;
  unsigned shift = (index - linear) / sub + 1;
  uint64_t top = (index - linear) % sub + sub;
  if (shift >= 57) return UINT64_MAX;
  return ((top + 1) << shift) - 1;
}

void histogram::record(uint64_t v) {
  ++counts_[bucket_of(v)];
  ++count_;
  sum_ += v;
  min_ = std::min(min_, v);
  max_ = std::max(max_, v);
}

void histogram::merge(const histogram& o) {
  for (unsigned i = 0; i < buckets; ++i) counts_[i] += o.counts_[i];
  count_ += o.count_;
  sum_ += o.sum_;
  min_ = std::min(min_, o.min_);
  max_ = std::max(max_, o.max_);
}

uint64_t histogram::percentile(double q) const {
  if (count_ == 0) return 0;
  q = std::clamp(q, 0.0, 100.0);
  uint64_t target = uint64_t(std::ceil(q / 100.0 * double(count_)));
  if (target == 0) target = 1;
  uint64_t seen = 0;
  for (unsigned i = 0; i < buckets; ++i) {
    seen += counts_[i];
    if (seen >= target) return std::min(bucket_high(i), max_);
  }
  return max_;
}

}  // namespace sluice::blaster
