// item_helpers.h: queue a message, record outcomes and read hops, items and stats back, for the deliver and reroute tests.
// Untrusted input: none (the tests write the store themselves).
#pragma once
#include <criterion/criterion.h>
#include <lmdb.h>

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "store/store.h"
#include "store_fixture.h"

namespace store_test {

namespace base = sluice::base;
namespace store = sluice::store;
using store::categorize_request;
using store::categorize_status;
using store::deliver_request;
using store::queue_store;

inline constexpr int64_t t0 = 1'800'000'000'000;  // the attempts' clock

// Submits one message with `rcpts` recipients and categorizes it into `items`
// (hop key, recipient indices) and `failed`; returns the request with hop ids set.
inline categorize_request queue_one(queue_store& s, base::queue_id id, std::size_t body, unsigned rcpts,
                             std::vector<store::delivery_item_spec> items,
                             std::vector<store::report_entry> failed = {}) {
  std::vector<store::submit_request> msgs{make_request(id, body, rcpts)};
  cr_assert(submit_all(s, 0, msgs));
  cr_assert_eq(msgs[0].result, store::submit_status::ok, "%s", msgs[0].error.c_str());
  std::vector<categorize_request> cats(1);
  cats[0].id = id;
  cats[0].received_at_ms = msgs[0].received_at_ms;
  cats[0].items = std::move(items);
  cats[0].failed = std::move(failed);
  cr_assert(categorize_all(s, 0, cats));
  cr_assert_eq(cats[0].result, categorize_status::ok, "%s", cats[0].error.c_str());
  return cats[0];
}

inline deliver_request outcome(uint64_t hop, base::queue_id id, std::vector<uint32_t> delivered,
                        std::vector<store::report_entry> failed = {}, int64_t now = t0,
                        int64_t next = t0 + 300'000, std::string last_error = "451 4.4.1 mx.example[192.0.2.1]: connection refused") {
  deliver_request r;
  r.id = id;
  r.hop_id = hop;
  r.delivered = std::move(delivered);
  r.failed = std::move(failed);
  r.now_ms = now;
  r.next_attempt_ms = next;
  r.last_error = std::move(last_error);
  return r;
}

inline deliver_request deliver_one(queue_store& s, deliver_request r) {
  std::vector<deliver_request> v{std::move(r)};
  cr_assert(deliver_all(s, 0, v));
  return std::move(v[0]);
}

inline store::report_entry refusal(uint32_t idx, int64_t at = 0) {
  return {idx, "5.1.1", "no such user", "mx.example[192.0.2.1]",
          "550 5.1.1 <rcpt" + std::to_string(idx) + "@example.com>: no such user", at};
}

inline store::hop_record hop_of(const queue_store& s, uint64_t hop_id) {
  store::hop_record out;
  bool found = false;
  std::string error;
  cr_assert(s.for_each_hop(
      [&](const store::hop_entry& e) {
        if (e.id == hop_id) out = e.record, found = true;
        return true;
      },
      error));
  cr_assert(found, "hop %llu has no record", static_cast<unsigned long long>(hop_id));
  return out;
}

inline std::map<base::queue_id, store::delivery_item_record> items_of(const queue_store& s, uint64_t hop_id) {
  std::map<base::queue_id, store::delivery_item_record> out;
  std::string error;
  cr_assert(s.for_each_item(hop_id, [&](base::queue_id id, const store::delivery_item_record& item) {
    out[id] = item;
    return true;
  }, error), "%s", error.c_str());
  return out;
}

// Writes into the closed store in `dir` as another program would: `value` under `key` in
// database `db` (created first with MDB_CREATE in `db_flags`), or, with `drop`, the whole
// database deleted. For records and layouts an older sluice left behind.
inline void put_raw(const std::string& dir, const char* db, const std::string& key, const std::string& value,
                    unsigned db_flags = 0, bool drop = false) {
  MDB_env* env = nullptr;
  cr_assert_eq(mdb_env_create(&env), 0);
  mdb_env_set_maxdbs(env, 16);
  cr_assert_eq(mdb_env_open(env, dir.c_str(), 0, 0640), 0);
  MDB_txn* txn = nullptr;
  cr_assert_eq(mdb_txn_begin(env, nullptr, 0, &txn), 0);
  MDB_dbi dbi;
  cr_assert_eq(mdb_dbi_open(txn, db, db_flags, &dbi), 0);
  MDB_val k{key.size(), const_cast<char*>(key.data())}, v{value.size(), const_cast<char*>(value.data())};
  cr_assert_eq(drop ? mdb_drop(txn, dbi, 1) : mdb_put(txn, dbi, &k, &v, 0), 0);
  cr_assert_eq(mdb_txn_commit(txn), 0);
  mdb_env_close(env);
}

inline store::store_stats stats_of(const queue_store& s) {
  std::string error;
  auto st = s.stats(error);
  cr_assert(st.has_value(), "%s", error.c_str());
  return *st;
}


}  // namespace store_test
