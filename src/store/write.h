// write.h: what one kind of write operation contributes to the writer's group commit (writer.cc).
// Untrusted input: request contents from producers (stored as bytes) and records read back.
#pragma once
#include <lmdb.h>

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "base/queue_id.h"
#include "smtp/envelope.h"
#include "store/env.h"
#include "store/record.h"
#include "store/write_op.h"

namespace sluice::store {

// The open write transaction an apply step writes into.
struct write_txn {
  MDB_txn* txn;
  const databases& db;
  std::size_t chunk_size;  // body chunk size for this page size (schema.h)
};

// How a request is tried again when its batch's transaction failed with MDB_MAP_FULL,
// MDB_KEYEXIST or MDB_TXN_FULL, each kind in transactions of its own:
enum class retry_policy : uint8_t {
  one_by_one,  // one transaction per request: one huge request fails alone
  halving,     // the kind's requests together, split in halves while MAP_FULL/TXN_FULL
               // persists: one fsync per request would stall the writer for seconds
};

// How far into the free-page reserve (writer.cc) a kind that is held back by it may go.
enum class reserve_use : uint8_t {
  none,        // never held back (reserve_pages is null): it frees space and drains the store
  keep_all,    // new mail or moved mail: it leaves the whole reserve to the writes that drain
  upper_half,  // a DSN that takes its original's report entries (and often the original) with
               // it: it may use half of the reserve's fixed part, so a store full of mail that
               // waits only for its reports still drains
};

// One kind's part of the group commit; writer.cc holds one per write_kind and calls them
// on the writer thread. A new operation is one of these in a file of its own.
struct write_handler {
  // Applies ops (all of this kind, sorted by id) inside w's transaction. codes[i] (0 on
  // entry) may record an outcome for finish() after a successful commit, such as a
  // request skipped as invalid. An LMDB error returned aborts the whole transaction,
  // every kind's part of it, so each request is applied entirely or not at all.
  int (*apply)(const write_txn& w, std::span<write_op* const> ops, std::span<uint8_t> codes);
  // Sets the result (and `error` when it is a failure) of a request whose transaction
  // ended with `rc`: 0 when it committed and is durable, with the request's code.
  void (*finish)(write_op& op, int rc, uint8_t code);
  // Pages one request may allocate, for the free-page reserve (writer.cc): a request
  // that would eat into the reserve is finished with MDB_MAP_FULL without being tried.
  // Null for kinds that are never held back: those that free space and let the queue
  // drain (categorize deletes the submission entry).
  uint64_t (*reserve_pages)(const write_op& op, std::size_t chunk_size);
  retry_policy retry;
  reserve_use reserve;
  // Its reserve_pages are a new message's (submit, a report's DSN): the largest such admitted
  // raises the reserve by as much, since categorizing it may rewrite its whole body.
  bool adds_message;
};

// The code finish() gets with MDB_MAP_FULL for a request that could not fit even in an
// empty map: a permanent failure, not a full queue.
inline constexpr uint8_t too_large_for_map = 1;

extern const write_handler submit_handler;      // submit.cc
extern const write_handler categorize_handler;  // categorize.cc
extern const write_handler deliver_handler;     // deliver.cc
extern const write_handler reroute_handler;     // reroute.cc
extern const write_handler report_handler;      // report.cc
extern const write_handler control_handler;     // control.cc

// Stores one new message as submit does (submit.cc): envelope record (meta's body_size
// and body_chunks are set from `body` and the chunk size), body chunks and submission
// entry. The "recipients" counter and the id floor are the caller's, once per batch.
// MDB_KEYEXIST when `id` is already stored. `record` is scratch space, reused.
int put_message(const write_txn& w, base::queue_id id, const smtp::envelope& envelope, message_metadata meta,
                std::string_view body, std::string& record);
// Pages put_message may allocate for a body of `body_size` bytes (reserve_pages).
uint64_t message_pages(std::size_t body_size, std::size_t chunk_size);

}  // namespace sluice::store
