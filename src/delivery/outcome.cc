// outcome.cc: the engine's outcomes: one attempt's per-recipient results become a deliver request with its report entries.
// Untrusted input: remote reply texts (stored and logged as data).
#include <fmt/format.h>

#include <algorithm>
#include <cstdio>

#include "delivery/outbound.h"
#include "dsn/dsn.h"

namespace sluice::delivery {

namespace {

std::string reply_text(const smtp::reply& r) {
  std::string text = r.text;
  std::replace(text.begin(), text.end(), '\n', ' ');
  return fmt::format("{} {} {}", r.code, r.enhanced, text);
}

}  // namespace

void engine::record(const work& w, const store::message_view& view, attempt_result&& result) {
  const int64_t now = now_ms();
  auto req = std::make_unique<pending_deliver>();
  req->id = w.id;
  req->hop_id = w.hop_id;
  req->now_ms = now;
  const retry::policy& policy = policy_for(view.envelope);
  const bool expired = retry::expired(policy, w.received_at_ms, now);
  std::vector<uint32_t> delivered, deferred, failed, expired_rcpts;
  std::string defer_text, fail_text, deliver_text;
  bool bounced = false;  // the remote server refused a recipient for good (metrics)
  for (const auto& rr : result.recipients) {
    const std::string text = reply_text(rr.reply);
    if (rr.outcome == recipient_outcome::delivered) {
      req->delivered.push_back(rr.recipient);
      delivered.push_back(rr.recipient);
      deliver_text = text;
    } else if (rr.outcome == recipient_outcome::failed || expired) {
      store::report_entry f;
      f.recipient = rr.recipient;
      f.remote_mta = result.remote_mta;
      f.at_ms = now;
      if (rr.outcome == recipient_outcome::failed) {
        f.status = rr.reply.enhanced;
        f.reason = rr.reply.text;
        f.diagnostic = text;
        failed.push_back(rr.recipient);
        fail_text = text;
        bounced |= rr.reply.code >= 500 && !result.remote_mta.empty();
      } else {
        f.status = "4.4.7";
        f.reason = "delivery time expired";
        f.diagnostic = text;
        expired_rcpts.push_back(rr.recipient);
        defer_text = text;
      }
      req->failed.push_back(std::move(f));
    } else {
      deferred.push_back(rr.recipient);
      defer_text = text;
    }
  }
  const std::string where = result.remote_mta.empty() ? std::string() : result.remote_mta + ": ";
  req->last_error = where + defer_text;
  req->next_attempt_ms = retry::next_attempt_ms(policy, w.attempts + 1, w.received_at_ms, now, rng_());
  add_reports(view, result, expired, *req);
  req->next = w;
  req->next.attempts = w.attempts + 1;
  req->next.recipients = static_cast<uint32_t>(deferred.size());

  const std::string tls = result.tls.empty() ? std::string() : " (" + result.tls + ")";
  const std::string_view hop_key = hop_key_of(w.hop_id);
  if (!delivered.empty()) {
    ++stats_.messages_delivered;
    track(log::tracking_event::deliver, view, delivered, hop_key, where + deliver_text + tls);
  }
  // Being removed: those recipients are not retried; the removal tracks them.
  if (!deferred.empty() && !removing_.count(w.id.value))
    track(log::tracking_event::defer, view, deferred, hop_key,
          fmt::format("{}{}; next attempt in {} s", where, defer_text, (req->next_attempt_ms - now + 999) / 1000));
  if (!failed.empty()) track(log::tracking_event::fail, view, failed, hop_key, where + fail_text);
  if (!expired_rcpts.empty())
    track(log::tracking_event::expire, view, expired_rcpts, hop_key, "4.4.7 delivery time expired; last error: " + where + defer_text);
  stats_.recipients_delivered += delivered.size();
  stats_.recipients_deferred += deferred.size();
  stats_.recipients_failed += failed.size();
  stats_.recipients_expired += expired_rcpts.size();
  if (auto it = hops_.find(w.hop_id); it != hops_.end()) {
    const hop& h = *it->second;
    count_outcome(h.kind == route::hop_key_kind::local ? std::string_view("local") : std::string_view(h.connector),
                  h.bound ? std::string_view(h.bound->key) : std::string_view(h.key),
                  {!delivered.empty(), !deferred.empty(), !failed.empty(), bounced, !expired_rcpts.empty()});
  }
  submit(std::move(req));
}

smtp::reply engine::expired_reply(const store::message_view& view) {
  return {451, "4.4.7", view.item.last_error.empty() ? std::string("not attempted before the message expired") : view.item.last_error};
}

void engine::add_reports(const store::message_view& view, const attempt_result& result, bool expired,
                         store::deliver_request& req) const {
  const smtp::envelope& env = view.envelope;
  // Nobody is told anything about mail from the null sender (a DSN).
  if (env.mail_from.empty()) return;
  const auto& d = cfg_->dsn;
  const int64_t delay_ms = int64_t{d.delay_after_s} * 1000;
  const bool delay_due = d.delay_after_s != 0 && !view.item.delay_reported && req.now_ms - view.meta.received_at_ms >= delay_ms;
  const retry::policy& policy = policy_for(env);
  for (const auto& rr : result.recipients) {
    if (rr.recipient >= env.recipients.size()) continue;
    store::report_entry e;
    if (rr.outcome == recipient_outcome::delivered) {
      if (!(env.recipients[rr.recipient].notify & smtp::notify_success)) continue;
      // A next hop offering DSN was given NOTIFY and ORCPT: the report is its to make.
      if (!result.final_delivery && result.next_hop_dsn) continue;
      e.action = result.final_delivery ? store::report_action::delivered : store::report_action::relayed;
    } else if (rr.outcome == recipient_outcome::deferred && delay_due && !expired) {
      if (!dsn::wanted(env, rr.recipient, dsn::action::delayed, d.delay_without_notify)) continue;
      e.action = store::report_action::delayed;
      e.will_retry_until_ms = view.meta.received_at_ms + policy.expire_ms;
    } else {
      continue;
    }
    e.recipient = rr.recipient;
    e.status = rr.reply.enhanced;
    e.reason = rr.reply.text;
    e.remote_mta = result.remote_mta;
    e.diagnostic = reply_text(rr.reply);
    e.at_ms = req.now_ms;
    req.reports.push_back(std::move(e));
  }
  // Once per item, whether or not anyone wanted one: the next deferral does not ask again.
  if (delay_due) req.mark_delay_reported = true;
}

void engine::completed(store::deliver_request& req) {
  std::unique_ptr<pending_deliver> owned(static_cast<pending_deliver*>(&req));
  const auto removal = removing_.find(req.id.value);
  const bool removing = removal != removing_.end();
  switch (req.result) {
    case store::deliver_status::ok: {
      // Removed without a DSN: the removal deletes these entries, nobody is told.
      const bool silent = removing && !removal->second.dsn;
      if (notify_reports_ && !silent && (!req.failed.empty() || !req.reports.empty())) notify_reports_(req.id);
      const work next = owned->next;
      if (req.remaining == 0) {
        forget(next);
      } else if (auto f = failing_.find(req.id.value); f != failing_.end()) {
        // Being removed with a DSN: what is left fails now.
        work rest = next;
        rest.recipients = req.remaining;
        fail_item(rest, f->second.uid);
      } else if (removing) {
        // Parked for the removal, which takes it next (or gives it back, end_removal).
        work rest = next;
        rest.recipients = req.remaining;
        held_.insert_or_assign({rest.id.value, rest.hop_id}, rest);
      } else {
        owned->next.recipients = req.remaining;
        waiting_.emplace(req.next_attempt_ms, owned->next);
      }
      attempt_ended(next, req.delivered.size());
      return;
    }
    case store::deliver_status::not_found:
      forget(owned->next);
      attempt_ended(owned->next, req.delivered.size());
      return;
    default:
      // The outcome is not durable yet: nothing may be forgotten or retried until it is.
      ++stats_.store_retries;
      std::fprintf(stderr, "sluiced: delivery: recording the outcome for %s: %s (retrying)\n",
                   req.id.text().c_str(), req.error.c_str());
      owned->result = store::deliver_status::pending;
      owned->error.clear();
      owned->retry_at_ms = now_ms() + store_retry_ms;
      unsent_.push_back(std::move(owned));
      return;
  }
}

void engine::track(log::tracking_event ev, const store::message_view& view, const std::vector<uint32_t>& rcpts,
                   std::string_view hop_key, std::string_view detail) {
  if (!tracker_) return;
  const std::string id = view.id.text();
  std::vector<std::string_view> addresses;
  for (uint32_t i : rcpts)
    if (i < view.envelope.recipients.size()) addresses.push_back(view.envelope.recipients[i].address);
  log::tracking_record r;
  r.event = ev;
  r.queue_id = id;
  r.sender = view.envelope.mail_from;
  r.recipients = addresses;
  r.connector = hop_key;
  r.detail = detail;
  tracker_(r);
}

}  // namespace sluice::delivery
