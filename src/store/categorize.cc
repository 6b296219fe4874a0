// categorize.cc: the categorize operation: submission entry out; delivery items, hops, report list, refs in.
// Untrusted input: the categorizer's requests (hop keys are length-checked) and records read back.
#include <lmdb.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "store/lane.h"
#include "store/record.h"
#include "store/schema.h"
#include "store/store.h"
#include "store/txn.h"
#include "store/write.h"

namespace sluice::store {

bool queue_store::categorize(unsigned producer, categorize_request* req) { return hand_in(producer, req); }

std::size_t queue_store::take_categorized(unsigned producer, categorize_request** out, std::size_t max) {
  return take_back(producer, out, max);
}

namespace {

// Per-request outcome codes of a committed transaction (0: written).
constexpr uint8_t code_not_queued = 1;  // no submission entry: skipped
constexpr uint8_t code_invalid = 2;     // a hop key empty or too long: skipped

// A hop record being updated by one transaction; written back once at its end, so a
// batch that puts many items on one hop rewrites its record once.
struct hop_update {
  uint64_t id = 0;
  hop_record record;
};

// The categorize part of a write transaction. Any LMDB error aborts the whole
// transaction, so a message is categorized entirely or not at all.
int apply_categorize(const write_txn& w, std::span<write_op* const> ops, std::span<uint8_t> codes) {
  MDB_txn* txn = w.txn;
  const databases& d = w.db;
  const std::size_t chunk = w.chunk_size;
  std::unordered_map<std::string_view, hop_update> hops;
  std::string item_bytes;
  std::vector<const report_entry*> failed;  // the request's entries, for append_reports
  delivery_item_record item;
  int rc = 0;
  for (std::size_t i = 0; i < ops.size(); ++i) {
    categorize_request& r = static_cast<categorize_request&>(*ops[i]);
    bool valid = true;
    for (const auto& it : r.items)
      if (it.hop_key.empty() || it.hop_key.size() > schema::max_hop_key_size) valid = false;
    if (!valid) {
      codes[i] = code_invalid;
      continue;
    }
    auto idk = schema::make_id_key(r.id);
    MDB_val k = val(idk);
    rc = mdb_del(txn, d.submission, &k, nullptr);
    if (rc == MDB_NOTFOUND) {
      codes[i] = code_not_queued;
      continue;
    }
    if (rc) return rc;
    if (r.new_body) {
      // Header edits: the shared body is rewritten once, before any item refers to it.
      if ((rc = delete_chunks(txn, d.bodies, r.id))) return rc;
      const std::string& body = *r.new_body;
      for (uint32_t c = 0; std::size_t{c} * chunk < body.size(); ++c) {
        std::size_t off = std::size_t{c} * chunk;
        auto ck = schema::make_chunk_key(r.id, c);
        MDB_val kk = val(ck), cv = val(body.data() + off, std::min(chunk, body.size() - off));
        if ((rc = mdb_put(txn, d.bodies, &kk, &cv, 0))) return rc;
      }
    }
    if (!r.new_record.empty()) {
      MDB_val rv = val(r.new_record.data(), r.new_record.size());
      if ((rc = mdb_put(txn, d.messages, &k, &rv, 0))) return rc;
    }
    if (r.recipient_delta != 0 &&
        (rc = add_counter(txn, d.meta, schema::meta_recipients, r.recipient_delta)))
      return rc;
    for (auto& spec : r.items) {
      auto found = hops.find(spec.hop_key);
      if (found == hops.end()) {
        hop_update u;
        if ((rc = hop_id_for_key(txn, d, spec.hop_key, u.id))) return rc;
        bool present = false;
        // A lost or damaged record restarts its counts from this item.
        if ((rc = read_hop(txn, d, u.id, u.record, present))) return rc;
        u.record.key = spec.hop_key;
        found = hops.emplace(std::string_view(spec.hop_key), std::move(u)).first;
      }
      hop_update& u = found->second;
      spec.hop_id = u.id;
      add_item_to_hop(u.record, spec.recipients.size(), r.received_at_ms);
      item.state = item_state::queued;
      item.attempts = 0;
      item.received_at_ms = r.received_at_ms;
      item.next_attempt_ms = 0;
      item.recipients.assign(spec.recipients.begin(), spec.recipients.end());
      encode_item(item, item_bytes);
      auto dk = schema::make_delivery_key(u.id, r.id);
      MDB_val dkv = val(dk), dv = val(item_bytes.data(), item_bytes.size());
      // Ids of one hop arrive in queue order, so this usually appends within the hop.
      if ((rc = mdb_put(txn, d.delivery, &dkv, &dv, 0))) return rc;
    }
    if (!r.failed.empty()) {
      failed.clear();
      for (const auto& f : r.failed) failed.push_back(&f);
      int64_t created = 0;  // the reference is counted below, with the items'
      if ((rc = append_reports(txn, d, k, failed, 0, created))) return rc;
    }
    const uint32_t refs = static_cast<uint32_t>(r.items.size()) + (r.failed.empty() ? 0u : 1u);
    if (refs == 0) {
      // Nothing refers to the message (no recipients at all): drop it now.
      if ((rc = drop_message(txn, d, r.id))) return rc;
      continue;
    }
    const auto rb = u32_be(refs);
    MDB_val rv = val(rb);
    if ((rc = put_ordered(txn, d.refs, &k, &rv, 0))) return rc;
  }
  for (auto& [key, u] : hops) {
    if ((rc = write_hop(txn, d, u.id, u.record))) return rc;
  }
  return 0;
}

void finish_categorize(write_op& op, int rc, uint8_t code) {
  auto& c = static_cast<categorize_request&>(op);
  if (rc == 0) {
    c.result = code == code_not_queued ? categorize_status::not_queued
               : code == code_invalid  ? categorize_status::failed
                                       : categorize_status::ok;
    if (code == code_invalid) c.error = "invalid next-hop key";
  } else if (rc == MDB_MAP_FULL) {
    c.result = categorize_status::storage_full;
    c.error = mdb_strerror(rc);
  } else {
    c.result = categorize_status::failed;
    c.error = mdb_strerror(rc);
  }
}

}  // namespace

// Never held back by the free-page reserve: deleting the submission entry is what lets
// a full queue drain.
const write_handler categorize_handler = {apply_categorize, finish_categorize, nullptr,
                                          retry_policy::halving, reserve_use::none, false};

}  // namespace sluice::store
