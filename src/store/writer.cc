// writer.cc: the store's writer thread: producers' lanes, and the group commit of every write kind.
// Untrusted input: request contents from producers (stored as bytes by the apply steps).
#include <lmdb.h>

#include <algorithm>
#include <chrono>
#include <utility>

#include "metrics/daemon.h"
#include "store/lane.h"
#include "store/store.h"
#include "store/txn.h"
#include "store/write.h"

namespace sluice::store {

namespace {

// By write_kind; the order of write_kind is the order within a transaction.
const write_handler* const handlers[write_kinds] = {&submit_handler, &categorize_handler,
                                                    &deliver_handler, &reroute_handler, &report_handler,
                                                    &control_handler};

const write_handler& handler_of(const write_op& op) { return *handlers[index_of(op.kind())]; }

// The map as the reserve arithmetic sees it, in pages.
struct map_pages {
  uint64_t total = 0;       // the map size
  uint64_t high_water = 0;  // the highest page the file has used, + 1
  uint64_t page_size = 0;
  uint64_t reserve = 0;     // kept free for deletions: 1/64 of the map, at least 32
};

map_pages pages_of(MDB_env* env) {
  MDB_envinfo info;
  mdb_env_info(env, &info);
  MDB_stat st;
  mdb_env_stat(env, &st);
  map_pages p;
  p.page_size = st.ms_psize;
  p.total = info.me_mapsize / st.ms_psize;
  p.high_water = info.me_last_pgno + 1;
  p.reserve = std::max<uint64_t>(32, p.total / 64);
  return p;
}

// Pages a batch of `requests` held-back requests may still use before touching the
// reserve, or UINT64_MAX when the file's high-water mark is far enough from the map's
// end that the answer cannot matter (the common case, which costs no transaction).
// Otherwise the freelist is walked in a short read transaction, because freed pages
// below the high-water mark are reusable.
uint64_t free_page_budget(MDB_env* env, const map_pages& map, std::size_t requests) {
  // Generous slack: up to 64 pages per request plus 32 MiB for one large message.
  const uint64_t slack = map.reserve + 64 * (requests + 1) + (uint64_t{32} << 20) / map.page_size;
  if (map.high_water + slack < map.total) return UINT64_MAX;
  txn_guard txn;
  if (txn.begin(env, MDB_RDONLY) != 0) return UINT64_MAX;  // let LMDB decide
  const uint64_t free_pages = freelist_pages(txn.get());
  const uint64_t in_use = map.high_water > free_pages ? map.high_water - free_pages : 0;
  return in_use + map.reserve >= map.total ? 0 : map.total - map.reserve - in_use;
}

}  // namespace

void queue_store::start_writer() {
  stopping_.store(false);
  lanes_.clear();
  for (unsigned p = 0; p < options_.producers; ++p) lanes_.push_back(std::make_unique<lane>());
  writer_ = std::thread([this] { writer_main(); });
}

void queue_store::stop_writer() {
  if (!writer_.joinable()) return;
  stopping_.store(true, std::memory_order_release);
  wake_writer();
  writer_.join();
}

void queue_store::wake_writer() {
  // The release increment orders the push before the writer's acquire load; the writer
  // either sees the new value and skips the wait, or is woken from it.
  wake_seq_.fetch_add(1, std::memory_order_release);
  wake_seq_.notify_one();
}

bool queue_store::post(unsigned producer, write_op* op) {
  if (producer >= lanes_.size() || op == nullptr) return false;
  if (!lanes_[producer]->post(op)) return false;
  wake_writer();
  return true;
}

void queue_store::writer_main() {
  metrics::histogram& batch_sizes = metrics::daemon().commit_batch_size.get();
  metrics::histogram& commit_seconds = metrics::daemon().commit_duration.get();
  std::vector<write_op*> batch;   // in the order popped, paired with `owner`
  std::vector<unsigned> owner;    // the lane each request came from
  std::vector<bool> touched(lanes_.size());
  write_op* buf[64];
  batch.reserve(ring_capacity);
  for (;;) {
    const uint64_t seen = wake_seq_.load(std::memory_order_acquire);
    batch.clear();
    owner.clear();
    for (unsigned p = 0; p < lanes_.size(); ++p) {
      std::size_t n;
      while ((n = lanes_[p]->collect(buf, 64)) != 0) {
        batch.insert(batch.end(), buf, buf + n);
        owner.insert(owner.end(), n, p);
      }
    }
    if (batch.empty()) {
      if (stopping_.load(std::memory_order_acquire)) return;
      wake_seq_.wait(seen, std::memory_order_acquire);
      continue;
    }
    const auto commit_start = std::chrono::steady_clock::now();
    commit(batch);
    commit_seconds.observe(std::chrono::duration<double>(std::chrono::steady_clock::now() - commit_start).count());
    batch_sizes.observe(static_cast<double>(batch.size()));
    // Replies only now, after the commit holding every request of the batch returned.
    std::fill(touched.begin(), touched.end(), false);
    for (std::size_t i = 0; i < batch.size(); ++i) {
      lanes_[owner[i]]->complete(batch[i]);
      touched[owner[i]] = true;
    }
    if (options_.notify)
      for (unsigned p = 0; p < touched.size(); ++p)
        if (touched[p]) options_.notify(p);
  }
}

// Writes the whole batch, every kind together, in one transaction (one fsync for all of
// it), and sets every request's result. If that transaction fails for want of room
// (map or transaction full) or on a duplicate key, each kind is retried in transactions
// of its own by its retry policy, so that one huge message does not fail the small ones
// that would still fit.
void queue_store::commit(const std::vector<write_op*>& batch) {
  // Grouped by kind in apply order, and in key order within a kind so put_ordered can
  // append. `batch` keeps its order because the caller pairs it with each request's lane.
  std::vector<write_op*> sorted(batch);
  std::sort(sorted.begin(), sorted.end(), [](const write_op* a, const write_op* b) {
    return a->kind() != b->kind() ? a->kind() < b->kind() : a->id < b->id;
  });
  hold_back(sorted);
  if (sorted.empty()) return;
  std::vector<uint8_t> codes;
  const int rc = write_ops(sorted.data(), sorted.size(), codes);
  if (rc == 0) {
    for (std::size_t i = 0; i < sorted.size(); ++i) handler_of(*sorted[i]).finish(*sorted[i], 0, codes[i]);
    return;
  }
  // MDB_TXN_FULL: the batch dirtied more pages than one LMDB transaction may hold (a big
  // categorize batch inserting all over a large delivery tree); smaller ones will fit.
  if (rc == MDB_MAP_FULL || rc == MDB_KEYEXIST || rc == MDB_TXN_FULL) {
    for (std::size_t lo = 0; lo < sorted.size();) {
      std::size_t hi = lo + 1;
      while (hi < sorted.size() && sorted[hi]->kind() == sorted[lo]->kind()) ++hi;
      retry_alone(sorted.data() + lo, hi - lo, codes);
      lo = hi;
    }
    return;
  }
  for (auto* op : sorted) handler_of(*op).finish(*op, rc, 0);
}

// Finishes and removes from `ops` the requests that must not be tried: those larger than
// the map could hold even empty (too_large_for_map: a permanent failure), and those
// that would eat into a reserve of free pages kept for deletions (LMDB copies pages on
// write, so a map filled to the last page cannot even remove a message to make room;
// they get storage_full). Kinds without a reserve_pages step (categorizations, delivery
// outcomes) are not held back: they are what lets the queue drain.
void queue_store::hold_back(std::vector<write_op*>& ops) const {
  const std::size_t checked = static_cast<std::size_t>(
      std::count_if(ops.begin(), ops.end(), [](const write_op* op) { return handler_of(*op).reserve_pages; }));
  if (checked == 0) return;
  const map_pages map = pages_of(env_);
  const uint64_t capacity = map.total > map.reserve ? map.total - map.reserve : 0;
  const std::size_t chunk = std::max<std::size_t>(chunk_size_, 1);
  uint64_t budget = free_page_budget(env_, map, checked);
  // Compacted in place: this runs for every commit, and usually drops nothing.
  std::size_t kept = 0;
  for (auto* op : ops) {
    const write_handler& h = handler_of(*op);
    if (h.reserve_pages) {
      const uint64_t need = h.reserve_pages(*op, chunk);
      if (need > capacity) {
        h.finish(*op, MDB_MAP_FULL, too_large_for_map);
        continue;
      }
      if (need > budget) {
        h.finish(*op, MDB_MAP_FULL, 0);
        op->error = "queue store is full (keeping free pages in reserve)";
        continue;
      }
      if (budget != UINT64_MAX) budget -= need;
    }
    ops[kept++] = op;
  }
  ops.resize(kept);
}

// Retries ops[0..n), all of one kind, without the rest of their batch.
void queue_store::retry_alone(write_op* const* ops, std::size_t n, std::vector<uint8_t>& codes) {
  const write_handler& h = handler_of(*ops[0]);
  if (h.retry == retry_policy::one_by_one) {
    std::vector<write_op*> one;
    for (std::size_t i = 0; i < n; ++i) {
      // Each retry keeps the reserve too: the requests that did not fit together are
      // exactly the ones that would otherwise fill the map to its last page.
      one.assign(1, ops[i]);
      hold_back(one);
      if (one.empty()) continue;
      const int rc = write_ops(ops + i, 1, codes);
      h.finish(*ops[i], rc, codes[0]);
    }
    return;
  }
  std::vector<std::pair<std::size_t, std::size_t>> ranges{{0, n}};
  while (!ranges.empty()) {
    auto [lo, hi] = ranges.back();
    ranges.pop_back();
    if (lo == hi) continue;
    const int part = write_ops(ops + lo, hi - lo, codes);
    if ((part == MDB_MAP_FULL || part == MDB_TXN_FULL) && hi - lo > 1) {
      const std::size_t mid = lo + (hi - lo) / 2;
      ranges.emplace_back(mid, hi);
      ranges.emplace_back(lo, mid);
      continue;
    }
    for (std::size_t i = lo; i < hi; ++i) h.finish(*ops[i], part, codes[i - lo]);
  }
}

// One write transaction for ops[0..n), which are grouped by kind in apply order: each
// kind's apply step in turn, then the commit, which is the durability point (it returns
// after fsync). codes[i] is ops[i]'s outcome code for finish(). Nonzero: nothing of it
// was written.
int queue_store::write_ops(write_op* const* ops, std::size_t n, std::vector<uint8_t>& codes) {
  codes.assign(n, 0);
  txn_guard txn;
  int rc = txn.begin(env_, 0);
  if (rc) return rc;
  const write_txn w{txn.get(), *dbi_, chunk_size_};
  for (std::size_t lo = 0; lo < n;) {
    std::size_t hi = lo + 1;
    while (hi < n && ops[hi]->kind() == ops[lo]->kind()) ++hi;
    rc = handler_of(*ops[lo]).apply(w, std::span<write_op* const>(ops + lo, hi - lo),
                                    std::span<uint8_t>(codes.data() + lo, hi - lo));
    if (rc) return rc;
    lo = hi;
  }
  return txn.commit();
}

}  // namespace sluice::store
