// submit.cc: the submit operation: a received message's envelope record, body chunks and submission entry.
// Untrusted input: envelopes and bodies from SMTP clients, stored as bytes, never interpreted.
#include <lmdb.h>

#include <algorithm>
#include <string>
#include <utility>

#include "store/lane.h"
#include "store/record.h"
#include "store/schema.h"
#include "store/store.h"
#include "store/txn.h"
#include "store/write.h"

namespace sluice::store {

bool queue_store::submit(unsigned producer, submit_request* req) { return hand_in(producer, req); }

std::size_t queue_store::take_completed(unsigned producer, submit_request** out, std::size_t max) {
  return take_back(producer, out, max);
}

int put_message(const write_txn& w, base::queue_id id, const smtp::envelope& envelope, message_metadata meta,
                std::string_view body, std::string& record) {
  const databases& d = w.db;
  const std::size_t chunk = w.chunk_size;
  meta.body_size = body.size();
  meta.body_chunks = static_cast<uint32_t>((body.size() + chunk - 1) / chunk);
  record = encode_record(envelope, meta);
  auto idk = schema::make_id_key(id);
  MDB_val k = val(idk), v = val(record.data(), record.size());
  int rc = put_ordered(w.txn, d.messages, &k, &v, MDB_NOOVERWRITE);
  if (rc) return rc;
  for (uint32_t c = 0; c < meta.body_chunks; ++c) {
    std::size_t off = std::size_t{c} * chunk;
    auto ck = schema::make_chunk_key(id, c);
    MDB_val kk = val(ck);
    MDB_val cv = val(body.data() + off, std::min(chunk, body.size() - off));
    if ((rc = put_ordered(w.txn, d.bodies, &kk, &cv, 0))) return rc;
  }
  MDB_val empty = val(nullptr, 0);
  return put_ordered(w.txn, d.submission, &k, &empty, 0);
}

namespace {

// Puts every message of the batch, then adds all their recipients to the counter once.
int apply_submit(const write_txn& w, std::span<write_op* const> ops, std::span<uint8_t>) {
  const databases& d = w.db;
  int rc = 0;
  int64_t recipients = 0;
  std::string record;
  for (write_op* op : ops) {
    const submit_request& r = static_cast<const submit_request&>(*op);
    message_metadata meta;
    meta.received_at_ms = r.received_at_ms;
    meta.connector = r.connector;
    meta.client_address = r.client_address;
    meta.client_helo = r.client_helo;
    meta.auth_user = r.auth_user;
    if ((rc = put_message(w, r.id, r.envelope, std::move(meta), r.body, record))) return rc;
    recipients += static_cast<int64_t>(r.envelope.recipients.size());
  }
  // ops are sorted by id: the last one is the batch's highest.
  if ((rc = raise_u64(w.txn, d.meta, schema::meta_id_floor, ops.back()->id.value))) return rc;
  return add_counter(w.txn, d.meta, schema::meta_recipients, recipients);
}

void finish_submit(write_op& op, int rc, uint8_t code) {
  auto& r = static_cast<submit_request&>(op);
  if (rc == 0) {
    r.result = submit_status::ok;
  } else if (rc == MDB_MAP_FULL && code == too_large_for_map) {
    r.result = submit_status::too_large;
    r.error = "message larger than the queue's map can ever hold";
  } else if (rc == MDB_MAP_FULL) {
    r.result = submit_status::storage_full;
    r.error = mdb_strerror(rc);
  } else {
    r.result = submit_status::failed;
    r.error = rc == MDB_KEYEXIST ? "duplicate queue id " + r.id.text() : std::string(mdb_strerror(rc));
  }
}

uint64_t submit_pages(const write_op& op, std::size_t chunk_size) {
  return message_pages(static_cast<const submit_request&>(op).body.size(), chunk_size);
}

}  // namespace

// Two chunks per leaf page, plus the record, submission entry and tree growth.
uint64_t message_pages(std::size_t body_size, std::size_t chunk_size) { return (body_size / chunk_size + 1) / 2 + 3; }

const write_handler submit_handler = {apply_submit, finish_submit, submit_pages,
                                      retry_policy::one_by_one, reserve_use::keep_all, true};

}  // namespace sluice::store
