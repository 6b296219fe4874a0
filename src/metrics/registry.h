// registry.h: counters, gauges and histograms with bounded label sets, updated lock-free from any thread.
// Untrusted input: label values (connector names from the config, remote domains and MX names), kept as data.
#pragma once
#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sluice::metrics {

enum class metric_type : uint8_t { counter, gauge, histogram };
std::string_view type_name(metric_type t);  // "counter", "gauge", "histogram"

// One series as it was when collected: what exposition renders (text or JSON).
struct sample {
  std::vector<std::pair<std::string, std::string>> labels;  // in the family's label order
  double value = 0;                                          // counter, gauge
  // Histograms only: cumulative counts per upper bound (ascending, +Inf not listed: it is
  // `count`), the sum of every observation and how many there were.
  std::vector<std::pair<double, uint64_t>> buckets;
  double sum = 0;
  uint64_t count = 0;
};

struct family_snapshot {
  std::string name;
  std::string help;
  metric_type type = metric_type::counter;
  std::vector<sample> samples;
};

// Why cache lines matter here: counters of different series are bumped by different
// worker threads; without the padding two of them in one line would bounce it between cores.
class alignas(64) counter {
 public:
  void inc(uint64_t n = 1) { value_.fetch_add(n, std::memory_order_relaxed); }
  uint64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> value_{0};
};

class alignas(64) gauge {
 public:
  void set(double v) { value_.store(v, std::memory_order_relaxed); }
  void add(double d) { value_.fetch_add(d, std::memory_order_relaxed); }
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

// Counts per bucket are kept non-cumulative and summed when collected, so the +Inf
// bucket and _count are the same number by construction even while threads observe.
class histogram {
 public:
  explicit histogram(const std::vector<double>& bounds);
  void observe(double v);
  // Cumulative, as exposition wants them.
  void read(sample& out) const;

 private:
  const std::vector<double>& bounds_;  // the family's, which outlives this
  std::unique_ptr<std::atomic<uint64_t>[]> counts_;  // bounds_.size() + 1 (the last is +Inf)
  std::atomic<double> sum_{0};
};

// A metric name with its label names and at most `max_series` label value sets. Lookups
// take no lock: series are published in a fixed array that readers scan (the mutex is
// taken only to add one). Callers on hot paths keep the reference they get back.
//
// Bounded label sets: once `max_series` series exist, a new value set has its overflow
// label (the site, say) replaced by "other", so per-connector totals stay right while the
// number of destinations a remote party can make us track stays fixed; past twice the
// limit every label becomes "other".
template <class Metric>
class family {
 public:
  static constexpr size_t capacity = 256;  // the hard cap on series (2 * max_series + 1 at most)

  family(std::string name, std::string help, std::vector<std::string> labels, size_t max_series,
         size_t overflow_label, std::vector<double> bounds = {});
  family(const family&) = delete;
  family& operator=(const family&) = delete;

  // The series for these label values (as many as the family has labels).
  Metric& with(std::initializer_list<std::string_view> values) { return with(values.begin(), values.size()); }
  Metric& with(const std::string_view* values, size_t n);
  Metric& get() { return with(nullptr, 0); }  // a family without labels

  const std::string& name() const { return name_; }
  size_t size() const { return count_.load(std::memory_order_acquire); }
  void collect(family_snapshot& out) const;

 private:
  struct series {
    std::string key;  // label values joined by '\0'
    std::vector<std::string> values;
    Metric metric;
    template <class... A>
    series(std::string k, std::vector<std::string> v, A&&... a)
        : key(std::move(k)), values(std::move(v)), metric(std::forward<A>(a)...) {}
  };
  Metric* find(std::string_view key) const;
  Metric& add(std::string key, std::vector<std::string> values);

  std::string name_, help_;
  std::vector<std::string> labels_;
  size_t max_series_, overflow_label_;
  std::vector<double> bounds_;  // histograms
  std::array<std::atomic<series*>, capacity> published_{};
  std::atomic<size_t> count_{0};
  std::mutex add_mu_;
  std::vector<std::unique_ptr<series>> owned_;  // under add_mu_
};

using counter_family = family<counter>;
using gauge_family = family<gauge>;
using histogram_family = family<histogram>;

// Families are created once (at start) and live as long as the registry. Collectors are
// functions run at collection time for numbers sampled from elsewhere (store, /proc).
class registry {
 public:
  static constexpr size_t default_max_series = 50;

  registry() = default;
  registry(const registry&) = delete;
  registry& operator=(const registry&) = delete;

  // `overflow_label` names the label that becomes "other" past max_series ("" = the last).
  counter_family& add_counter(std::string name, std::string help, std::vector<std::string> labels = {},
                              size_t max_series = default_max_series, std::string_view overflow_label = "");
  gauge_family& add_gauge(std::string name, std::string help, std::vector<std::string> labels = {},
                          size_t max_series = default_max_series, std::string_view overflow_label = "");
  // `bounds`: ascending upper bounds, +Inf implied.
  histogram_family& add_histogram(std::string name, std::string help, std::vector<double> bounds,
                                  std::vector<std::string> labels = {}, size_t max_series = default_max_series);

  // Any thread. `fn` appends families; it runs on the thread that collects, so it must be
  // thread-safe. The handle removes it again (before what it reads goes away).
  using collector = std::function<void(std::vector<family_snapshot>&)>;
  class collector_handle {
   public:
    collector_handle() = default;
    collector_handle(registry* r, uint64_t id) : r_(r), id_(id) {}
    collector_handle(collector_handle&& o) noexcept : r_(std::exchange(o.r_, nullptr)), id_(o.id_) {}
    collector_handle& operator=(collector_handle&& o) noexcept;
    ~collector_handle() { reset(); }
    void reset();

   private:
    registry* r_ = nullptr;
    uint64_t id_ = 0;
  };
  [[nodiscard]] collector_handle add_collector(collector fn);

  // Every family in creation order, then what the collectors add. Any thread.
  std::vector<family_snapshot> collect() const;

 private:
  void remove_collector(uint64_t id);
  template <class Family>
  Family& add_family(std::vector<std::unique_ptr<Family>>& to, metric_type kind, std::string name, std::string help,
                     std::vector<std::string> labels, size_t max_series, std::string_view overflow_label,
                     std::vector<double> bounds);
  std::vector<std::unique_ptr<counter_family>> counters_;
  std::vector<std::unique_ptr<gauge_family>> gauges_;
  std::vector<std::unique_ptr<histogram_family>> histograms_;
  // Creation order across the three kinds: (kind, index).
  std::vector<std::pair<metric_type, size_t>> order_;
  mutable std::mutex mu_;  // families are added at start; collectors may come and go
  std::vector<std::pair<uint64_t, collector>> collectors_;
  uint64_t next_collector_ = 1;
};

// Exponential bucket bounds: start, start*factor, ... (n of them).
std::vector<double> exponential_buckets(double start, double factor, size_t n);

}  // namespace sluice::metrics
