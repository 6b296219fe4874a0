// registry.cc: series lookup and publication, histogram buckets, collection.
// Untrusted input: label values (stored and compared as bytes; escaping is exposition's job).
#include "metrics/registry.h"

#include <algorithm>
#include <cmath>

namespace sluice::metrics {

std::string_view type_name(metric_type t) {
  switch (t) {
    case metric_type::counter: return "counter";
    case metric_type::gauge: return "gauge";
    case metric_type::histogram: return "histogram";
  }
  return "untyped";
}

std::vector<double> exponential_buckets(double start, double factor, size_t n) {
  std::vector<double> b;
  b.reserve(n);
  for (double v = start; b.size() < n; v *= factor) b.push_back(v);
  return b;
}

histogram::histogram(const std::vector<double>& bounds)
    : bounds_(bounds), counts_(std::make_unique<std::atomic<uint64_t>[]>(bounds.size() + 1)) {}

void histogram::observe(double v) {
  // The first bound at or above v: Prometheus buckets are "less than or equal".
  const size_t i = static_cast<size_t>(std::lower_bound(bounds_.begin(), bounds_.end(), v) - bounds_.begin());
  counts_[i].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(v, std::memory_order_relaxed);
}

void histogram::read(sample& out) const {
  out.buckets.clear();
  uint64_t running = 0;
  for (size_t i = 0; i < bounds_.size(); ++i) {
    running += counts_[i].load(std::memory_order_relaxed);
    out.buckets.emplace_back(bounds_[i], running);
  }
  running += counts_[bounds_.size()].load(std::memory_order_relaxed);
  out.count = running;
  out.sum = sum_.load(std::memory_order_relaxed);
}

template <class Metric>
family<Metric>::family(std::string name, std::string help, std::vector<std::string> labels, size_t max_series,
                       size_t overflow_label, std::vector<double> bounds)
    : name_(std::move(name)),
      help_(std::move(help)),
      labels_(std::move(labels)),
      max_series_(std::clamp<size_t>(max_series, 1, (capacity - 1) / 2)),
      overflow_label_(labels_.empty() ? 0 : std::min(overflow_label, labels_.size() - 1)),
      bounds_(std::move(bounds)) {
  // A family without labels has its one series from the start, so a scrape shows 0 rather
  // than nothing before the first event.
  if (labels_.empty()) add("", {});
}

template <class Metric>
Metric* family<Metric>::find(std::string_view key) const {
  const size_t n = count_.load(std::memory_order_acquire);
  for (size_t i = 0; i < n; ++i) {
    series* s = published_[i].load(std::memory_order_acquire);
    if (s->key == key) return &s->metric;
  }
  return nullptr;
}

template <class Metric>
Metric& family<Metric>::with(const std::string_view* values, size_t n) {
  std::string key;
  std::vector<std::string> vals(labels_.size());
  for (size_t i = 0; i < labels_.size(); ++i) {
    if (i < n) vals[i] = values[i];
    if (i) key.push_back('\0');
    key += vals[i];
  }
  if (Metric* m = find(key)) return *m;
  return add(std::move(key), std::move(vals));
}

template <class Metric>
Metric& family<Metric>::add(std::string key, std::vector<std::string> values) {
  std::lock_guard lock(add_mu_);
  if (Metric* m = find(key)) return *m;  // another thread added it meanwhile
  const size_t n = count_.load(std::memory_order_relaxed);
  auto rekey = [&](bool all) {
    key.clear();
    for (size_t i = 0; i < values.size(); ++i) {
      if (all || i == overflow_label_) values[i] = "other";
      if (i) key.push_back('\0');
      key += values[i];
    }
  };
  if (!labels_.empty() && n >= max_series_) {
    rekey(false);
    if (Metric* m = find(key)) return *m;
    if (n >= 2 * max_series_) {
      rekey(true);
      if (Metric* m = find(key)) return *m;
    }
  }
  if constexpr (std::is_same_v<Metric, histogram>)
    owned_.push_back(std::make_unique<series>(std::move(key), std::move(values), bounds_));
  else
    owned_.push_back(std::make_unique<series>(std::move(key), std::move(values)));
  published_[n].store(owned_.back().get(), std::memory_order_release);
  count_.store(n + 1, std::memory_order_release);
  return owned_.back()->metric;
}

template <class Metric>
void family<Metric>::collect(family_snapshot& out) const {
  out.name = name_;
  out.help = help_;
  if constexpr (std::is_same_v<Metric, counter>) out.type = metric_type::counter;
  else if constexpr (std::is_same_v<Metric, gauge>) out.type = metric_type::gauge;
  else out.type = metric_type::histogram;
  const size_t n = count_.load(std::memory_order_acquire);
  out.samples.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    const series* s = published_[i].load(std::memory_order_acquire);
    sample smp;
    for (size_t l = 0; l < labels_.size(); ++l) smp.labels.emplace_back(labels_[l], s->values[l]);
    if constexpr (std::is_same_v<Metric, histogram>) s->metric.read(smp);
    else smp.value = static_cast<double>(s->metric.value());
    out.samples.push_back(std::move(smp));
  }
}

template class family<counter>;
template class family<gauge>;
template class family<histogram>;

namespace {

size_t label_index(const std::vector<std::string>& labels, std::string_view name) {
  if (name.empty() || labels.empty()) return labels.empty() ? 0 : labels.size() - 1;
  auto it = std::find(labels.begin(), labels.end(), name);
  return it == labels.end() ? labels.size() - 1 : static_cast<size_t>(it - labels.begin());
}

}  // namespace

template <class Family>
Family& registry::add_family(std::vector<std::unique_ptr<Family>>& to, metric_type kind, std::string name, std::string help,
                             std::vector<std::string> labels, size_t max_series, std::string_view overflow_label,
                             std::vector<double> bounds) {
  std::lock_guard lock(mu_);
  const size_t o = label_index(labels, overflow_label);
  to.push_back(std::make_unique<Family>(std::move(name), std::move(help), std::move(labels), max_series, o, std::move(bounds)));
  order_.emplace_back(kind, to.size() - 1);
  return *to.back();
}

counter_family& registry::add_counter(std::string name, std::string help, std::vector<std::string> labels,
                                      size_t max_series, std::string_view overflow_label) {
  return add_family(counters_, metric_type::counter, std::move(name), std::move(help), std::move(labels), max_series,
                    overflow_label, {});
}

gauge_family& registry::add_gauge(std::string name, std::string help, std::vector<std::string> labels,
                                  size_t max_series, std::string_view overflow_label) {
  return add_family(gauges_, metric_type::gauge, std::move(name), std::move(help), std::move(labels), max_series,
                    overflow_label, {});
}

histogram_family& registry::add_histogram(std::string name, std::string help, std::vector<double> bounds,
                                          std::vector<std::string> labels, size_t max_series) {
  std::sort(bounds.begin(), bounds.end());
  bounds.erase(std::unique(bounds.begin(), bounds.end()), bounds.end());
  std::erase_if(bounds, [](double b) { return !std::isfinite(b); });
  return add_family(histograms_, metric_type::histogram, std::move(name), std::move(help), std::move(labels), max_series,
                    "", std::move(bounds));
}

registry::collector_handle& registry::collector_handle::operator=(collector_handle&& o) noexcept {
  if (this != &o) {
    reset();
    r_ = std::exchange(o.r_, nullptr);
    id_ = o.id_;
  }
  return *this;
}

void registry::collector_handle::reset() {
  if (r_) r_->remove_collector(id_);
  r_ = nullptr;
}

registry::collector_handle registry::add_collector(collector fn) {
  std::lock_guard lock(mu_);
  const uint64_t id = next_collector_++;
  collectors_.emplace_back(id, std::move(fn));
  return {this, id};
}

void registry::remove_collector(uint64_t id) {
  std::lock_guard lock(mu_);
  std::erase_if(collectors_, [id](const auto& c) { return c.first == id; });
}

std::vector<family_snapshot> registry::collect() const {
  std::vector<family_snapshot> out;
  // Collectors run under the mutex so that remove_collector() (a handle going away)
  // waits for a collection that is still reading what it samples.
  std::lock_guard lock(mu_);
  out.reserve(order_.size());
  for (auto [kind, i] : order_) {
    family_snapshot f;
    if (kind == metric_type::counter) counters_[i]->collect(f);
    else if (kind == metric_type::gauge) gauges_[i]->collect(f);
    else histograms_[i]->collect(f);
    out.push_back(std::move(f));
  }
  for (const auto& [id, fn] : collectors_) fn(out);
  return out;
}

}  // namespace sluice::metrics
