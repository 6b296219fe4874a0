// reporter.cc: pending report entries -> one RFC 3464 report per message and event, enqueued atomically with their removal.
// Untrusted input: stored envelopes, headers and remote replies of original messages (handed to dsn::compose).
#include "delivery/reporter.h"

#include <fmt/format.h>

#include <chrono>
#include <cstdio>

#include "dsn/dsn.h"
#include "metrics/daemon.h"

namespace sluice::delivery {

namespace {

// A report the store could not take (full lane, full map, an error) is handed in again after this.
constexpr int64_t store_retry_ms = 5000;
// Sweeps read this many messages' ids per store read.
constexpr std::size_t sweep_batch = 256;

// The three reports a message's entries can make: failures, delays, successes.
enum class report_kind : uint8_t { failure, delay, success };

report_kind kind_of(store::report_action a) {
  switch (a) {
    case store::report_action::failed: return report_kind::failure;
    case store::report_action::delayed: return report_kind::delay;
    default: return report_kind::success;
  }
}

const char* name_of(report_kind k) {
  switch (k) {
    case report_kind::failure: return "failure";
    case report_kind::delay: return "delay";
    default: return "success";
  }
}

dsn::action dsn_action(store::report_action a) {
  switch (a) {
    case store::report_action::failed: return dsn::action::failed;
    case store::report_action::delayed: return dsn::action::delayed;
    case store::report_action::delivered: return dsn::action::delivered;
    default: return dsn::action::relayed;
  }
}

}  // namespace

struct reporter::pending_report final : store::report_request {
  report_kind kind = report_kind::failure;
  std::string sender;                    // the original's, for the tracking log
  std::vector<std::string> recipients;   // the reported recipients' addresses
  int64_t retry_at_ms = 0;
};

reporter::reporter(unsigned producer, store::queue_store& store, id_source next_id)
    : producer_(producer), store_(store), next_id_(std::move(next_id)) {}

reporter::~reporter() = default;

int64_t reporter::now_ms() const {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

void reporter::notify(base::queue_id original) {
  if (stopping_ || !cfg_) return;
  if (busy_.contains(original.value)) {
    again_.insert(original.value);
    return;
  }
  process(original);
}

void reporter::sweep(int64_t min_age_ms) {
  if (stopping_ || !cfg_) return;
  const int64_t cutoff = now_ms() - min_age_ms;
  base::queue_id after;
  for (;;) {
    std::string error;
    const auto ids = store_.list_reports(after, sweep_batch, error);
    if (!error.empty()) {
      std::fprintf(stderr, "sluiced: dsn: listing pending reports: %s\n", error.c_str());
      return;
    }
    for (const base::queue_id id : ids) {
      if (busy_.contains(id.value)) continue;
      if (min_age_ms > 0) {
        auto entries = store_.read_reports(id, error);
        if (!entries) continue;
        bool old = false;
        for (const auto& e : *entries) old = old || e.at_ms <= cutoff;
        if (!old) continue;
      }
      process(id);
    }
    if (ids.size() < sweep_batch) return;
    after = ids.back();
  }
}

void reporter::process(base::queue_id id) {
  std::string error;
  auto entries = store_.read_reports(id, error);
  if (!entries) {
    if (!error.empty()) std::fprintf(stderr, "sluiced: dsn: reading the reports of %s: %s\n", id.text().c_str(), error.c_str());
    return;
  }
  auto view = store_.open_message(id, error);
  if (!view) {
    std::fprintf(stderr, "sluiced: dsn: %s has pending reports but %s\n", id.text().c_str(),
                 error.empty() ? "no message" : error.c_str());
    return;
  }
  const smtp::envelope& env = view->envelope;
  const int64_t now = now_ms();
  const bool delay_without_notify = cfg_->dsn.delay_without_notify;
  for (const report_kind kind : {report_kind::failure, report_kind::delay, report_kind::success}) {
    auto req = std::make_unique<pending_report>();
    req->id = id;
    req->kind = kind;
    req->sender = env.mail_from;
    std::vector<dsn::recipient_report> wanted;
    for (const auto& e : *entries) {
      if (kind_of(e.action) != kind) continue;
      req->consumed.emplace_back(e.recipient, e.action);
      if (e.recipient >= env.recipients.size()) continue;
      const dsn::action a = dsn_action(e.action);
      if (!dsn::wanted(env, e.recipient, a, delay_without_notify)) continue;
      const auto& r = env.recipients[e.recipient];
      wanted.push_back({r.address, r.orcpt, a, e.status, e.remote_mta, e.diagnostic, e.at_ms, e.will_retry_until_ms});
      req->recipients.push_back(r.address);
    }
    if (req->consumed.empty()) continue;
    if (wanted.empty()) {
      stats_.entries_dropped += req->consumed.size();
      // A report about a report is never made: the failed DSN is dropped, said once here.
      if (kind == report_kind::failure && env.mail_from.empty())
        std::fprintf(stderr, "sluiced: dsn: %s from <> failed for %zu recipient(s); no report is sent about a report, dropped\n",
                     id.text().c_str(), req->consumed.size());
    } else {
      dsn::original_message m{&env, id.text(), view->meta.received_at_ms, view->chunks, view->meta.body_size};
      const dsn::settings s{cfg_->dsn.reporting_mta, cfg_->dsn.return_content_limit};
      req->dsn_id = next_id_();
      dsn::report rep = dsn::compose(m, wanted, s, now, req->dsn_id.text());
      req->has_message = true;
      req->envelope.mail_from.clear();  // RFC 3461 6.2: a DSN's sender is the null sender
      req->envelope.helo = s.reporting_mta;
      req->envelope.esmtp = true;
      req->envelope.body = rep.eight_bit ? smtp::body_type::eight_bit_mime : smtp::body_type::seven_bit;
      req->envelope.smtputf8 = rep.smtputf8;
      req->envelope.recipients.push_back({rep.recipient, smtp::notify_unspecified, ""});
      req->body = std::move(rep.content);
      req->connector = "dsn";
      req->received_at_ms = now;
    }
    ++busy_[id.value];
    submit(std::move(req));
  }
}

// Borrowed by the store until take_reported() hands it back; a full lane keeps it here.
void reporter::submit(std::unique_ptr<pending_report> req) {
  if (!store_.report(producer_, req.get())) {
    req->retry_at_ms = now_ms() + store_retry_ms;
    waiting_.push_back(std::move(req));
    return;
  }
  req.release();
  ++in_store_;
}

void reporter::poll() {
  store::report_request* done[64];
  std::size_t n;
  while ((n = store_.take_reported(producer_, done, 64)) != 0) {
    for (std::size_t i = 0; i < n; ++i) {
      --in_store_;
      completed(*done[i]);
    }
  }
  if (waiting_.empty()) return;
  const int64_t now = now_ms();
  auto all = std::move(waiting_);
  waiting_.clear();
  for (auto& r : all) {
    if (r->retry_at_ms > now || stopping_)
      waiting_.push_back(std::move(r));
    else
      submit(std::move(r));
  }
}

void reporter::completed(store::report_request& done) {
  std::unique_ptr<pending_report> owned(static_cast<pending_report*>(&done));
  const base::queue_id id = done.id;
  switch (done.result) {
    case store::report_status::ok:
      if (done.has_message) {
        ++stats_.reports_queued;
        metrics::daemon().dsns_generated.get().inc();
        if (tracker_) {
          std::vector<std::string_view> rcpts(owned->recipients.begin(), owned->recipients.end());
          const std::string text = id.text(), detail = fmt::format("{} report {} to <{}>", name_of(owned->kind),
                                                                   done.dsn_id.text(), owned->sender);
          log::tracking_record r;
          r.event = log::tracking_event::dsn;
          r.queue_id = text;
          r.sender = owned->sender;
          r.recipients = rcpts;
          r.connector = "dsn";
          r.detail = detail;
          tracker_(r);
        }
        if (handoff_) handoff_(done.dsn_id);
      }
      break;
    case store::report_status::stale:
      // Another loop reported (some of) these entries first: read what is left.
      ++stats_.stale;
      again_.insert(id.value);
      break;
    default:
      ++stats_.store_retries;
      std::fprintf(stderr, "sluiced: dsn: queueing a %s report for %s: %s (retrying)\n", name_of(owned->kind),
                   id.text().c_str(), done.error.c_str());
      owned->result = store::report_status::pending;
      owned->error.clear();
      owned->retry_at_ms = now_ms() + store_retry_ms;
      waiting_.push_back(std::move(owned));
      return;  // still busy: the same request goes again
  }
  auto b = busy_.find(id.value);
  if (b != busy_.end() && --b->second == 0) {
    busy_.erase(b);
    if (again_.erase(id.value) != 0 && !stopping_) process(id);
  }
}

}  // namespace sluice::delivery
