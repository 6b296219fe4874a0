// histogram_test.cc: percentiles of the log-linear histogram against known distributions, and merging.
#include <criterion/criterion.h>

#include <cmath>

#include "histogram.h"

using sluice::blaster::histogram;

Test(blaster_histogram, uniform_distribution_percentiles) {
  histogram h;
  for (uint64_t v = 1; v <= 100000; ++v) h.record(v);
  cr_assert_eq(h.count(), 100000u);
  cr_assert_eq(h.min(), 1u);
  cr_assert_eq(h.max(), 100000u);
  const double qs[] = {50, 90, 99, 99.9};
  for (double q : qs) {
    double expect = q * 1000.0;
    double got = double(h.percentile(q));
    cr_assert(got >= expect && got <= expect * (1.0 + 1.0 / 64), "p%g = %g, expected about %g", q, got, expect);
  }
  cr_assert_eq(h.percentile(100), 100000u);
  cr_assert(std::fabs(h.mean() - 50000.5) < 1e-6);
}

Test(blaster_histogram, small_values_are_exact) {
  histogram h;
  for (int i = 0; i < 90; ++i) h.record(3);
  for (int i = 0; i < 10; ++i) h.record(100);
  cr_assert_eq(h.percentile(50), 3u);
  cr_assert_eq(h.percentile(90), 3u);
  cr_assert_eq(h.percentile(91), 100u);
  cr_assert_eq(h.percentile(99.9), 100u);
}

Test(blaster_histogram, relative_error_bound_and_monotonic_buckets) {
  unsigned prev = 0;
  for (uint64_t v = 1; v < (1ull << 40); v = v + v / 7 + 1) {
    unsigned b = histogram::bucket_of(v);
    cr_assert_geq(b, prev);
    prev = b;
    uint64_t hi = histogram::bucket_high(b);
    cr_assert_geq(hi, v);
    cr_assert_leq(double(hi - v), double(v) / 64.0 + 1.0, "v=%llu hi=%llu", (unsigned long long)v,
                  (unsigned long long)hi);
  }
  cr_assert_lt(histogram::bucket_of(UINT64_MAX), histogram::buckets);
}

Test(blaster_histogram, merge_equals_recording_everything_in_one) {
  histogram a, b, all;
  for (uint64_t v = 0; v < 50000; ++v) {
    uint64_t x = (v * 2654435761u) % 1000000;
    (v % 3 ? a : b).record(x);
    all.record(x);
  }
  a.merge(b);
  cr_assert_eq(a.count(), all.count());
  cr_assert_eq(a.min(), all.min());
  cr_assert_eq(a.max(), all.max());
  const double qs[] = {1, 50, 90, 99, 99.9, 100};
  for (double q : qs) cr_assert_eq(a.percentile(q), all.percentile(q), "p%g", q);
  histogram empty;
  cr_assert_eq(empty.percentile(99), 0u);
}
