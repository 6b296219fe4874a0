// actions.cc: the delivery engine's side of the administrator's actions: retry now, suspend/resume a hop, hold/release and remove a message.
// Untrusted input: none (hop keys and ids come checked from the admin commands, records from the store).
#include <climits>
#include <cstdio>

#include "delivery/outbound.h"

namespace sluice::delivery {

namespace {
constexpr int64_t forever = INT64_MAX;
}

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
}

template <class Pred>
uint64_t engine::wake_waiting(Pred pred) {
  std::vector<work> due;
  for (auto it = waiting_.begin(); it != waiting_.end();) {
    if (pred(it->second)) {
      due.push_back(it->second);
      it = waiting_.erase(it);
    } else {
      ++it;
    }
  }
  for (auto& w : due)
    if (auto h = hops_.find(w.hop_id); h != hops_.end()) make_ready(*h->second, std::move(w));
  return due.size();
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
  for (auto& w : back)
    if (auto h = hops_.find(w.hop_id); h != hops_.end()) make_ready(*h->second, std::move(w));
  return back.size();
}

std::vector<engine::work> engine::take_message(base::queue_id id) {
  std::vector<work> out;
  for (auto it = waiting_.begin(); it != waiting_.end();) {
    if (it->second.id == id) {
      out.push_back(it->second);
      it = waiting_.erase(it);
    } else {
      ++it;
    }
  }
  auto take = [&](std::deque<work>& q) {
    for (auto it = q.begin(); it != q.end();) {
      if (it->id == id) {
        out.push_back(*it);
        it = q.erase(it);
      } else {
        ++it;
      }
    }
  };
  for (auto& [hop_id, h] : hops_) {
    take(h->ready);
    if (h->ready.empty() && h->in_site && h->bound) {
      std::erase(h->bound->hops, h.get());
      h->in_site = false;
    }
  }
  for (auto& [hop_id, q] : parked_) take(q);
  auto lo = held_.lower_bound({id.value, 0});
  auto hi = held_.upper_bound({id.value, UINT64_MAX});
  for (auto it = lo; it != hi; ++it) out.push_back(it->second);
  held_.erase(lo, hi);
  return out;
}

uint64_t engine::drop_message(base::queue_id id) {
  const std::vector<work> gone = take_message(id);
  for (const auto& w : gone) forget(w);
  return gone.size();
}

smtp::reply engine::removed_reply() { return {550, "5.0.0", "message removed by the administrator"}; }

void engine::remove_message(base::queue_id id, int64_t uid, action_done done) {
  std::string error;
  if (auto view = store_.open_message(id, error)) {
    std::vector<uint32_t> all(view->envelope.recipients.size());
    for (uint32_t i = 0; i < all.size(); ++i) all[i] = i;
    track(log::tracking_event::remove, *view, all, "", "removed by uid " + std::to_string(uid) + ", no DSN");
  }
  control(store::control_action::remove, id, "", 0, std::move(done));
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
  const smtp::reply r = removed_reply();
  track(log::tracking_event::remove, *view, view->item.recipients, hop_key_of(w.hop_id),
        "removed by uid " + std::to_string(uid) + ", DSN to the sender");
  attempt_result result;
  for (uint32_t idx : view->item.recipients) result.recipients.push_back({idx, recipient_outcome::failed, r});
  record(w, *view, std::move(result));
}

uint64_t engine::fail_message(base::queue_id id, int64_t uid) {
  // Whatever of it waits anywhere here fails now; what is on the wire is caught by completed().
  const std::vector<work> now = take_message(id);
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
    }
  }
  if (owned->done) owned->done(out);
}

}  // namespace sluice::delivery
