// txn.cc: helpers used inside the queue store's LMDB transactions (counters, body chunks, freelist).
// Untrusted input: values read back from the LMDB file (sizes are checked before use).
#include "store/txn.h"

#include <pthread.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <unordered_set>
#include <vector>

#include "store/env.h"
#include "store/record.h"
#include "store/schema.h"

namespace sluice::store {

bool begin_read(MDB_env* env, txn_guard& txn, std::string& error) {
  if (env == nullptr) {
    error = "queue store not open";
    return false;
  }
  if (int rc = txn.begin(env, MDB_RDONLY)) {
    error = lmdb_error("cannot begin read transaction", rc);
    return false;
  }
  return true;
}

uint64_t read_u64_be(const MDB_val& v) {
  if (v.mv_size != 8) return 0;
  auto* p = static_cast<const unsigned char*>(v.mv_data);
  uint64_t x = 0;
  for (int i = 0; i < 8; ++i) x = (x << 8) | p[i];
  return x;
}

std::array<unsigned char, 8> u64_be(uint64_t x) {
  std::array<unsigned char, 8> b{};
  for (int i = 0; i < 8; ++i) b[i] = static_cast<unsigned char>(x >> (56 - 8 * i));
  return b;
}

std::array<unsigned char, 4> u32_be(uint32_t x) {
  return {static_cast<unsigned char>(x >> 24), static_cast<unsigned char>(x >> 16),
          static_cast<unsigned char>(x >> 8), static_cast<unsigned char>(x)};
}

int get_u32(MDB_txn* txn, MDB_dbi dbi, const MDB_val& key, uint32_t& out) {
  MDB_val k = key, v;
  int rc = mdb_get(txn, dbi, &k, &v);
  out = 0;
  if (rc) return rc;
  if (v.mv_size == 4) {
    auto* p = static_cast<const unsigned char*>(v.mv_data);
    out = (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
  }
  return 0;
}

int add_counter(MDB_txn* txn, MDB_dbi dbi, const char* name, int64_t delta) {
  MDB_val k = val(name, std::strlen(name)), v;
  uint64_t current = 0;
  int rc = mdb_get(txn, dbi, &k, &v);
  if (rc == 0) current = read_u64_be(v);
  else if (rc != MDB_NOTFOUND) return rc;
  uint64_t next = current + static_cast<uint64_t>(delta);
  if (delta < 0 && static_cast<uint64_t>(-delta) > current) next = 0;  // never wrap
  auto bytes = u64_be(next);
  MDB_val nv = val(bytes);
  return mdb_put(txn, dbi, &k, &nv, 0);
}

int raise_u64(MDB_txn* txn, MDB_dbi dbi, const char* name, uint64_t value) {
  uint64_t current = 0;
  int rc = read_u64(txn, dbi, name, current);
  if (rc || value <= current) return rc;
  MDB_val k = val(name, std::strlen(name));
  auto bytes = u64_be(value);
  MDB_val nv = val(bytes);
  return mdb_put(txn, dbi, &k, &nv, 0);
}

int read_u64(MDB_txn* txn, MDB_dbi dbi, const char* name, uint64_t& out) {
  MDB_val k = val(name, std::strlen(name)), v;
  out = 0;
  int rc = mdb_get(txn, dbi, &k, &v);
  if (rc == MDB_NOTFOUND) return 0;
  if (rc) return rc;
  out = read_u64_be(v);
  return 0;
}

int delete_chunks(MDB_txn* txn, MDB_dbi bodies, base::queue_id id) {
  cursor_guard cur;
  int rc = cur.open(txn, bodies);
  if (rc) return rc;
  auto first = schema::make_chunk_key(id, 0);
  MDB_val k = val(first), v;
  rc = mdb_cursor_get(cur.get(), &k, &v, MDB_SET_RANGE);
  while (rc == 0) {
    if (k.mv_size != schema::chunk_key_size || std::memcmp(k.mv_data, first.data(), 8) != 0)
      return 0;
    rc = mdb_cursor_del(cur.get(), 0);
    if (rc) return rc;
    // After a delete LMDB leaves the cursor on the following item; MDB_NEXT returns it.
    rc = mdb_cursor_get(cur.get(), &k, &v, MDB_NEXT);
  }
  return rc == MDB_NOTFOUND ? 0 : rc;
}

int drop_message(MDB_txn* txn, const databases& db, base::queue_id id) {
  auto idk = schema::make_id_key(id);
  MDB_val k = val(idk), v;
  int rc = mdb_get(txn, db.messages, &k, &v);
  if (rc == 0) {
    smtp::envelope env;
    message_metadata meta;
    std::string err;
    if (decode_record(view(v), env, meta, err) && !env.recipients.empty())
      rc = add_counter(txn, db.meta, schema::meta_recipients, -static_cast<int64_t>(env.recipients.size()));
    if (rc == 0) rc = mdb_del(txn, db.messages, &k, nullptr);
  }
  if (rc == MDB_NOTFOUND) rc = 0;
  if (rc == 0) rc = delete_chunks(txn, db.bodies, id);
  return rc;
}

int hop_id_for_key(MDB_txn* txn, const databases& db, std::string_view key, uint64_t& id) {
  MDB_val nk = val(key.data(), key.size()), nv;
  int rc = mdb_get(txn, db.hop_names, &nk, &nv);
  if (rc == 0 && nv.mv_size == 8) {
    id = schema::hop_id_of(static_cast<const unsigned char*>(nv.mv_data));
    return 0;
  }
  // A name entry of the wrong size is damaged: the key gets a fresh id, as a new one.
  if (rc != 0 && rc != MDB_NOTFOUND) return rc;
  uint64_t last = 0;
  if ((rc = read_u64(txn, db.meta, schema::meta_next_hop_id, last))) return rc;
  id = last + 1;
  if ((rc = add_counter(txn, db.meta, schema::meta_next_hop_id, 1))) return rc;
  auto idbytes = u64_be(id);
  MDB_val iv = val(idbytes);
  return mdb_put(txn, db.hop_names, &nk, &iv, 0);
}

int read_hop(MDB_txn* txn, const databases& db, uint64_t id, hop_record& record, bool& present) {
  auto hk = schema::make_hop_key(id);
  MDB_val hkv = val(hk), hv;
  present = false;
  int rc = mdb_get(txn, db.hops, &hkv, &hv);
  if (rc == MDB_NOTFOUND) return 0;
  if (rc) return rc;
  std::string err;
  hop_record decoded;
  if (decode_hop(view(hv), decoded, err)) {
    record = std::move(decoded);
    present = true;
  }
  return 0;
}

int write_hop(MDB_txn* txn, const databases& db, uint64_t id, const hop_record& record) {
  auto hk = schema::make_hop_key(id);
  MDB_val hkv = val(hk);
  const std::string bytes = encode_hop(record);
  MDB_val hv = val(bytes.data(), bytes.size());
  return mdb_put(txn, db.hops, &hkv, &hv, 0);
}

void add_item_to_hop(hop_record& h, std::size_t recipients, int64_t received_at_ms) {
  ++h.items;
  h.recipients += recipients;
  if (h.oldest_ms == 0 || (received_at_ms != 0 && received_at_ms < h.oldest_ms)) h.oldest_ms = received_at_ms;
}

void remove_item_from_hop(hop_record& h, std::size_t recipients) {
  h.recipients -= std::min<uint64_t>(h.recipients, recipients);
  if (h.items > 0) --h.items;
  if (h.items == 0) {
    h.oldest_ms = 0;
    h.next_retry_ms = 0;
    h.last_error.clear();
    if (h.status != hop_status::suspended) h.status = hop_status::ready;
  }
}

int append_reports(MDB_txn* txn, const databases& db, MDB_val key, std::span<const report_entry* const> entries,
                   int64_t now_ms, int64_t& ref_delta) {
  if (entries.empty()) return 0;
  std::vector<report_entry> list;
  MDB_val v;
  int rc = mdb_get(txn, db.reports, &key, &v);
  if (rc == MDB_NOTFOUND) {
    ref_delta += 1;
  } else if (rc) {
    return rc;
  } else {
    std::string err;
    if (!decode_reports(view(v), list, err)) list.clear();
  }
  // A bulk message can fail thousands of recipients at once: pairs are looked up in a
  // set, not by scanning the list for each entry.
  auto pair_of = [](const report_entry& e) { return (uint64_t{e.recipient} << 8) | static_cast<uint8_t>(e.action); };
  std::unordered_set<uint64_t> present;
  present.reserve(list.size() + entries.size());
  for (const auto& e : list) present.insert(pair_of(e));
  const std::size_t before = list.size();
  for (const report_entry* e : entries) {
    if (!present.insert(pair_of(*e)).second) continue;
    list.push_back(*e);
    if (list.back().at_ms == 0) list.back().at_ms = now_ms;
  }
  if (list.size() == before && rc == 0) return 0;  // nothing new
  const std::string bytes = encode_reports(list);
  MDB_val nv = val(bytes.data(), bytes.size());
  return mdb_put(txn, db.reports, &key, &nv, 0);
}

int adjust_refs(MDB_txn* txn, const databases& db, base::queue_id id, MDB_val key, int64_t ref_delta,
                bool& removed) {
  removed = false;
  if (ref_delta == 0) return 0;
  uint32_t refs = 0;
  int rc = get_u32(txn, db.refs, key, refs);
  if (rc && rc != MDB_NOTFOUND) return rc;
  const bool had = rc == 0;
  const int64_t next = std::max<int64_t>(0, int64_t{refs} + ref_delta);
  if (next == 0) {
    if (!had) return 0;
    if ((rc = mdb_del(txn, db.refs, &key, nullptr))) return rc;
    removed = true;
    return drop_message(txn, db, id);
  }
  const auto bytes = u32_be(static_cast<uint32_t>(std::min<int64_t>(next, UINT32_MAX)));
  MDB_val v = val(bytes);
  return mdb_put(txn, db.refs, &key, &v, 0);
}

int put_ordered(MDB_txn* txn, MDB_dbi dbi, MDB_val* k, MDB_val* v, unsigned flags) {
  int rc = mdb_put(txn, dbi, k, v, flags | MDB_APPEND);
  if (rc == MDB_KEYEXIST) rc = mdb_put(txn, dbi, k, v, flags);
  return rc;
}

namespace {

struct oldest_reader {
  uint64_t txnid;              // lowered to every other live reader's snapshot
  long self_pid;               // the calling thread's own slot (the caller's read
  unsigned long long self_tid; // transaction) is not one of them
};

// mdb_reader_list's callback: one line per reader slot, "pid thread txnid" with "-" for
// a slot whose transaction has ended; the header and "(no active readers)" have no txnid.
int lower_to_reader(const char* line, void* ctx) {
  auto& o = *static_cast<oldest_reader*>(ctx);
  long pid = 0;
  unsigned long long tid = 0, txnid = 0;
  if (std::sscanf(line, "%ld %llx %llu", &pid, &tid, &txnid) != 3) return 0;
  if (pid == o.self_pid && tid == o.self_tid) return 0;
  o.txnid = std::min<uint64_t>(o.txnid, txnid);
  return 0;
}

}  // namespace

uint64_t reusable_free_pages(MDB_env* env, MDB_txn* txn) {
  // The next write transaction has id newest+1; LMDB reuses the freelist records keyed
  // below its id - 1 lowered to the oldest reader's snapshot. The record of the newest
  // commit itself counts here when no reader pins it: it is reusable from the commit after
  // next on, and the reserve's fixed part covers that lag (writer.cc). Counting it out
  // would refuse mail for good in an idle store whose last commit freed the space.
  oldest_reader o{mdb_txn_id(txn) + 1, static_cast<long>(::getpid()),
                  static_cast<unsigned long long>(::pthread_self())};
  if (mdb_reader_list(env, lower_to_reader, &o) < 0) return 0;
  uint64_t pages = 0;
  cursor_guard cur;
  if (cur.open(txn, 0) == 0) {
    MDB_val k, v;
    while (mdb_cursor_get(cur.get(), &k, &v, MDB_NEXT) == 0) {
      if (k.mv_size != sizeof(std::size_t) || v.mv_size < sizeof(std::size_t)) continue;
      std::size_t freed_by = 0;
      std::memcpy(&freed_by, k.mv_data, sizeof freed_by);
      if (freed_by >= o.txnid) break;  // keys are in txnid order
      pages += *static_cast<const std::size_t*>(v.mv_data);
    }
  }
  return pages;
}

uint64_t freelist_pages(MDB_txn* txn) {
  uint64_t pages = 0;
  cursor_guard cur;
  if (cur.open(txn, 0) == 0) {
    MDB_val k, v;
    while (mdb_cursor_get(cur.get(), &k, &v, MDB_NEXT) == 0)
      if (v.mv_size >= sizeof(std::size_t)) pages += *static_cast<const std::size_t*>(v.mv_data);
  }
  return pages;
}

}  // namespace sluice::store
