// txn.cc: helpers used inside the queue store's LMDB transactions (counters, body chunks, freelist).
// Untrusted input: values read back from the LMDB file (sizes are checked before use).
#include "store/txn.h"

#include <cstring>

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

int put_ordered(MDB_txn* txn, MDB_dbi dbi, MDB_val* k, MDB_val* v, unsigned flags) {
  int rc = mdb_put(txn, dbi, k, v, flags | MDB_APPEND);
  if (rc == MDB_KEYEXIST) rc = mdb_put(txn, dbi, k, v, flags);
  return rc;
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
