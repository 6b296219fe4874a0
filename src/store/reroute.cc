// reroute.cc: the reroute operation: one delivery item's recipients move to other next hops (or fail) when routing changed.
// Untrusted input: the delivery engine's requests (hop keys are length-checked, recipient indices checked against the item) and records read back.
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

bool queue_store::reroute(unsigned producer, reroute_request* req) { return hand_in(producer, req); }

std::size_t queue_store::take_rerouted(unsigned producer, reroute_request** out, std::size_t max) {
  return take_back(producer, out, max);
}

namespace {

// Per-request outcome codes of a committed transaction (0: written).
constexpr uint8_t code_not_found = 1;  // no such item: skipped
constexpr uint8_t code_corrupt = 2;    // the item record does not decode: skipped
constexpr uint8_t code_invalid = 3;    // a hop key empty or too long: skipped

// A hop record read once per transaction and written back once at its end. `present`
// is false when the old hop's record is missing or damaged: it is then left alone, as
// deliver does, rather than rebuilt without its key. A target hop always knows its key,
// so its record is rebuilt instead.
struct hop_update {
  bool present = false;
  hop_record record;
};

// Where the old item's recipients go. Each of its recipients is claimed once, by the
// first place naming it (the specs in order, then the failed entries); the rest stay.
struct plan {
  std::vector<std::vector<uint32_t>> moved;     // by spec: the item's recipients it takes
  std::vector<const report_entry*> failed;      // entries for the item's recipients
  std::vector<uint32_t> kept;                   // named nowhere: stay on the old hop
};

// Sorted lookups keep this O(n log n): a bulk message's item can hold thousands of
// recipients.
plan plan_of(const delivery_item_record& item, const reroute_request& r) {
  std::vector<uint32_t> own(item.recipients);
  std::sort(own.begin(), own.end());
  own.erase(std::unique(own.begin(), own.end()), own.end());
  std::vector<bool> taken(own.size());
  auto claim = [&](uint32_t idx) {
    auto at = std::lower_bound(own.begin(), own.end(), idx);
    if (at == own.end() || *at != idx || taken[at - own.begin()]) return false;
    taken[at - own.begin()] = true;
    return true;
  };
  plan p;
  p.moved.resize(r.items.size());
  for (std::size_t j = 0; j < r.items.size(); ++j)
    for (uint32_t idx : r.items[j].recipients)
      if (claim(idx)) p.moved[j].push_back(idx);
  for (const auto& f : r.failed)
    if (claim(f.recipient)) p.failed.push_back(&f);
  for (uint32_t idx : item.recipients) {
    auto at = std::lower_bound(own.begin(), own.end(), idx);
    if (!taken[at - own.begin()]) {
      taken[at - own.begin()] = true;  // a duplicate index in the old record stays once
      p.kept.push_back(idx);
    }
  }
  return p;
}

// The hop update for `id`, read from the store the first time this transaction meets it.
int hop_of(MDB_txn* txn, const databases& d, std::unordered_map<uint64_t, hop_update>& hops, uint64_t id,
           hop_update*& out) {
  auto [found, inserted] = hops.try_emplace(id);
  out = &found->second;
  return inserted ? read_hop(txn, d, id, out->record, out->present) : 0;
}

// One request inside the transaction; codes other than 0 mean nothing of it was written.
int apply_one(MDB_txn* txn, const databases& d, reroute_request& r, std::unordered_map<uint64_t, hop_update>& hops,
              uint8_t& code) {
  for (auto& spec : r.items) {
    spec.hop_id = 0;
    if (spec.hop_key.empty() || spec.hop_key.size() > schema::max_hop_key_size) {
      code = code_invalid;
      return 0;
    }
  }
  auto dk = schema::make_delivery_key(r.hop_id, r.id);
  MDB_val dkv = val(dk), dv;
  int rc = mdb_get(txn, d.delivery, &dkv, &dv);
  if (rc == MDB_NOTFOUND) {
    code = code_not_found;
    return 0;
  }
  if (rc) return rc;
  delivery_item_record old;
  std::string err;
  if (!decode_item(view(dv), old, err)) {
    code = code_corrupt;
    return 0;
  }
  const plan p = plan_of(old, r);
  if ((rc = mdb_del(txn, d.delivery, &dkv, nullptr))) return rc;
  hop_update* h = nullptr;
  if ((rc = hop_of(txn, d, hops, r.hop_id, h))) return rc;
  if (h->present) remove_item_from_hop(h->record, old.recipients.size());

  // New items by hop, in the order first met: two keys naming one hop, or a spec for the
  // old hop plus the recipients that stay there, share one item (one delivery key).
  std::vector<std::pair<uint64_t, std::vector<uint32_t>>> targets;
  auto target = [&](uint64_t id) -> std::vector<uint32_t>& {
    for (auto& t : targets)
      if (t.first == id) return t.second;
    return targets.emplace_back(id, std::vector<uint32_t>{}).second;
  };
  for (std::size_t j = 0; j < r.items.size(); ++j) {
    if (p.moved[j].empty()) continue;
    auto& spec = r.items[j];
    if ((rc = hop_id_for_key(txn, d, spec.hop_key, spec.hop_id))) return rc;
    if ((rc = hop_of(txn, d, hops, spec.hop_id, h))) return rc;
    if (!h->present) {
      h->record = hop_record{};  // lost or damaged: counts restart from this item
      h->record.key = spec.hop_key;
      h->present = true;
    }
    auto& to = target(spec.hop_id);
    to.insert(to.end(), p.moved[j].begin(), p.moved[j].end());
  }
  if (!p.kept.empty()) {
    auto& to = target(r.hop_id);
    to.insert(to.end(), p.kept.begin(), p.kept.end());
  }

  delivery_item_record item = old;  // attempts, received_at, last error and attempt carried
  item.state = item_state::queued;
  item.next_attempt_ms = 0;
  std::string bytes;
  for (auto& [id, recipients] : targets) {
    item.recipients = std::move(recipients);
    encode_item(item, bytes);
    auto nk = schema::make_delivery_key(id, r.id);
    MDB_val nkv = val(nk), nv = val(bytes.data(), bytes.size());
    if ((rc = mdb_put(txn, d.delivery, &nkv, &nv, 0))) return rc;
    hop_update& u = hops.at(id);
    if (u.present) add_item_to_hop(u.record, item.recipients.size(), item.received_at_ms);
  }

  auto idk = schema::make_id_key(r.id);
  const MDB_val k = val(idk);
  int64_t ref_delta = static_cast<int64_t>(targets.size()) - 1;
  if ((rc = append_reports(txn, d, k, p.failed, r.now_ms, ref_delta))) return rc;
  return adjust_refs(txn, d, r.id, k, ref_delta, r.message_removed);
}

// The reroute part of a write transaction. Any LMDB error aborts the whole transaction,
// so an item is moved entirely or not at all.
int apply_reroute(const write_txn& w, std::span<write_op* const> ops, std::span<uint8_t> codes) {
  std::unordered_map<uint64_t, hop_update> hops;
  int rc = 0;
  for (std::size_t i = 0; i < ops.size(); ++i) {
    auto& r = static_cast<reroute_request&>(*ops[i]);
    r.message_removed = false;
    if ((rc = apply_one(w.txn, w.db, r, hops, codes[i]))) return rc;
  }
  for (auto& [id, u] : hops)
    if (u.present && (rc = write_hop(w.txn, w.db, id, u.record))) return rc;
  return 0;
}

void finish_reroute(write_op& op, int rc, uint8_t code) {
  auto& r = static_cast<reroute_request&>(op);
  if (rc == 0 && code == 0) {
    r.result = reroute_status::ok;
    return;
  }
  // Hop ids set by an apply whose transaction did not commit name nothing durable.
  for (auto& spec : r.items) spec.hop_id = 0;
  r.message_removed = false;
  if (rc == 0) {
    r.result = code == code_not_found ? reroute_status::not_found : reroute_status::failed;
    if (code == code_corrupt) r.error = "delivery item " + r.id.text() + ": corrupt record";
    if (code == code_invalid) r.error = "invalid next-hop key";
  } else {
    r.result = rc == MDB_MAP_FULL ? reroute_status::storage_full : reroute_status::failed;
    r.error = mdb_strerror(rc);
  }
}

// Unlike deliver, a reroute can write more than it deletes (one item split over many
// hops, new hop records): it keeps the reserve. Held back, the item stays where it was
// and the engine tries again later, which loses nothing. Per new item, a delivery leaf
// and a hop record or name; plus refs, report list and the old item's leaf.
uint64_t reroute_pages(const write_op& op, std::size_t) {
  const auto& r = static_cast<const reroute_request&>(op);
  return 2 * uint64_t{r.items.size()} + 3;
}

}  // namespace

const write_handler reroute_handler = {apply_reroute, finish_reroute, reroute_pages, retry_policy::halving,
                                       reserve_use::keep_all, false};

}  // namespace sluice::store
