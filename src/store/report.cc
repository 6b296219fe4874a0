// report.cc: the report operation: a DSN's pending report entries leave the message's list as the DSN is enqueued.
// Untrusted input: the DSN generator's requests (the DSN is stored as bytes, like a submission) and records read back.
#include <lmdb.h>

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "store/lane.h"
#include "store/record.h"
#include "store/schema.h"
#include "store/store.h"
#include "store/txn.h"
#include "store/write.h"

namespace sluice::store {

bool queue_store::report(unsigned producer, report_request* req) { return hand_in(producer, req); }

std::size_t queue_store::take_reported(unsigned producer, report_request** out, std::size_t max) {
  return take_back(producer, out, max);
}

namespace {

// Per-request outcome codes of a committed transaction (0: written).
constexpr uint8_t code_stale = 1;    // a consumed entry is not in the list: skipped
constexpr uint8_t code_corrupt = 2;  // the list does not decode: skipped

// Removes the consumed pairs from `list`; false (list unspecified) when one is missing.
// A pair given twice is missing the second time: the request is then inconsistent
// with the list it was composed from, and composing again is the safe answer.
bool consume(std::vector<report_entry>& list, const report_request& r) {
  for (const auto& [recipient, action] : r.consumed) {
    auto at = std::find_if(list.begin(), list.end(),
                           [&](const report_entry& e) { return e.recipient == recipient && e.action == action; });
    if (at == list.end()) return false;
    list.erase(at);
  }
  return true;
}

// One request inside the transaction; a code other than 0 means nothing of it was
// written. The checks come before the first write, so a skipped request leaves no trace
// in the transaction the other requests commit in.
int apply_one(const write_txn& w, report_request& r, std::string& bytes, uint8_t& code) {
  MDB_txn* txn = w.txn;
  const databases& d = w.db;
  auto idk = schema::make_id_key(r.id);
  MDB_val k = val(idk), v;
  int rc = 0;
  if (!r.consumed.empty()) {
    rc = mdb_get(txn, d.reports, &k, &v);
    if (rc == MDB_NOTFOUND) {
      code = code_stale;
      return 0;
    }
    if (rc) return rc;
    std::vector<report_entry> list;
    std::string err;
    if (!decode_reports(view(v), list, err)) {
      code = code_corrupt;
      return 0;
    }
    if (!consume(list, r)) {
      code = code_stale;
      return 0;
    }
    if (list.empty()) {
      if ((rc = mdb_del(txn, d.reports, &k, nullptr))) return rc;
      if ((rc = adjust_refs(txn, d, r.id, k, -1, r.message_removed))) return rc;
    } else {
      bytes = encode_reports(list);
      MDB_val nv = val(bytes.data(), bytes.size());
      if ((rc = mdb_put(txn, d.reports, &k, &nv, 0))) return rc;
    }
  }
  if (!r.has_message) return 0;
  message_metadata meta;
  meta.received_at_ms = r.received_at_ms;
  meta.connector = r.connector;
  return put_message(w, r.dsn_id, r.envelope, std::move(meta), r.body, bytes);
}

// The report part of a write transaction, after every other kind: the entries a
// deliver of the same batch added are already there to consume. Any LMDB error aborts
// the whole transaction, so a DSN and the removal of its entries commit together.
int apply_report(const write_txn& w, std::span<write_op* const> ops, std::span<uint8_t> codes) {
  std::string bytes;
  int64_t recipients = 0;
  uint64_t highest = 0;
  int rc = 0;
  for (std::size_t i = 0; i < ops.size(); ++i) {
    auto& r = static_cast<report_request&>(*ops[i]);
    r.message_removed = false;
    if ((rc = apply_one(w, r, bytes, codes[i]))) return rc;
    if (codes[i] != 0 || !r.has_message) continue;
    recipients += static_cast<int64_t>(r.envelope.recipients.size());
    highest = std::max(highest, r.dsn_id.value);
  }
  if (highest == 0) return 0;  // no DSN stored: the counters stay as they are
  if ((rc = raise_u64(w.txn, w.db.meta, schema::meta_id_floor, highest))) return rc;
  return add_counter(w.txn, w.db.meta, schema::meta_recipients, recipients);
}

void finish_report(write_op& op, int rc, uint8_t code) {
  auto& r = static_cast<report_request&>(op);
  if (rc == 0 && code == 0) {
    r.result = report_status::ok;
    return;
  }
  r.message_removed = false;
  if (rc == 0) {
    r.result = code == code_stale ? report_status::stale : report_status::failed;
    if (code == code_corrupt) r.error = "report list of " + r.id.text() + ": corrupt record";
  } else if (rc == MDB_MAP_FULL && code == too_large_for_map) {
    r.result = report_status::failed;
    r.error = "DSN larger than the queue's map can ever hold";
  } else if (rc == MDB_MAP_FULL) {
    r.result = report_status::storage_full;
    r.error = mdb_strerror(rc);
  } else {
    r.result = report_status::failed;
    r.error = rc == MDB_KEYEXIST ? "duplicate queue id " + r.dsn_id.text() : std::string(mdb_strerror(rc));
  }
}

// A DSN adds a message, so it keeps the reserve like a submission; dropping entries
// alone needs no page the deletions do not give back (0 is never held back).
uint64_t report_pages(const write_op& op, std::size_t chunk_size) {
  const auto& r = static_cast<const report_request&>(op);
  return r.has_message ? message_pages(r.body.size(), chunk_size) : 0;
}

}  // namespace

// One by one, as submit: a duplicate DSN id or a huge DSN fails alone.
const write_handler report_handler = {apply_report, finish_report, report_pages, retry_policy::one_by_one,
                                      reserve_use::upper_half, true};

}  // namespace sluice::store
