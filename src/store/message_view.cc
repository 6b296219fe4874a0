// message_view.cc: a message (with its delivery item, or alone) read zero-copy under a read transaction the view keeps.
// Untrusted input: records and body chunks read back from the LMDB file (validated, sizes checked).
#include <lmdb.h>

#include <cstring>
#include <utility>

#include "store/env.h"
#include "store/record.h"
#include "store/schema.h"
#include "store/store.h"
#include "store/txn.h"

namespace sluice::store {

message_view::message_view(message_view&& other) noexcept
    : id(other.id),
      hop_id(other.hop_id),
      envelope(std::move(other.envelope)),
      meta(std::move(other.meta)),
      item(std::move(other.item)),
      chunks(std::move(other.chunks)),
      txn_(std::exchange(other.txn_, nullptr)),
      open_count_(std::exchange(other.open_count_, nullptr)) {
  other.chunks.clear();  // they point into the transaction this view now owns
}

message_view& message_view::operator=(message_view&& other) noexcept {
  if (this == &other) return *this;
  release();
  id = other.id;
  hop_id = other.hop_id;
  envelope = std::move(other.envelope);
  meta = std::move(other.meta);
  item = std::move(other.item);
  chunks = std::move(other.chunks);
  other.chunks.clear();
  txn_ = std::exchange(other.txn_, nullptr);
  open_count_ = std::exchange(other.open_count_, nullptr);
  return *this;
}

message_view::~message_view() { release(); }

// The chunks die with the transaction: LMDB may reuse their pages once no reader pins them.
void message_view::release() noexcept {
  chunks.clear();
  if (txn_) mdb_txn_abort(txn_);
  txn_ = nullptr;
  if (open_count_) open_count_->fetch_sub(1, std::memory_order_relaxed);
  open_count_ = nullptr;
}

std::unique_ptr<message_view> queue_store::open_delivery(uint64_t hop_id, base::queue_id id,
                                                         std::string& error) const {
  return open_view(hop_id, id, true, error);
}

std::unique_ptr<message_view> queue_store::open_message(base::queue_id id, std::string& error) const {
  return open_view(0, id, false, error);
}

std::unique_ptr<message_view> queue_store::open_view(uint64_t hop_id, base::queue_id id, bool with_item,
                                                     std::string& error) const {
  error.clear();
  txn_guard txn;
  if (!begin_read(env_, txn, error)) return nullptr;
  if (!dbi_->categorizer_present) return nullptr;
  const databases& d = *dbi_;
  auto v = std::make_unique<message_view>();
  v->id = id;
  v->hop_id = hop_id;

  int rc = 0;
  if (with_item) {
    auto dk = schema::make_delivery_key(hop_id, id);
    MDB_val dkv = val(dk), dv;
    rc = mdb_get(txn.get(), d.delivery, &dkv, &dv);
    if (rc == MDB_NOTFOUND) return nullptr;
    if (rc) {
      error = lmdb_error("read delivery item", rc);
      return nullptr;
    }
    if (!decode_item(view(dv), v->item, error)) {
      error = "delivery item " + id.text() + ": " + error;
      return nullptr;
    }
  }
  auto idk = schema::make_id_key(id);
  MDB_val k = val(idk), mv;
  rc = mdb_get(txn.get(), d.messages, &k, &mv);
  if (rc == MDB_NOTFOUND) return nullptr;  // removed by the administrator: nothing to send
  if (rc) {
    error = lmdb_error("read message", rc);
    return nullptr;
  }
  if (!decode_record(view(mv), v->envelope, v->meta, error)) {
    error = "message " + id.text() + ": " + error;
    return nullptr;
  }
  // Every chunk but the last is full, so the record's counts bound each other; checking
  // that first keeps a corrupt count from reserving gigabytes.
  const uint64_t size = v->meta.body_size;
  const uint32_t count = v->meta.body_chunks;
  if ((size == 0) != (count == 0) || count > size) {
    error = "message " + id.text() + ": body size and chunk count disagree";
    return nullptr;
  }
  v->chunks.reserve(count);
  {
    cursor_guard cur;
    if ((rc = cur.open(txn.get(), d.bodies))) {
      error = lmdb_error("cannot open cursor", rc);
      return nullptr;
    }
    // One range scan instead of a lookup per chunk: the chunks are adjacent keys.
    auto first = schema::make_chunk_key(id, 0);
    MDB_val ck = val(first), cv;
    uint64_t total = 0;
    rc = mdb_cursor_get(cur.get(), &ck, &cv, MDB_SET_RANGE);
    for (uint32_t c = 0; c < count; ++c) {
      if (rc == MDB_NOTFOUND) break;
      if (rc) {
        error = lmdb_error("read body", rc);
        return nullptr;
      }
      auto expect = schema::make_chunk_key(id, c);
      if (ck.mv_size != expect.size() || std::memcmp(ck.mv_data, expect.data(), expect.size()) != 0) break;
      v->chunks.emplace_back(static_cast<const char*>(cv.mv_data), cv.mv_size);
      total += cv.mv_size;
      rc = mdb_cursor_get(cur.get(), &ck, &cv, MDB_NEXT);
    }
    if (v->chunks.size() != count || total != size) {
      error = "message " + id.text() + ": body does not match its record";
      return nullptr;
    }
  }  // the cursor closes before the transaction moves to the view
  v->txn_ = txn.release();
  v->open_count_ = &open_views_;
  open_views_.fetch_add(1, std::memory_order_relaxed);
  return v;
}

}  // namespace sluice::store
