// env.h: the queue store's LMDB database handles, opened once by queue_store::open (env.cc).
#pragma once
#include <lmdb.h>

namespace sluice::store {

// Database handles (schema.h names them). `present` is false only in read-only mode
// before the daemon ever created the databases; readers then see an empty store.
struct databases {
  bool present = false;
  // False only read-only on a store written before the categorizer existed.
  bool categorizer_present = false;
  MDB_dbi messages = 0, bodies = 0, submission = 0, meta = 0;
  MDB_dbi hop_names = 0, hops = 0, delivery = 0, refs = 0, reports = 0;
};

}  // namespace sluice::store
