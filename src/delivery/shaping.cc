// shaping.cc: GCRA rate limits, the daemon's site registry and failure streaks for delivery destinations.
#include "delivery/shaping.h"

#include <algorithm>

#include "metrics/daemon.h"

namespace sluice::delivery {

void rate_limiter::configure(double rate, double burst) {
  if (rate <= 0) {
    interval_us_.store(0, std::memory_order_relaxed);
    tolerance_us_.store(0, std::memory_order_relaxed);
    return;
  }
  const int64_t interval = std::max<int64_t>(1, static_cast<int64_t>(1e6 / rate));
  interval_us_.store(interval, std::memory_order_relaxed);
  tolerance_us_.store(static_cast<int64_t>(std::max(0.0, burst - 1.0) * static_cast<double>(interval)),
                      std::memory_order_relaxed);
}

int64_t rate_limiter::wait_ms(int64_t now_ms) const {
  if (interval_us_.load(std::memory_order_relaxed) == 0) return 0;
  const int64_t early_us = tat_us_.load(std::memory_order_acquire) - tolerance_us_.load(std::memory_order_relaxed) -
                           now_ms * 1000;
  return early_us <= 0 ? 0 : (early_us + 999) / 1000;
}

bool rate_limiter::try_take(int64_t now_ms) {
  const int64_t interval = interval_us_.load(std::memory_order_relaxed);
  if (interval == 0) return true;
  const int64_t now_us = now_ms * 1000, tolerance = tolerance_us_.load(std::memory_order_relaxed);
  int64_t tat = tat_us_.load(std::memory_order_acquire);
  for (;;) {
    if (tat - tolerance > now_us) return false;
    if (tat_us_.compare_exchange_weak(tat, std::max(tat, now_us) + interval, std::memory_order_acq_rel)) return true;
  }
}

std::shared_ptr<shared_site> site_registry::find(const std::string& key) {
  std::lock_guard lock(mu_);
  auto& slot = sites_[key];
  if (!slot) slot = std::make_shared<shared_site>();
  return slot;
}

void site_registry::bind_hop(const std::string& hop_key, const std::string& site_key) {
  std::lock_guard lock(mu_);
  hop_sites_[hop_key] = site_key;
}

void site_registry::unbind_hop(const std::string& hop_key) {
  std::lock_guard lock(mu_);
  hop_sites_.erase(hop_key);
}

std::unordered_map<std::string, std::string> site_registry::hop_sites() {
  std::lock_guard lock(mu_);
  return hop_sites_;
}

bool failure_streak::failed(int64_t now_ms) {
  ++in_row_;
  if (threshold_ == 0 || in_row_ < threshold_ || suspended(now_ms)) return false;
  // The streak is not cleared: when the suspension ends, the first connection is a probe,
  // and its failure suspends the site again (a site that is still dead gets one connection
  // per period, not a threshold's worth). Only a success ends the streak.
  suspended_until_ms_ = now_ms + period_ms_;
  return true;
}

void count_outcome(std::string_view connector, std::string_view site, const outcome_counts& c) {
  // "<connector>|mx:a.example,b.example": the connector is a label of its own already.
  if (site.starts_with(connector) && site.size() > connector.size() && site[connector.size()] == '|')
    site.remove_prefix(connector.size() + 1);
  auto& m = metrics::daemon();
  const std::string_view labels[] = {connector, site};
  if (c.delivered) m.messages_delivered.with(labels, 2).inc();
  if (c.deferred) m.messages_deferred.with(labels, 2).inc();
  if (c.failed) m.messages_failed.with(labels, 2).inc();
  if (c.bounced) m.messages_bounced.with(labels, 2).inc();
  if (c.expired) m.messages_expired.with(labels, 2).inc();
}

}  // namespace sluice::delivery
