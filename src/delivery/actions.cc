// actions.cc: the delivery engine's side of the administrator's actions: retry now, suspend/resume a hop, hold/release and remove a message.
// Untrusted input: none (hop keys and ids come checked from the admin commands, records from the store).
#include <cctype>
#include <climits>
#include <cstdio>
#include <set>
#include <utility>

#include "delivery/outbound.h"

namespace sluice::delivery {

namespace {

constexpr int64_t forever = INT64_MAX;

const engine::work& work_of(const engine::work& w) { return w; }
template <class K>
const engine::work& work_of(const std::pair<const K, engine::work>& e) {
  return e.second;
}

// Moves the work in `c` (a queue of work, or a map to work) that `pred` accepts to `out`.
template <class Container, class Pred>
void take_from(Container& c, Pred& pred, std::vector<engine::work>& out) {
  for (auto it = c.begin(); it != c.end();) {
    if (pred(work_of(*it))) {
      out.push_back(work_of(*it));
      it = c.erase(it);
    } else {
      ++it;
    }
  }
}

}  // namespace

// Borrowed by the store from control() until take_controlled() hands it back to poll().
struct engine::pending_control final : store::control_request {
  action_done done;
};

bool engine::suspended(const hop& h, int64_t now) const {
  auto it = suspended_.find(h.key);
  return it != suspended_.end() && it->second > now;
}

void engine::load_suspensions() {
  std::string error;
  const int64_t now = now_ms();
  const bool ok = store_.for_each_hop(
      [&](const store::hop_entry& e) {
        if (store::suspended_at(e.record, now))
          suspended_[e.record.key] = e.record.suspended_until_ms != 0 ? e.record.suspended_until_ms : forever;
        return true;
      },
      error);
  if (!ok) std::fprintf(stderr, "sluiced: delivery: reading suspended next hops: %s\n", error.c_str());
  if (auto rules = store_.bounce_rules(error)) {
    for (const auto& [domain, until] : *rules)
      if (until > now) bounces_[domain] = until;
  } else {
    std::fprintf(stderr, "sluiced: delivery: reading bounce rules: %s\n", error.c_str());
  }
}

template <class Pred>
uint64_t engine::wake_waiting(Pred pred) {
  std::vector<work> due;
  take_from(waiting_, pred, due);
  make_ready_all(due);
  return due.size();
}

void engine::make_ready_all(std::vector<work>& ws) {
  for (auto& w : ws)
    if (auto h = hops_.find(w.hop_id); h != hops_.end()) make_ready(*h->second, std::move(w));
}

uint64_t engine::retry_hop(std::string_view hop_key) {
  for (auto& [id, h] : hops_) {
    if (h->key != hop_key) continue;
    // The administrator's word that the destination is worth trying: as after a reload.
    if (h->bound) h->bound->streak = failure_streak{};
    const uint64_t hop_id = id;
    const uint64_t moved = wake_waiting([hop_id](const work& w) { return w.hop_id == hop_id; });
    if (h->bound && !h->bound->hops.empty()) pump(*h->bound);
    return moved;
  }
  return 0;
}

uint64_t engine::retry_message(base::queue_id id) {
  return wake_waiting([id](const work& w) { return w.id == id; });
}

void engine::park_hop(hop& h) {
  if (h.in_site && h.bound) std::erase(h.bound->hops, &h);
  h.in_site = false;
  auto& parked = parked_[h.id];
  for (auto& w : h.ready) parked.push_back(std::move(w));
  h.ready.clear();
}

void engine::unpark_hop(const std::string& key) {
  for (auto& [id, h] : hops_) {
    if (h->key != key) continue;
    auto it = parked_.find(id);
    if (it == parked_.end()) return;
    std::deque<work> parked = std::move(it->second);
    parked_.erase(it);
    for (auto& w : parked) make_ready(*h, std::move(w));
    return;
  }
}

void engine::tick_actions(int64_t now) {
  std::erase_if(failing_, [now](const auto& e) { return e.second.until_ms <= now; });
  // Removals whose attempts have outlasted removal_wait_ms go on without them.
  std::vector<std::function<void()>> overdue;
  for (auto& [id, r] : removing_) {
    if (r.waiting.empty() || r.wait_until_ms > now) continue;
    for (auto& fn : std::exchange(r.waiting, {})) overdue.push_back([fn, n = r.delivered] { fn(n, true); });
  }
  for (auto& fn : overdue) fn();  // they may end the removal: not while iterating removing_
  std::erase_if(bounces_, [now](const auto& e) { return e.second <= now; });
  std::vector<std::string> ended;
  for (const auto& [key, until] : suspended_)
    if (until <= now) ended.push_back(key);
  for (const auto& key : ended) {
    suspended_.erase(key);
    unpark_hop(key);
  }
}

uint64_t engine::unpark(base::queue_id id) {
  auto lo = held_.lower_bound({id.value, 0});
  auto hi = held_.upper_bound({id.value, UINT64_MAX});
  std::vector<work> back;
  for (auto it = lo; it != hi; ++it) back.push_back(it->second);
  held_.erase(lo, hi);
  make_ready_all(back);
  return back.size();
}

template <class Pred>
std::vector<engine::work> engine::take_if(Pred pred) {
  std::vector<work> out;
  take_from(waiting_, pred, out);
  for (auto& [hop_id, h] : hops_) {
    take_from(h->ready, pred, out);
    if (h->ready.empty() && h->in_site && h->bound) {
      std::erase(h->bound->hops, h.get());
      h->in_site = false;
    }
  }
  for (auto& [hop_id, q] : parked_) take_from(q, pred, out);
  take_from(held_, pred, out);
  return out;
}

std::vector<engine::work> engine::take_message(base::queue_id id) {
  return take_if([id](const work& w) { return w.id == id; });
}

uint64_t engine::drop_message(base::queue_id id) {
  removing_.erase(id.value);
  const std::vector<work> gone = take_message(id);
  for (const auto& w : gone) forget(w);
  return gone.size();
}

bool engine::attempting(uint64_t id) const {
  auto it = attempting_.lower_bound({id, 0});
  return it != attempting_.end() && it->first == id;
}

void engine::attempt_ended(const work& w, uint64_t delivered) {
  if (attempting_.erase({w.id.value, w.hop_id}) == 0) return;  // not an attempt: an admin's or a bounce's failure
  auto r = removing_.find(w.id.value);
  if (r == removing_.end()) return;
  r->second.delivered += delivered;
  if (attempting(w.id.value)) return;
  // The callbacks may end the removal (erase the entry) when they run on this loop.
  auto waiting = std::exchange(r->second.waiting, {});
  const uint64_t total = r->second.delivered;
  for (auto& fn : waiting) fn(total, false);
}

void engine::settle_removal(base::queue_id id, bool dsn, std::function<void(uint64_t, bool)> done) {
  auto [it, fresh] = removing_.try_emplace(id.value);
  removal& r = it->second;
  if (fresh) r.wait_until_ms = now_ms() + removal_wait_ms;
  r.dsn = r.dsn || dsn;
  if (!attempting(id.value)) return done(r.delivered, false);
  r.waiting.push_back(std::move(done));
}

void engine::end_removal(base::queue_id id) {
  removing_.erase(id.value);
  unpark(id);  // an item the administrator holds is parked again when it is opened
}

smtp::reply engine::removed_reply() { return {550, "5.0.0", "message removed by the administrator"}; }

void engine::remove_message(base::queue_id id, int64_t uid, uint64_t delivered, action_done done) {
  // Who is removed: the recipients still queued in its items, or, before it has been
  // categorized (no items yet, nothing delivered), all of them. Copied: the tracking line is
  // written once the removal has committed, and no read transaction waits for that.
  struct removed_recipients {
    std::string id, sender;
    std::vector<std::string> addresses;
  };
  auto who = std::make_shared<removed_recipients>();
  std::string error;
  if (auto view = store_.open_message(id, error)) {
    who->id = id.text();
    who->sender = view->envelope.mail_from;
    std::set<uint32_t> queued;
    if (auto items = store_.items_of(id, error))
      for (const auto& it : *items) queued.insert(it.item.recipients.begin(), it.item.recipients.end());
    const auto& all = view->envelope.recipients;
    if (queued.empty() && delivered == 0)
      for (uint32_t i = 0; i < all.size(); ++i) queued.insert(i);
    for (uint32_t i : queued)
      if (i < all.size()) who->addresses.push_back(all[i].address);
  }
  control(store::control_action::remove, id, "", 0, [this, who, uid, done = std::move(done)](const action_outcome& out) {
    if (out.found && out.error.empty() && !who->addresses.empty() && tracker_) {
      std::vector<std::string_view> addresses(who->addresses.begin(), who->addresses.end());
      const std::string detail = "removed by uid " + std::to_string(uid) + ", no DSN";
      log::tracking_record r;
      r.event = log::tracking_event::remove;
      r.queue_id = who->id;
      r.sender = who->sender;
      r.recipients = addresses;
      r.detail = detail;
      tracker_(r);
    }
    done(out);
  });
}

void engine::fail_recipients(const work& w, const store::message_view& view, const std::vector<uint32_t>& rcpts,
                             const smtp::reply& r, log::tracking_event ev, const std::string& detail) {
  track(ev, view, rcpts, hop_key_of(w.hop_id), detail);
  attempt_result result;
  for (uint32_t idx : rcpts) result.recipients.push_back({idx, recipient_outcome::failed, r});
  record(w, view, std::move(result));
}

void engine::fail_item(const work& w, int64_t uid) {
  std::string error;
  // Not open_item(): a held item fails too, it is not parked again.
  auto view = store_.open_delivery(w.hop_id, w.id, error);
  if (!view) {
    if (!error.empty()) std::fprintf(stderr, "sluiced: delivery: reading %s: %s\n", w.id.text().c_str(), error.c_str());
    forget(w);
    return;
  }
  fail_recipients(w, *view, view->item.recipients, removed_reply(), log::tracking_event::remove,
                  "removed by uid " + std::to_string(uid) + ", DSN to the sender");
}

std::vector<uint32_t> engine::bounced_recipients(const hop& h, const store::message_view& view,
                                                 std::string_view domain) const {
  if (h.kind == route::hop_key_kind::dns) return h.domain == domain ? view.item.recipients : std::vector<uint32_t>{};
  std::vector<uint32_t> out;
  for (uint32_t idx : view.item.recipients) {
    if (idx >= view.envelope.recipients.size()) continue;
    const std::string& a = view.envelope.recipients[idx].address;
    const auto at = a.rfind('@');
    if (at == std::string::npos || a.size() - at - 1 != domain.size()) continue;
    bool same = true;
    for (std::size_t i = 0; i < domain.size() && same; ++i)
      same = static_cast<char>(std::tolower(static_cast<unsigned char>(a[at + 1 + i]))) == domain[i];
    if (same) out.push_back(idx);
  }
  return out;
}

bool engine::bounce_at_attempt(const work& w, const store::message_view& view) {
  auto h = hops_.find(w.hop_id);
  if (h == hops_.end()) return false;
  const int64_t now = now_ms();
  for (const auto& [domain, until] : bounces_) {
    if (until <= now) continue;
    const auto rcpts = bounced_recipients(*h->second, view, domain);
    if (rcpts.empty()) continue;
    fail_recipients(w, view, rcpts, {550, "5.0.0", "mail for " + domain + " is bounced by the administrator"},
                    log::tracking_event::bounce, "bounced by the rule for " + domain);
    return true;
  }
  return false;
}

uint64_t engine::bounce_domain(const std::string& domain, int64_t until_ms, int64_t uid) {
  if (until_ms > now_ms()) bounces_[domain] = until_ms;
  // DNS hops know their domain; in the others each item's recipients are looked at.
  std::string error;
  const auto failing = take_if([&](const work& w) {
    auto h = hops_.find(w.hop_id);
    if (h == hops_.end()) return false;
    if (h->second->kind == route::hop_key_kind::dns) return h->second->domain == domain;
    auto view = store_.open_delivery(w.hop_id, w.id, error);
    return view && !bounced_recipients(*h->second, *view, domain).empty();
  });
  const smtp::reply r{550, "5.0.0", "mail for " + domain + " is bounced by the administrator"};
  for (const auto& w : failing) {
    auto view = store_.open_delivery(w.hop_id, w.id, error);
    auto h = hops_.find(w.hop_id);
    if (!view || h == hops_.end()) {
      forget(w);
      continue;
    }
    fail_recipients(w, *view, bounced_recipients(*h->second, *view, domain), r, log::tracking_event::bounce,
                    "bounced by uid " + std::to_string(uid) + ", DSN to the sender");
  }
  return failing.size();
}

void engine::cancel_bounce(const std::string& domain) { bounces_.erase(domain); }

uint64_t engine::fail_message(base::queue_id id, int64_t uid) {
  // Whatever of it waits anywhere here fails now (settle_removal has seen its attempts end);
  // an item a connection has already taken fails when it is opened (open_item).
  const std::vector<work> now = take_message(id);
  removing_.erase(id.value);
  failing_[id.value] = {uid, now_ms() + 15 * 60'000};
  for (const auto& w : now) fail_item(w, uid);
  return now.size();
}

void engine::control(store::control_action action, base::queue_id id, std::string hop_key, int64_t until_ms,
                     action_done done) {
  auto req = std::make_unique<pending_control>();
  req->action = action;
  req->id = id;
  req->hop_key = std::move(hop_key);
  req->until_ms = until_ms;
  req->now_ms = now_ms();
  req->done = std::move(done);
  if (!store_.control(producer_, req.get())) {
    req->done({"too many administrator's requests in flight; try again"});
    return;
  }
  req.release();
  ++in_store_;
}

void engine::controlled(store::control_request& req) {
  std::unique_ptr<pending_control> owned(static_cast<pending_control*>(&req));
  action_outcome out;
  if (req.result == store::control_status::not_found) {
    out.found = false;
  } else if (req.result != store::control_status::ok) {
    out.error = req.error.empty() ? std::string("the queue store refused the change") : req.error;
  } else {
    out.items = req.hops.size();
    out.recipients = req.recipients;
    switch (req.action) {
      case store::control_action::suspend:
        suspended_[req.hop_key] = req.until_ms != 0 ? req.until_ms : forever;
        for (auto& [hop_id, h] : hops_)
          if (h->key == req.hop_key) park_hop(*h);
        break;
      case store::control_action::resume:
        suspended_.erase(req.hop_key);
        unpark_hop(req.hop_key);
        break;
      case store::control_action::release: unpark(req.id); break;
      case store::control_action::remove: drop_message(req.id); break;
      case store::control_action::hold: break;  // caught when an attempt would open the item
      case store::control_action::bounce:
      case store::control_action::unbounce: break;  // every loop is told by the admin command
    }
  }
  if (owned->done) owned->done(out);
}

}  // namespace sluice::delivery
