// limiter.cc: per-source AUTH failure limiting with an injectable clock.
// Untrusted input: remote addresses used as map keys (bounded in number).
#include "auth/limiter.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>

namespace sluice::auth {

failure_limiter::failure_limiter(settings s, clock_fn now) : settings_(s), now_(std::move(now)) {
  if (settings_.max_failures < 1) settings_.max_failures = 1;
  if (settings_.max_sources < 1) settings_.max_sources = 1;
}

void failure_limiter::drop_old(entry& e, clock::time_point now) const {
  auto horizon = now - settings_.window;
  auto keep = std::find_if(e.failures.begin(), e.failures.end(), [&](auto t) { return t > horizon; });
  e.failures.erase(e.failures.begin(), keep);
}

bool failure_limiter::blocked(std::string_view source) {
  std::lock_guard lock(mutex_);
  auto it = sources_.find(std::string(source));
  if (it == sources_.end()) return false;
  return now_() < it->second.blocked_until;
}

std::chrono::seconds failure_limiter::retry_after(std::string_view source) {
  std::lock_guard lock(mutex_);
  auto it = sources_.find(std::string(source));
  if (it == sources_.end()) return std::chrono::seconds(0);
  auto now = now_();
  if (now >= it->second.blocked_until) return std::chrono::seconds(0);
  // Rounded up so that "try again in N seconds" is never early.
  return std::chrono::ceil<std::chrono::seconds>(it->second.blocked_until - now);
}

void failure_limiter::record_failure(std::string_view source) {
  std::lock_guard lock(mutex_);
  auto now = now_();
  std::string key(source);
  auto it = sources_.find(key);
  if (it == sources_.end()) {
    if (sources_.size() >= settings_.max_sources) prune(now);
    it = sources_.emplace(std::move(key), entry{}).first;
  }
  entry& e = it->second;
  e.last_seen = now;
  if (now < e.blocked_until) return;  // already refused; failures while blocked do not extend it
  drop_old(e, now);
  e.failures.push_back(now);
  if (static_cast<int>(e.failures.size()) >= settings_.max_failures) {
    e.blocked_until = now + settings_.cooldown;
    e.failures.clear();
  }
}

void failure_limiter::record_success(std::string_view source) {
  std::lock_guard lock(mutex_);
  auto it = sources_.find(std::string(source));
  if (it != sources_.end() && now_() >= it->second.blocked_until) sources_.erase(it);
}

size_t failure_limiter::tracked() const {
  std::lock_guard lock(mutex_);
  return sources_.size();
}

void failure_limiter::set_max_failures(int max_failures) {
  std::lock_guard lock(mutex_);
  settings_.max_failures = max_failures < 1 ? 1 : max_failures;
}

std::shared_ptr<failure_limiter> limiter_registry::for_connector(const std::string& connector, int max_failures) {
  std::lock_guard lock(mutex_);
  auto& slot = by_name_[connector];
  if (!slot) {
    failure_limiter::settings s;
    s.max_failures = max_failures;
    slot = std::make_shared<failure_limiter>(s);
  } else {
    slot->set_max_failures(max_failures);
  }
  return slot;
}

void failure_limiter::prune(clock::time_point now) {
  for (auto it = sources_.begin(); it != sources_.end();) {
    drop_old(it->second, now);
    if (it->second.failures.empty() && now >= it->second.blocked_until)
      it = sources_.erase(it);
    else
      ++it;
  }
  if (sources_.size() < settings_.max_sources) return;
  // Still full of live entries: forget the quietest unblocked source (a blocked one is
  // exactly what the limiter exists to remember). If all are blocked, the oldest goes.
  auto victim = sources_.end();
  for (auto it = sources_.begin(); it != sources_.end(); ++it) {
    bool it_blocked = now < it->second.blocked_until;
    if (victim == sources_.end()) { victim = it; continue; }
    bool v_blocked = now < victim->second.blocked_until;
    if (v_blocked != it_blocked ? v_blocked : it->second.last_seen < victim->second.last_seen) victim = it;
  }
  if (victim != sources_.end()) sources_.erase(victim);
}

std::string failure_limiter::source_key(std::string_view address) {
  std::string text(address);
  if (text.size() > 2 && text.front() == '[' && text.back() == ']') text = text.substr(1, text.size() - 2);
  unsigned char v6[16];
  if (inet_pton(AF_INET6, text.c_str(), v6) != 1) return std::string(address);
  // IPv4-mapped addresses (::ffff:a.b.c.d) are one host each, as IPv4 is.
  static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (std::memcmp(v6, mapped, 12) == 0) {
    char buf[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, v6 + 12, buf, sizeof buf);
    return buf;
  }
  std::memset(v6 + 8, 0, 8);
  char buf[INET6_ADDRSTRLEN];
  inet_ntop(AF_INET6, v6, buf, sizeof buf);
  return std::string(buf) + "/64";
}

}  // namespace sluice::auth
