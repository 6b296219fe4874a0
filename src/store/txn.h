// txn.h: RAII for LMDB transactions and cursors, and the small helpers every store file uses inside them.
// Untrusted input: values read back from the LMDB file (sizes are checked before use).
#pragma once
#include <lmdb.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>

#include "base/queue_id.h"
#include "store/record.h"

namespace sluice::store {

struct databases;  // env.h

// Aborts unless committed. For read-only transactions abort is the normal end.
class txn_guard {
 public:
  txn_guard() = default;
  ~txn_guard() { abort(); }
  txn_guard(const txn_guard&) = delete;
  txn_guard& operator=(const txn_guard&) = delete;
  int begin(MDB_env* env, unsigned flags) { return mdb_txn_begin(env, nullptr, flags, &txn_); }
  int commit() {
    int rc = mdb_txn_commit(txn_);  // frees the txn whether or not it succeeds
    txn_ = nullptr;
    return rc;
  }
  void abort() {
    if (txn_) mdb_txn_abort(txn_);
    txn_ = nullptr;
  }
  MDB_txn* get() const { return txn_; }
  // Hands the transaction to a new owner (a message_view), which must end it.
  MDB_txn* release() { return std::exchange(txn_, nullptr); }

 private:
  MDB_txn* txn_ = nullptr;
};

// Declare it after its txn_guard so it closes first (read-only transactions require
// an explicit cursor close).
class cursor_guard {
 public:
  cursor_guard() = default;
  ~cursor_guard() {
    if (cur_) mdb_cursor_close(cur_);
  }
  cursor_guard(const cursor_guard&) = delete;
  cursor_guard& operator=(const cursor_guard&) = delete;
  int open(MDB_txn* txn, MDB_dbi dbi) { return mdb_cursor_open(txn, dbi, &cur_); }
  MDB_cursor* get() const { return cur_; }

 private:
  MDB_cursor* cur_ = nullptr;
};

inline MDB_val val(const void* data, std::size_t size) {
  return MDB_val{size, const_cast<void*>(data)};
}
template <std::size_t N>
MDB_val val(const std::array<unsigned char, N>& key) {
  return val(key.data(), N);
}
inline std::string_view view(const MDB_val& v) {
  return {static_cast<const char*>(v.mv_data), v.mv_size};
}

inline std::string lmdb_error(const char* what, int rc) {
  return std::string(what) + ": " + mdb_strerror(rc);
}

// Begins a short read transaction; false with `error` set when the store is not open
// or LMDB refuses (reader table full, ...).
bool begin_read(MDB_env* env, txn_guard& txn, std::string& error);

// Big-endian u64 as stored in `meta`; a value of another size reads as 0.
uint64_t read_u64_be(const MDB_val& v);
std::array<unsigned char, 8> u64_be(uint64_t x);
std::array<unsigned char, 4> u32_be(uint32_t x);  // as stored in `refs`
// A u32 big-endian value (`refs`); out = 0 when missing or of another size.
int get_u32(MDB_txn* txn, MDB_dbi dbi, const MDB_val& key, uint32_t& out);

// Adds `delta` (two's complement) to a meta counter inside `txn`; never wraps below 0.
int add_counter(MDB_txn* txn, MDB_dbi dbi, const char* name, int64_t delta);
// Sets the u64 big-endian value `name` to `value` if that is higher (absent counts as 0).
int raise_u64(MDB_txn* txn, MDB_dbi dbi, const char* name, uint64_t value);
// The u64 big-endian value `name`, 0 if absent. MDB_NOTFOUND is not an error.
int read_u64(MDB_txn* txn, MDB_dbi dbi, const char* name, uint64_t& out);

// Deletes every chunk of `id` with a range scan, so it works even when the record
// that says how many chunks there are is corrupt or missing.
int delete_chunks(MDB_txn* txn, MDB_dbi bodies, base::queue_id id);

// Deletes a message nothing refers to any more: its envelope record (lowering the
// "recipients" counter by its recipient count when the record decodes) and its body
// chunks. A message already gone is not an error. Entries in other databases (refs,
// reports, submission) are the caller's.
int drop_message(MDB_txn* txn, const databases& db, base::queue_id id);

// ---- Shared by the write operations that place items on hops and drop references ----

// The hop id of next-hop key `key` (hop_names), or, for a key never seen, the next free
// id, recorded in hop_names and meta's next_hop_id (ids are never reused). The key must
// be non-empty and at most schema::max_hop_key_size.
int hop_id_for_key(MDB_txn* txn, const databases& db, std::string_view key, uint64_t& id);
// The stored record of hop `id`; `present` false (record untouched) when it is missing or
// does not decode. Only I/O errors are returned.
int read_hop(MDB_txn* txn, const databases& db, uint64_t id, hop_record& record, bool& present);
int write_hop(MDB_txn* txn, const databases& db, uint64_t id, const hop_record& record);
// One more item of `recipients` recipients from a message received at `received_at_ms`.
void add_item_to_hop(hop_record& h, std::size_t recipients, int64_t received_at_ms);
// The hop loses an item of `recipients` recipients (moved or removed). An emptied hop has
// nothing to retry or report, as after its last delivery; a suspension stays.
void remove_item_from_hop(hop_record& h, std::size_t recipients);

// Appends `entries` to the message's report list (`key` = its id key), creating it if
// absent; entries with at_ms 0 get `now_ms`, and a (recipient, action) pair the list
// already holds (or that `entries` gave before) is not added again. Adds 1 to `ref_delta`
// when the list is new (it holds a reference). A list that does not decode is replaced:
// its entries are unreadable anyway, and keeping it would block the item forever.
int append_reports(MDB_txn* txn, const databases& db, MDB_val key, std::span<const report_entry* const> entries,
                   int64_t now_ms, int64_t& ref_delta);
// Applies `ref_delta` to the message's reference count; the last reference deletes the
// message (drop_message) and sets `removed`. A message without a refs entry is never
// deleted here: its count is unknown (admin removal deletes it), and losing mail is
// worse than keeping an orphan.
int adjust_refs(MDB_txn* txn, const databases& db, base::queue_id id, MDB_val key, int64_t ref_delta,
                bool& removed);

// Puts with MDB_APPEND when the key sorts after the database's last key (the common
// case: ids are time-ordered and batches are sorted). Besides skipping the descent,
// an appending page split leaves the old leaf full instead of splitting it in half;
// without it every body page would settle half empty. Falls back to a normal put.
int put_ordered(MDB_txn* txn, MDB_dbi dbi, MDB_val* k, MDB_val* v, unsigned flags);

// Pages on LMDB's freelist as `txn` sees it: database 0, each value an ID list whose
// first word is its length in pages (the same walk as `mdb_stat -f`).
uint64_t freelist_pages(MDB_txn* txn);
// Of those, the pages later writes may take: LMDB reuses no page freed after the snapshot
// of a live reader (mdb_page_alloc), so those a long reader (a message_view writing a body
// to a socket) still sees are not counted. `txn` is the calling thread's read transaction
// on the newest snapshot (its own reader slot is skipped); readers are found in the lock table.
uint64_t reusable_free_pages(MDB_env* env, MDB_txn* txn);

}  // namespace sluice::store
