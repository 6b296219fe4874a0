// control.cc: the control operation: the administrator's hold/release of a message, suspend/resume of a hop, removal of a message.
// Untrusted input: the administrator's requests (hop key text, stored as bytes) and records read back.
#include <lmdb.h>

#include <string>
#include <vector>

#include "store/lane.h"
#include "store/record.h"
#include "store/schema.h"
#include "store/store.h"
#include "store/txn.h"
#include "store/write.h"

namespace sluice::store {

bool queue_store::control(unsigned producer, control_request* req) { return hand_in(producer, req); }

std::size_t queue_store::take_controlled(unsigned producer, control_request** out, std::size_t max) {
  return take_back(producer, out, max);
}

namespace {

// Per-request outcome codes of a committed transaction (0: written).
constexpr uint8_t code_not_found = 1;
constexpr uint8_t code_corrupt = 2;
constexpr uint8_t code_bad_key = 3;

// A message's item on one hop, found by looking the message up under every hop that has
// items (there is no index by message; the administrator's actions are rare).
struct found_item {
  uint64_t hop_id = 0;
  hop_record hop;
  delivery_item_record item;
};

int items_of_message(MDB_txn* txn, const databases& d, base::queue_id id, std::vector<found_item>& out, bool& corrupt) {
  cursor_guard cur;
  int rc = cur.open(txn, d.hops);
  if (rc) return rc;
  MDB_val k, v;
  std::string err;
  found_item f;
  while ((rc = mdb_cursor_get(cur.get(), &k, &v, MDB_NEXT)) == 0) {
    if (k.mv_size != schema::id_key_size) continue;
    if (!decode_hop(view(v), f.hop, err)) {
      corrupt = true;
      continue;
    }
    if (f.hop.items == 0) continue;
    f.hop_id = schema::hop_id_of(static_cast<const unsigned char*>(k.mv_data));
    auto dk = schema::make_delivery_key(f.hop_id, id);
    MDB_val dkv = val(dk), dv;
    const int got = mdb_get(txn, d.delivery, &dkv, &dv);
    if (got == MDB_NOTFOUND) continue;
    if (got) return got;
    if (!decode_item(view(dv), f.item, err)) {
      corrupt = true;
      continue;
    }
    out.push_back(f);
  }
  return rc == MDB_NOTFOUND ? 0 : rc;
}

int put_item(MDB_txn* txn, const databases& d, uint64_t hop_id, base::queue_id id, const delivery_item_record& item,
             std::string& bytes) {
  auto dk = schema::make_delivery_key(hop_id, id);
  MDB_val dkv = val(dk);
  encode_item(item, bytes);
  MDB_val nv = val(bytes.data(), bytes.size());
  return mdb_put(txn, d.delivery, &dkv, &nv, 0);
}

int set_held(const write_txn& w, control_request& r, std::string& bytes, uint8_t& code) {
  std::vector<found_item> items;
  bool corrupt = false;
  int rc = items_of_message(w.txn, w.db, r.id, items, corrupt);
  if (rc) return rc;
  const bool held = r.action == control_action::hold;
  for (auto& f : items) {
    r.hops.push_back(f.hop_id);
    r.recipients += f.item.recipients.size();
    if (f.item.held == held) continue;
    f.item.held = held;
    if ((rc = put_item(w.txn, w.db, f.hop_id, r.id, f.item, bytes))) return rc;
  }
  if (items.empty()) code = corrupt ? code_corrupt : code_not_found;
  return 0;
}

int set_suspended(const write_txn& w, control_request& r, uint8_t& code) {
  if (r.hop_key.empty() || r.hop_key.size() > schema::max_hop_key_size) {
    code = code_bad_key;
    return 0;
  }
  MDB_txn* txn = w.txn;
  hop_record h;
  bool present = false;
  int rc = 0;
  if (r.action == control_action::suspend) {
    // A hop never seen is made, so that what arrives for it waits as well.
    if ((rc = hop_id_for_key(txn, w.db, r.hop_key, r.hop_id))) return rc;
    if ((rc = read_hop(txn, w.db, r.hop_id, h, present))) return rc;
    if (!present) h = hop_record{r.hop_key};
    h.status = hop_status::suspended;
    h.suspended_until_ms = r.until_ms;
    return write_hop(txn, w.db, r.hop_id, h);
  }
  MDB_val nk = val(r.hop_key.data(), r.hop_key.size()), nv;
  rc = mdb_get(txn, w.db.hop_names, &nk, &nv);
  if (rc == MDB_NOTFOUND || (rc == 0 && nv.mv_size != 8)) {
    code = code_not_found;
    return 0;
  }
  if (rc) return rc;
  r.hop_id = schema::hop_id_of(static_cast<const unsigned char*>(nv.mv_data));
  if ((rc = read_hop(txn, w.db, r.hop_id, h, present))) return rc;
  if (!present) {
    code = code_not_found;
    return 0;
  }
  if (h.status == hop_status::suspended)
    h.status = h.next_retry_ms > r.now_ms ? hop_status::retry : hop_status::ready;
  h.suspended_until_ms = 0;
  return write_hop(txn, w.db, r.hop_id, h);
}

// Everything of the message goes in this one transaction: nothing refers to it afterwards.
int remove_message(const write_txn& w, control_request& r, uint8_t& code) {
  MDB_txn* txn = w.txn;
  const databases& d = w.db;
  std::vector<found_item> items;
  bool corrupt = false;
  int rc = items_of_message(txn, d, r.id, items, corrupt);
  if (rc) return rc;
  for (auto& f : items) {
    auto dk = schema::make_delivery_key(f.hop_id, r.id);
    MDB_val dkv = val(dk);
    if ((rc = mdb_del(txn, d.delivery, &dkv, nullptr))) return rc;
    remove_item_from_hop(f.hop, f.item.recipients.size());
    if ((rc = write_hop(txn, d, f.hop_id, f.hop))) return rc;
    r.hops.push_back(f.hop_id);
    r.recipients += f.item.recipients.size();
  }
  auto idk = schema::make_id_key(r.id);
  MDB_val k = val(idk), v;
  bool any = !items.empty();
  for (MDB_dbi dbi : {d.reports, d.refs, d.submission}) {
    rc = mdb_del(txn, dbi, &k, nullptr);
    if (rc == 0) any = true;
    else if (rc != MDB_NOTFOUND) return rc;
  }
  rc = mdb_get(txn, d.messages, &k, &v);
  if (rc == 0) any = true;
  else if (rc != MDB_NOTFOUND) return rc;
  if (!any) {
    code = corrupt ? code_corrupt : code_not_found;
    return 0;
  }
  return drop_message(txn, d, r.id);
}

// Bounce rules live in `meta`, one key per domain.
int set_bounce_rule(const write_txn& w, control_request& r, uint8_t& code) {
  const std::string key = schema::meta_bounce_prefix + r.hop_key;
  if (r.hop_key.empty() || key.size() > schema::max_hop_key_size) {
    code = code_bad_key;
    return 0;
  }
  MDB_val k = val(key.data(), key.size());
  if (r.action == control_action::unbounce) {
    const int rc = mdb_del(w.txn, w.db.meta, &k, nullptr);
    if (rc == MDB_NOTFOUND) code = code_not_found;
    return rc == MDB_NOTFOUND ? 0 : rc;
  }
  const auto bytes = u64_be(static_cast<uint64_t>(r.until_ms));
  MDB_val v = val(bytes);
  return mdb_put(w.txn, w.db.meta, &k, &v, 0);
}

int apply_control(const write_txn& w, std::span<write_op* const> ops, std::span<uint8_t> codes) {
  std::string bytes;
  for (std::size_t i = 0; i < ops.size(); ++i) {
    auto& r = static_cast<control_request&>(*ops[i]);
    r.hop_id = 0;
    r.hops.clear();
    r.recipients = 0;
    int rc = 0;
    switch (r.action) {
      case control_action::hold:
      case control_action::release: rc = set_held(w, r, bytes, codes[i]); break;
      case control_action::suspend:
      case control_action::resume: rc = set_suspended(w, r, codes[i]); break;
      case control_action::remove: rc = remove_message(w, r, codes[i]); break;
      case control_action::bounce:
      case control_action::unbounce: rc = set_bounce_rule(w, r, codes[i]); break;
    }
    if (rc) return rc;
  }
  return 0;
}

void finish_control(write_op& op, int rc, uint8_t code) {
  auto& r = static_cast<control_request&>(op);
  if (rc == 0 && code == 0) {
    r.result = control_status::ok;
    return;
  }
  r.hops.clear();
  r.recipients = 0;
  if (rc == 0 && code == code_not_found) {
    r.result = control_status::not_found;
    return;
  }
  r.result = control_status::failed;
  if (rc != 0) r.error = mdb_strerror(rc);
  else if (code == code_bad_key) r.error = "empty or too long next-hop key or domain";
  else r.error = "message " + r.id.text() + ": corrupt record";
}

}  // namespace

// One by one: an administrator's request is small, and one that fails must fail alone.
const write_handler control_handler = {apply_control, finish_control, nullptr, retry_policy::one_by_one,
                                       reserve_use::none, false};

}  // namespace sluice::store
