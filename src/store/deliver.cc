// deliver.cc: the deliver operation: one attempt's outcome for one delivery item: item, report list, refs, hop.
// Untrusted input: the delivery engine's requests (remote reply texts, stored as bytes) and records read back.
#include <lmdb.h>

#include <algorithm>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "store/lane.h"
#include "store/record.h"
#include "store/schema.h"
#include "store/store.h"
#include "store/txn.h"
#include "store/write.h"

namespace sluice::store {

bool queue_store::deliver(unsigned producer, deliver_request* req) { return hand_in(producer, req); }

std::size_t queue_store::take_delivered(unsigned producer, deliver_request** out, std::size_t max) {
  return take_back(producer, out, max);
}

namespace {

// Per-request outcome codes of a committed transaction (0: written).
constexpr uint8_t code_not_found = 1;  // no such item: skipped
constexpr uint8_t code_corrupt = 2;    // the item record does not decode: skipped

// A hop record read once per transaction and written back once at its end, so a batch
// finishing many items of one hop rewrites its record once. `present` is false when
// the record is missing or damaged: it is then left alone rather than rebuilt without
// its key.
struct hop_update {
  bool present = false;
  hop_record record;
};

// What one request does to its item's recipient list.
struct split {
  std::vector<uint32_t> kept;                     // deferred: stay in the item
  std::vector<uint32_t> delivered;                // the item's recipients delivered now (when reports are given)
  // Failed ones (they leave the item) and the reports that apply, for the report list.
  std::vector<const report_entry*> reports;
  uint64_t removed = 0;                           // delivered + failed, counted once each
};

bool holds(const std::vector<uint32_t>& sorted, uint32_t idx) {
  return std::binary_search(sorted.begin(), sorted.end(), idx);
}

// Sorted copies make the partition O(n log n): a bulk message's item can hold thousands
// of recipients and its outcome as many.
split partition(const delivery_item_record& item, const deliver_request& r) {
  std::vector<uint32_t> delivered(r.delivered);
  std::sort(delivered.begin(), delivered.end());
  std::vector<const report_entry*> failed;
  failed.reserve(r.failed.size());
  for (const auto& f : r.failed) failed.push_back(&f);
  // Stable: of two entries for one index, the first given is the one stored.
  std::stable_sort(failed.begin(), failed.end(),
                   [](const report_entry* a, const report_entry* b) { return a->recipient < b->recipient; });
  split s;
  // The delivered list is needed only to place success reports: most outcomes have none.
  const bool placing_reports = !r.reports.empty();
  for (uint32_t idx : item.recipients) {
    if (holds(delivered, idx)) {
      if (placing_reports) s.delivered.push_back(idx);
      ++s.removed;
      continue;
    }
    auto f = std::lower_bound(failed.begin(), failed.end(), idx,
                              [](const report_entry* a, uint32_t v) { return a->recipient < v; });
    if (f != failed.end() && (*f)->recipient == idx) {
      s.reports.push_back(*f);
      ++s.removed;
      continue;
    }
    s.kept.push_back(idx);
  }
  if (!placing_reports) return s;
  // A report applies only to what happened to the item's recipient in this outcome: a
  // success report to one delivered now, a delay report to one that stays.
  std::vector<uint32_t> kept(s.kept);
  std::sort(kept.begin(), kept.end());
  std::sort(s.delivered.begin(), s.delivered.end());
  for (const auto& e : r.reports) {
    const bool applies = e.action == report_action::delayed ? holds(kept, e.recipient)
                         : e.action == report_action::delivered || e.action == report_action::relayed
                             ? holds(s.delivered, e.recipient)
                             : false;
    if (applies) s.reports.push_back(&e);
  }
  return s;
}

// The hop's counts after one item's outcome. status follows next_retry_ms (retry while a
// retry is scheduled in the future, else ready); a suspended hop stays suspended until its
// suspension's time has passed.
void update_hop(hop_record& h, const deliver_request& r, const split& s, bool item_gone) {
  h.recipients -= std::min<uint64_t>(h.recipients, s.removed);
  if (item_gone && h.items > 0) --h.items;
  if (h.items == 0) {
    h.oldest_ms = 0;
    h.next_retry_ms = 0;
    h.last_error.clear();
  } else if (!item_gone) {
    h.last_error = r.last_error;
    // Only this item's schedule is known here: take it when it is sooner than the stored
    // one, or when the stored one has passed (that retry is being made or was made).
    if (h.next_retry_ms == 0 || r.next_attempt_ms < h.next_retry_ms || h.next_retry_ms <= r.now_ms)
      h.next_retry_ms = r.next_attempt_ms;
  } else if (h.next_retry_ms != 0 && h.next_retry_ms <= r.now_ms) {
    h.next_retry_ms = 0;
  }
  if (!suspended_at(h, r.now_ms)) {
    h.status = h.next_retry_ms > r.now_ms ? hop_status::retry : hop_status::ready;
    h.suspended_until_ms = 0;
  }
}

// The deliver part of a write transaction. Any LMDB error aborts the whole transaction,
// so an outcome is recorded entirely or not at all.
int apply_deliver(const write_txn& w, std::span<write_op* const> ops, std::span<uint8_t> codes) {
  MDB_txn* txn = w.txn;
  const databases& d = w.db;
  std::unordered_map<uint64_t, hop_update> hops;
  delivery_item_record item;
  std::string bytes, err;
  int rc = 0;
  for (std::size_t i = 0; i < ops.size(); ++i) {
    deliver_request& r = static_cast<deliver_request&>(*ops[i]);
    r.remaining = 0;
    r.message_removed = false;
    auto dk = schema::make_delivery_key(r.hop_id, r.id);
    MDB_val dkv = val(dk), dv;
    rc = mdb_get(txn, d.delivery, &dkv, &dv);
    if (rc == MDB_NOTFOUND) {
      codes[i] = code_not_found;
      continue;
    }
    if (rc) return rc;
    if (!decode_item(view(dv), item, err)) {
      codes[i] = code_corrupt;
      continue;
    }
    const split s = partition(item, r);
    auto idk = schema::make_id_key(r.id);
    const MDB_val k = val(idk);
    int64_t ref_delta = 0;
    if ((rc = append_reports(txn, d, k, s.reports, r.now_ms, ref_delta))) return rc;
    const bool item_gone = s.kept.empty();
    if (item_gone) {
      if ((rc = mdb_del(txn, d.delivery, &dkv, nullptr))) return rc;
      ref_delta -= 1;
    } else {
      item.recipients = s.kept;
      item.state = item_state::deferred;
      ++item.attempts;
      item.next_attempt_ms = r.next_attempt_ms;
      item.last_error = r.last_error;
      item.last_attempt_ms = r.now_ms;
      if (r.mark_delay_reported) item.delay_reported = true;
      encode_item(item, bytes);
      MDB_val nv = val(bytes.data(), bytes.size());
      if ((rc = mdb_put(txn, d.delivery, &dkv, &nv, 0))) return rc;
    }
    if ((rc = adjust_refs(txn, d, r.id, k, ref_delta, r.message_removed))) return rc;
    r.remaining = static_cast<uint32_t>(s.kept.size());

    auto [found, inserted] = hops.try_emplace(r.hop_id);
    hop_update& u = found->second;
    if (inserted) {
      if ((rc = read_hop(txn, d, r.hop_id, u.record, u.present))) return rc;
    }
    if (u.present) update_hop(u.record, r, s, item_gone);
  }
  for (auto& [id, u] : hops) {
    if (u.present && (rc = write_hop(txn, d, id, u.record))) return rc;
  }
  return 0;
}

void finish_deliver(write_op& op, int rc, uint8_t code) {
  auto& r = static_cast<deliver_request&>(op);
  if (rc == 0 && code == 0) {
    r.result = deliver_status::ok;
    return;
  }
  r.remaining = 0;
  r.message_removed = false;
  if (rc == 0) {
    r.result = code == code_not_found ? deliver_status::not_found : deliver_status::failed;
    if (code == code_corrupt) r.error = "delivery item " + r.id.text() + ": corrupt record";
  } else {
    r.result = rc == MDB_MAP_FULL ? deliver_status::storage_full : deliver_status::failed;
    r.error = mdb_strerror(rc);
  }
}

}  // namespace

// Never held back by the free-page reserve: recording deliveries deletes items and
// messages, which is what drains a full store.
const write_handler deliver_handler = {apply_deliver, finish_deliver, nullptr, retry_policy::halving,
                                       reserve_use::none, false};

}  // namespace sluice::store
