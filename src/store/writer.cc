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

// The free-page reserve. LMDB copies every page it writes, so even a deletion needs free
// pages, and a map filled to its last page could not remove a message to make room: new
// mail is held back (storage_full, 452 4.3.1) while only the reserve is left, and the
// writes that drain the store (categorizations, delivery outcomes, removals, reports that
// only drop entries) may always use it. Its fixed part is a sixty-fourth of the map and at
// least drain_floor_pages (512 KiB of 4 KiB pages). The floor is measured, not derived: in
// tests/store/reserve_test.cc's flood into a 1 MiB map, with views held across commits as
// deliveries hold them (LMDB reuses no page freed after a live reader's snapshot, nor what
// the last commit freed, so every drain transaction meanwhile takes fresh pages), 64 and 96
// pages left categorizations and delivery outcomes without room and 128 did not. On top of
// it come the pages of the largest message admitted since the store opened: categorizing a
// message whose headers a rule edits writes its whole body anew before the old one is freed.
constexpr uint64_t drain_floor_pages = 128;

uint64_t fixed_reserve(uint64_t total_pages) { return std::max<uint64_t>(drain_floor_pages, total_pages / 64); }

// The map as the reserve arithmetic sees it, in pages.
struct map_pages {
  uint64_t total = 0;       // the map size
  uint64_t high_water = 0;  // the highest page the file has used, + 1
  uint64_t page_size = 0;
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
  return p;
}

// Pages the writes to come can allocate: those past the high-water mark and the freed ones
// LMDB will reuse (not those a live reader still sees), or UINT64_MAX when the high-water mark is more than `wanted` pages from the map's
// end, so the answer cannot matter (the common case, which costs no transaction).
uint64_t free_pages_now(MDB_env* env, const map_pages& map, uint64_t wanted) {
  if (map.high_water < map.total && wanted < map.total - map.high_water) return UINT64_MAX;
  txn_guard txn;
  if (txn.begin(env, MDB_RDONLY) != 0) return UINT64_MAX;  // let LMDB decide
  const uint64_t past_end = map.total > map.high_water ? map.total - map.high_water : 0;
  return past_end + reusable_free_pages(env, txn.get());
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
// the map could hold even empty, with their own rewrite and the reserve's fixed part
// (too_large_for_map: a permanent failure), and those that would eat into the free-page
// reserve (storage_full; see drain_floor_pages). Kinds without a reserve_pages step
// (categorizations, delivery outcomes, control) are never held back: they let the queue drain.
void queue_store::hold_back(std::vector<write_op*>& ops) {
  uint64_t wanted = 0;
  std::size_t checked = 0;
  const std::size_t chunk = std::max<std::size_t>(chunk_size_, 1);
  for (const write_op* op : ops)
    if (const write_handler& h = handler_of(*op); h.reserve_pages) {
      wanted += h.reserve_pages(*op, chunk);
      ++checked;
    }
  if (checked == 0) return;
  const map_pages map = pages_of(env_);
  const uint64_t fixed = fixed_reserve(map.total);
  const uint64_t capacity = map.total > fixed ? map.total - fixed : 0;
  // The largest message of the batch that could ever fit counts from the start: a
  // request admitted before it must leave room to rewrite it too.
  uint64_t largest = largest_message_pages_.load(std::memory_order_relaxed);
  for (const write_op* op : ops)
    if (const write_handler& h = handler_of(*op); h.reserve_pages && h.adds_message)
      if (const uint64_t need = h.reserve_pages(*op, chunk); 2 * need <= capacity) largest = std::max(largest, need);
  uint64_t available = free_pages_now(env_, map, wanted + fixed + largest + 64 * (checked + 1));
  // Compacted in place: this runs for every commit, and usually drops nothing.
  std::size_t kept = 0;
  for (auto* op : ops) {
    const write_handler& h = handler_of(*op);
    if (h.reserve_pages) {
      const uint64_t need = h.reserve_pages(*op, chunk);
      if ((h.adds_message ? 2 * need : need) > capacity) {
        h.finish(*op, MDB_MAP_FULL, too_large_for_map);
        continue;
      }
      const uint64_t keep = (h.reserve == reserve_use::upper_half ? fixed / 2 : fixed) + largest;
      if (available != UINT64_MAX) {
        if (need + keep > available) {
          h.finish(*op, MDB_MAP_FULL, 0);
          op->error = "queue store is full (keeping free pages in reserve)";
          continue;
        }
        available -= need;
      }
      if (h.adds_message && need > largest_message_pages_.load(std::memory_order_relaxed))
        largest_message_pages_.store(need, std::memory_order_relaxed);
    }
    ops[kept++] = op;
  }
  ops.resize(kept);
}

uint64_t queue_store::reserved_pages() const {
  if (env_ == nullptr) return 0;
  return fixed_reserve(pages_of(env_).total) + largest_message_pages_.load(std::memory_order_relaxed);
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
