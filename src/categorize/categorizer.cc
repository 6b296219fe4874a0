// categorizer.cc: the categorizer shard on a worker loop: rings in, categorize transactions, items out.
// Untrusted input: envelopes read back from the store (recipient addresses are routed as data).
#include "categorize/categorizer.h"

#include <algorithm>
#include <cstdio>
#include <span>

#include <fmt/format.h>

namespace sluice::categorize {

namespace {
constexpr std::size_t read_batch = 256;  // ids per envelope read transaction
// A finished job keeps buffers up to these sizes for the next message (a warm request
// does not allocate); anything larger is freed, so one huge message does not leave its
// footprint in every pooled job it passed through.
constexpr std::size_t keep_string_bytes = 4096;
constexpr std::size_t keep_elements = 64;

template <class Buffer>
void drop_if_large(Buffer& b, std::size_t keep) {
  if (b.capacity() > keep) Buffer().swap(b);
}

// Heap bytes of a string beyond the object itself (short strings live inside it).
std::size_t heap_of(const std::string& s) { return s.capacity() > std::string().capacity() ? s.capacity() : 0; }
std::size_t heap_of(const std::vector<std::string>& v) {
  std::size_t n = v.capacity() * sizeof(std::string);
  for (const auto& s : v) n += heap_of(s);
  return n;
}

std::string delay_text(uint64_t ms) {
  return ms % 1000 == 0 ? fmt::format("{} s", ms / 1000) : fmt::format("{} ms", ms);
}
}  // namespace

// A pooled request plus what the completion needs that the store does not keep.
struct categorizer::job {
  store::categorize_request req;
  std::vector<std::string> failed_addresses;  // parallel to req.failed, for the log
  // For tracking only (filled when a tracker is set): the sender, every recipient of the
  // envelope as categorized, and "name: actions" of each rule that fired.
  std::string sender;
  std::vector<std::string> recipients;
  std::vector<std::string> rules_fired;
  std::size_t body_charge = 0;  // bytes of req.new_body counted in stats_.body_bytes
};

categorizer::categorizer(net::loop& loop, unsigned index, store::queue_store& store, links& l,
                         std::shared_ptr<const route::table> routes)
    : loop_(loop),
      index_(index),
      store_(store),
      links_(l),
      routes_(std::move(routes)),
      out_ids_(l.loops()),
      out_items_(l.loops()),
      flush_timer_(loop),
      retry_timer_(loop) {}

categorizer::~categorizer() = default;

void categorizer::log(const std::string& line) {
  if (links_.log) links_.log(line);
  else std::fprintf(stderr, "sluiced: %s\n", line.c_str());
}

categorizer::job* categorizer::take_job() {
  if (free_jobs_.empty()) {
    jobs_.push_back(std::make_unique<job>());
    jobs_.back()->req.user = jobs_.back().get();
    return jobs_.back().get();
  }
  job* j = free_jobs_.back();
  free_jobs_.pop_back();
  return j;
}

void categorizer::release(job& j) {
  stats_.body_bytes -= j.body_charge;
  j.body_charge = 0;
  store::categorize_request& r = j.req;
  r.new_body.reset();
  drop_if_large(r.new_record, keep_string_bytes);
  drop_if_large(r.error, keep_string_bytes);
  drop_if_large(r.items, keep_elements);
  drop_if_large(r.failed, keep_elements);
  drop_if_large(j.failed_addresses, keep_elements);
  drop_if_large(j.recipients, keep_elements);
  drop_if_large(j.rules_fired, keep_elements);
  free_jobs_.push_back(&j);
}

std::size_t categorizer::job_bytes() const {
  std::size_t n = 0;
  for (const auto& owned : jobs_) {
    const job& j = *owned;
    const store::categorize_request& r = j.req;
    n += sizeof(job) + heap_of(r.new_record) + heap_of(r.error) + (r.new_body ? heap_of(*r.new_body) : 0);
    n += r.items.capacity() * sizeof(store::delivery_item_spec);
    for (const auto& item : r.items) n += heap_of(item.hop_key) + item.recipients.capacity() * sizeof(uint32_t);
    n += r.failed.capacity() * sizeof(store::report_entry);
    for (const auto& f : r.failed) n += heap_of(f.status) + heap_of(f.reason);
    n += heap_of(j.failed_addresses) + heap_of(j.recipients) + heap_of(j.rules_fired) + heap_of(j.sender);
  }
  return n;
}

void categorizer::hand_off(base::queue_id id) {
  out_ids_[shard_of(id, links_.loops())].push_back(id);
}

void categorizer::flush() {
  bool left = false;
  for (unsigned t = 0; t < links_.loops(); ++t) {
    bool pushed = false;
    auto& ids = out_ids_[t];
    if (!ids.empty()) {
      std::size_t k = links_.ids.ring(index_, t).push_batch(ids.data(), ids.size());
      ids.erase(ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(k));
      pushed |= k != 0;
      left |= !ids.empty();
    }
    auto& items = out_items_[t];
    if (!items.empty()) {
      std::size_t k = links_.items.ring(index_, t).push_batch(items.data(), items.size());
      items.erase(items.begin(), items.begin() + static_cast<std::ptrdiff_t>(k));
      pushed |= k != 0;
      left |= !items.empty();
    }
    // One wake-up per target per flush, however many entries: uv_async coalesces
    // anyway, but each send is still a syscall-capable write to an eventfd.
    if (pushed && links_.wake) links_.wake(t);
  }
  if (left && !flush_armed_) arm_flush();
}

void categorizer::arm_flush() {
  flush_armed_ = true;
  if (flush_started_) {
    flush_timer_.again();
    return;
  }
  flush_started_ = true;
  flush_timer_.start(1, 0, [this] {
    flush_armed_ = false;
    flush();
  });
}

// The retry timer ticks every first_ms while any message waits: the net::timer cannot be
// re-armed with another timeout from its own callback, and a tick costs nothing when
// nothing is due.
void categorizer::arm_retry() {
  if (retry_armed_ || stopping_) return;
  retry_armed_ = true;
  if (retry_started_) {
    retry_timer_.again();
    return;
  }
  retry_started_ = true;
  const uint64_t tick = std::max<uint64_t>(1, retry_policy_.first_ms);
  retry_timer_.start(tick, tick, [this] { retry_due(); });
}

void categorizer::retry_due() {
  const auto due = retry_due_.upper_bound(uv_now(loop_.get()));
  for (auto it = retry_due_.begin(); it != due; ++it) todo_.push_back(it->second);
  retry_due_.erase(retry_due_.begin(), due);
  if (retry_due_.empty()) {
    retry_timer_.stop();
    retry_armed_ = false;
  }
  start_some();
  flush();
}

// Never touches todo_ (start_some may be iterating it): a message is due again through
// retry_due_ only.
void categorizer::note_failure(base::queue_id id, const std::string& error, bool transient, bool quiet) {
  ++stats_.store_errors;
  failure& f = failures_[id.value];
  ++f.attempts;
  if (!transient) ++f.hard_attempts;
  f.last_error = error;
  const uint64_t now = uv_now(loop_.get());
  if (!f.give_up && f.hard_attempts >= retry_policy_.give_up_after) {
    // The store has refused this message's transaction give_up_after times, over many
    // minutes, for a reason other than space: the cause is the message or the routing it
    // gets (a key the store cannot hold), and retrying for days as Postfix does for a
    // deferred delivery would only hide an acknowledged message from its sender.
    // It becomes what any undeliverable recipient becomes, a failed list entry the DSN
    // generator reports, with 5.3.0: the fault is this mail system's, not the address's
    // (5.1.x) or the content's (5.6.x). A reload that fixes the cause in the meantime
    // lets one of the earlier attempts succeed instead.
    f.give_up = true;
    log(fmt::format("categorizer {}: {}: {}; failed {} times, failing its recipients with 5.3.0", index_,
                    id.text(), error, f.attempts));
    retry_due_.emplace(now, id);
  } else {
    const unsigned doublings = std::min(f.attempts - 1, 40u);
    const uint64_t delay = std::min(retry_policy_.cap_ms, retry_policy_.first_ms << doublings);
    retry_due_.emplace(now + delay, id);
    if (!quiet)
      log(fmt::format("categorizer {}: {}: {}; attempt {}, retrying in {}", index_, id.text(), error, f.attempts,
                      delay_text(delay)));
  }
  arm_retry();
}

void categorizer::fill_given_up(job& j, base::queue_id id, const smtp::envelope& env,
                                const store::message_metadata& meta, const failure& f) {
  store::categorize_request& r = j.req;
  begin_request(r, id, meta.received_at_ms);
  r.items.clear();
  // The envelope as received: rules are not applied again to a message that could not
  // be categorized with them.
  const std::string reason = "categorization failed repeatedly: " + f.last_error;
  r.failed.resize(env.recipients.size());
  j.failed_addresses.resize(env.recipients.size());
  for (uint32_t i = 0; i < env.recipients.size(); ++i) {
    r.failed[i] = {i, "5.3.0", reason};
    j.failed_addresses[i] = env.recipients[i].address;
  }
  j.rules_fired.clear();
  if (tracker_) {
    j.sender = env.mail_from;
    j.recipients = j.failed_addresses;
  }
}

void categorizer::poll() {
  store::categorize_request* done[256];
  std::size_t n;
  while ((n = store_.take_categorized(index_, done, 256)) != 0)
    for (std::size_t i = 0; i < n; ++i) complete(*static_cast<job*>(done[i]->user));

  base::queue_id ids[512];
  for (unsigned from = 0; from < links_.loops(); ++from) {
    auto& ring = links_.ids.ring(from, index_);
    while ((n = ring.pop_batch(ids, 512)) != 0) todo_.insert(todo_.end(), ids, ids + n);
  }
  start_some();

  delivery::hop_item items[64];
  for (unsigned from = 0; from < links_.loops(); ++from) {
    auto& ring = links_.items.ring(from, index_);
    while ((n = ring.pop_batch(items, 64)) != 0)
      for (std::size_t i = 0; i < n; ++i) take_item(std::move(items[i]));
  }
  flush();
}

bool categorizer::route_one(job& j, const route::table& routes, base::queue_id id, const smtp::envelope& env,
                            const store::message_metadata& meta) {
  const rules::rule_set* rules = rules_ && !rules_->empty() ? rules_.get() : nullptr;
  std::string_view headers;
  if (rules && rules->needs_headers()) {
    std::string herr;
    if (!store_.read_header_block(id, header_block_, 64 * 1024, herr) && !herr.empty())
      log(fmt::format("{}: reading headers for transport rules: {}", id.text(), herr));
    headers = header_block_;
  }
  router_.categorize(routes, rules, headers, id, env, meta, j.req);
  if (router_.header_edits_pending()) {
    // Rare (a rule edits headers): the whole body is read, edited and stored again in the
    // categorize transaction, still once for every next hop. The job holds it until the
    // store has written it, so the bodies of all jobs in flight count against the budget.
    if (stats_.body_bytes != 0 && stats_.body_bytes + meta.body_size > body_budget_) return false;
    std::string berr;
    auto whole = store_.read_message(id, berr);
    if (whole)
      router_.finish_with_body(std::move(whole->body), env, meta, store_.chunk_size(), j.req);
    else
      log(fmt::format("{}: header edits not applied: {}", id.text(), berr.empty() ? "message gone" : berr));
    if (j.req.new_body) {
      j.body_charge = j.req.new_body->capacity();
      stats_.body_bytes += j.body_charge;
      stats_.body_bytes_peak = std::max(stats_.body_bytes_peak, stats_.body_bytes);
    }
  }
  const smtp::envelope& effective = router_.effective(env);
  j.rules_fired.clear();
  for (const auto& f : router_.fired()) {
    if (tracker_) j.rules_fired.push_back(fmt::format("{}: {}", f.name, f.actions));
    else log(fmt::format("{}: RULE {}: {}", id.text(), f.name, f.actions));
  }
  if (tracker_) {
    j.sender = env.mail_from;
    j.recipients.resize(effective.recipients.size());
    for (std::size_t r = 0; r < effective.recipients.size(); ++r) j.recipients[r] = effective.recipients[r].address;
  }
  j.failed_addresses.resize(j.req.failed.size());
  for (std::size_t f = 0; f < j.req.failed.size(); ++f)
    j.failed_addresses[f] = effective.recipients[j.req.failed[f].recipient].address;
  return true;
}

void categorizer::start_some() {
  std::string problems, error;
  constexpr std::size_t capacity = store::queue_store::categorize_capacity;
  while (!stopping_ && routes_ && backlog() != 0 && in_flight_ < capacity) {
    const std::size_t take = std::min({read_batch, backlog(), capacity - in_flight_});
    std::span<const base::queue_id> batch(todo_.data() + todo_head_, take);
    const route::table& routes = *routes_;
    problems.clear();
    // Where the body budget ran out: that message and the rest of the batch stay in
    // todo_, in order, until completions free bodies (poll() calls start_some again).
    std::size_t visited = 0, wait_at = take;
    bool ok = store_.read_envelopes(
        batch,
        [&](base::queue_id id, const smtp::envelope& env, const store::message_metadata& meta) {
          if (wait_at != take) return;
          while (visited < take && batch[visited].value != id.value) ++visited;  // skipped ids: missing
          job* j = take_job();
          const failure* given_up = nullptr;
          if (!failures_.empty())
            if (auto f = failures_.find(id.value); f != failures_.end() && f->second.give_up) given_up = &f->second;
          if (given_up) {
            fill_given_up(*j, id, env, meta, *given_up);
          } else if (!route_one(*j, routes, id, env, meta)) {
            release(*j);
            ++stats_.body_waits;
            wait_at = visited;
            return;
          }
          ++visited;
          // Cannot be refused: in_flight_ stays below the lane's capacity.
          if (store_.categorize(index_, &j->req)) {
            ++in_flight_;
          } else {
            release(*j);
            note_failure(id, "categorize lane full", true, false);
          }
        },
        problems, error);
    if (!problems.empty()) log(fmt::format("categorizer {}: {}", index_, problems));
    if (!ok) {
      // The read transaction itself failed: the store, not these messages. One line for
      // the batch; each message still backs off, and none is given up for it.
      log(fmt::format("categorizer {}: {}; {} messages wait for a retry", index_, error, batch.size()));
      for (base::queue_id id : batch) note_failure(id, error, true, true);
    }
    todo_head_ += ok ? wait_at : take;
    if (todo_head_ == todo_.size()) {
      todo_.clear();
      todo_head_ = 0;
    } else if (todo_head_ > 4096 && todo_head_ * 2 > todo_.size()) {
      todo_.erase(todo_.begin(), todo_.begin() + static_cast<std::ptrdiff_t>(todo_head_));
      todo_head_ = 0;
    }
    if (!ok || wait_at != take) break;
  }
}

void categorizer::complete(job& j) {
  --in_flight_;
  store::categorize_request& r = j.req;
  switch (r.result) {
    case store::categorize_status::ok:
      ++stats_.categorized;
      for (auto& item : r.items) {
        delivery::hop_item h;
        h.hop_id = item.hop_id;
        h.id = r.id;
        h.recipients = static_cast<uint32_t>(item.recipients.size());
        h.received_at_ms = r.received_at_ms;
        h.hop_key = item.hop_key;
        out_items_[owner_of(item.hop_key, links_.loops())].push_back(std::move(h));
        ++stats_.items_sent;
      }
      for (std::size_t f = 0; f < r.failed.size(); ++f) {
        ++stats_.failed_recipients;
        if (!tracker_)
          log(fmt::format("{}: <{}> failed: {} {}", r.id.text(), j.failed_addresses[f], r.failed[f].status,
                          r.failed[f].reason));
      }
      if (tracker_) track(j);
      if (notify_reports_ && !r.failed.empty()) notify_reports_(r.id);
      [[fallthrough]];
    case store::categorize_status::not_queued:
      if (r.result == store::categorize_status::not_queued) ++stats_.duplicates;
      if (!failures_.empty()) {
        if (auto f = failures_.find(r.id.value); f != failures_.end()) {
          if (f->second.give_up && r.result == store::categorize_status::ok) ++stats_.given_up;
          failures_.erase(f);
        }
      }
      break;
    default:
      note_failure(r.id, r.error, r.result == store::categorize_status::storage_full, false);
      break;
  }
  release(j);
}

void categorizer::track(const job& j) {
  const store::categorize_request& r = j.req;
  const std::string id = r.id.text();
  log::tracking_record rec;
  rec.queue_id = id;
  rec.sender = j.sender;
  rec.event = log::tracking_event::rule;
  for (const auto& fired : j.rules_fired) {
    rec.detail = fired;
    tracker_(rec);
  }
  std::vector<std::string_view> rcpts;
  rec.event = log::tracking_event::route;
  for (const auto& item : r.items) {
    rcpts.clear();
    for (uint32_t i : item.recipients)
      if (i < j.recipients.size()) rcpts.push_back(j.recipients[i]);
    rec.recipients = rcpts;
    rec.connector = item.hop_key;
    rec.detail = {};
    tracker_(rec);
  }
  rec.event = log::tracking_event::fail;
  rec.connector = {};
  std::string detail;
  for (std::size_t f = 0; f < r.failed.size(); ++f) {
    std::string_view addr = j.failed_addresses[f];
    rec.recipients = std::span<const std::string_view>(&addr, 1);
    detail = r.failed[f].status + " " + r.failed[f].reason;
    rec.detail = detail;
    tracker_(rec);
  }
}

void categorizer::recover() {
  const unsigned loops = links_.loops();
  std::string error;
  std::size_t pending = 0;
  if (!store_.for_each_submission(
          [&](base::queue_id id) {
            if (shard_of(id, loops) == index_) {
              todo_.push_back(id);
              ++pending;
            }
            return true;
          },
          error))
    log(fmt::format("categorizer {}: reading the submission queue: {}", index_, error));
  std::vector<delivery::hop_item> stored;
  stored.swap(links_.stored_items[index_]);
  for (auto& item : stored) take_item(std::move(item));
  if (pending != 0)
    log(fmt::format("categorizer {}: {} message{} from the submission queue to categorize", index_, pending,
                    pending == 1 ? "" : "s"));
  start_some();
  flush();
}

bool links::load_stored_items(const store::queue_store& store, std::string& error) {
  std::vector<store::hop_entry> hops;
  if (!store.for_each_hop(
          [&](const store::hop_entry& e) {
            if (e.record.items != 0) hops.push_back(e);
            return true;
          },
          error))
    return false;
  for (const auto& e : hops) {
    auto& out = stored_items[owner_of(e.record.key, loops())];
    bool ok = store.for_each_item(
        e.id,
        [&](base::queue_id id, const store::delivery_item_record& item) {
          out.push_back(delivery::hop_item{e.id, id, static_cast<uint32_t>(item.recipients.size()), item.received_at_ms,
                                           item.next_attempt_ms, item.attempts, e.record.key});
          return true;
        },
        error);
    if (!ok) {
      error = "delivery queue " + e.record.key + ": " + error;
      return false;
    }
  }
  return true;
}

void categorizer::take_item(delivery::hop_item&& item) {
  if (item_sink_)
    item_sink_(std::move(item));
  else
    queues_.add(std::move(item));
}

void categorizer::shutdown() {
  stopping_ = true;
  retry_timer_.stop();
  retry_armed_ = false;
}

}  // namespace sluice::categorize
