// store.cc: LMDB environment, group-commit writer thread, readers and removal for the queue store.
// Untrusted input: envelopes/bodies from SMTP clients (stored as bytes) and records read back.
#include "store/store.h"

#include <lmdb.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <system_error>
#include <unordered_map>

#include "ring/spsc_ring.h"
#include "store/schema.h"

namespace sluice::store {

namespace {

// RAII for a transaction: aborts unless committed. For read-only transactions abort is
// the normal end.
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

 private:
  MDB_txn* txn_ = nullptr;
};

// RAII for a cursor; declare it after its txn_guard so it closes first (read-only
// transactions require explicit cursor close).
class cursor_guard {
 public:
  ~cursor_guard() {
    if (cur_) mdb_cursor_close(cur_);
  }
  int open(MDB_txn* txn, MDB_dbi dbi) { return mdb_cursor_open(txn, dbi, &cur_); }
  MDB_cursor* get() const { return cur_; }

 private:
  MDB_cursor* cur_ = nullptr;
};

MDB_val val(const void* data, std::size_t size) {
  return MDB_val{size, const_cast<void*>(data)};
}
template <std::size_t N>
MDB_val val(const std::array<unsigned char, N>& key) {
  return val(key.data(), N);
}
std::string_view view(const MDB_val& v) {
  return {static_cast<const char*>(v.mv_data), v.mv_size};
}

std::string lmdb_error(const char* what, int rc) {
  return std::string(what) + ": " + mdb_strerror(rc);
}

// Begins a short read transaction; false with `error` set when the store is not open
// or LMDB refuses (reader table full, ...).
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

// Adds `delta` (two's complement) to a meta counter inside `txn`.
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

// Deletes every chunk of `id` with a range scan, so it works even when the record
// that says how many chunks there are is corrupt or missing.
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

// Puts with MDB_APPEND when the key sorts after the database's last key (the common
// case: ids are time-ordered and batches are sorted). Besides skipping the descent,
// an appending page split leaves the old leaf full instead of splitting it in half;
// without it every body page would settle half empty. Falls back to a normal put.
int put_ordered(MDB_txn* txn, MDB_dbi dbi, MDB_val* k, MDB_val* v, unsigned flags) {
  int rc = mdb_put(txn, dbi, k, v, flags | MDB_APPEND);
  if (rc == MDB_KEYEXIST) rc = mdb_put(txn, dbi, k, v, flags);
  return rc;
}

}  // namespace

// Database handles. `present` is false only in read-only mode before the daemon ever
// created the databases; readers then see an empty store.
struct queue_store::dbis {
  bool present = false;
  // False only read-only on a store written before the categorizer existed.
  bool categorizer_present = false;
  MDB_dbi messages = 0, bodies = 0, submission = 0, meta = 0;
  MDB_dbi hop_names = 0, hops = 0, delivery = 0, refs = 0, failed = 0;
};

// One producer's pair of rings. The in-flight count is touched only on the producer's
// thread (submit and take_completed), so it needs no atomic; bounding it by the ring
// capacity guarantees the completion ring always has room, so the writer never has to
// wait for a producer.
struct queue_store::lane {
  ring::spsc_ring<submit_request*, ring_capacity> to_writer;
  ring::spsc_ring<submit_request*, ring_capacity> to_producer;
  ring::spsc_ring<categorize_request*, categorize_capacity> cat_to_writer;
  ring::spsc_ring<categorize_request*, categorize_capacity> cat_to_producer;
  alignas(ring::ring_line_size) std::size_t in_flight = 0;
  std::size_t cat_in_flight = 0;
};

queue_store::queue_store() = default;
queue_store::~queue_store() { close(); }

bool queue_store::open(store_options options, std::string& error) {
  if (env_) {
    error = "queue store already open";
    return false;
  }
  options_ = std::move(options);
  if (options_.producers == 0) options_.producers = 1;
  const bool ro = options_.read_only;
  std::error_code ec;
  if (ro) {
    if (!std::filesystem::is_directory(options_.dir, ec)) {
      error = "no queue directory at " + options_.dir;
      return false;
    }
    if (!std::filesystem::exists(std::filesystem::path(options_.dir) / "data.mdb", ec)) {
      error = "no queue store in " + options_.dir + " (data.mdb missing)";
      return false;
    }
  } else {
    std::filesystem::create_directories(options_.dir, ec);
    if (ec) {
      error = "cannot create queue directory " + options_.dir + ": " + ec.message();
      return false;
    }
  }

  MDB_env* env = nullptr;
  int rc = mdb_env_create(&env);
  if (rc) {
    error = lmdb_error("mdb_env_create", rc);
    return false;
  }
  std::unique_ptr<MDB_env, void (*)(MDB_env*)> env_owner(env, mdb_env_close);
  mdb_env_set_maxdbs(env, schema::max_dbs);
  // A read-only opener leaves the map size to what the file's meta page records.
  if (!ro) {
    mdb_env_set_maxreaders(env, 256);
    rc = mdb_env_set_mapsize(env, options_.map_size);
    if (rc) {
      error = lmdb_error("mdb_env_set_mapsize", rc);
      return false;
    }
  }
  // MDB_NOTLS: read transactions are not tied to a thread's TLS slot, so a loop can
  // hand one to a delivery callback. No MDB_NOSYNC/MDB_NOMETASYNC: commit means fsync.
  unsigned flags = MDB_NOTLS | (ro ? MDB_RDONLY : 0u);
  rc = mdb_env_open(env, options_.dir.c_str(), flags, 0640);
  if (rc) {
    error = lmdb_error(("cannot open queue store in " + options_.dir).c_str(), rc);
    return false;
  }
  // Clear reader slots left by crashed processes (a killed sluicectl, a crashed
  // daemon): a stale slot pins old pages and the file grows until it is cleared.
  int dead = 0;
  mdb_reader_check(env, &dead);
  if (mdb_env_get_maxkeysize(env) < static_cast<int>(schema::chunk_key_size)) {
    error = "LMDB maximum key size is too small for the store's keys";
    return false;
  }
  MDB_stat st;
  mdb_env_stat(env, &st);
  chunk_size_ = schema::chunk_size_for_page(st.ms_psize);

  auto handles = std::make_unique<dbis>();
  {
    txn_guard txn;
    rc = txn.begin(env, ro ? MDB_RDONLY : 0);
    if (rc) {
      error = lmdb_error("cannot begin transaction", rc);
      return false;
    }
    unsigned dbflags = ro ? 0 : MDB_CREATE;
    struct {
      const char* name;
      MDB_dbi* out;
    } names[] = {{schema::messages_db, &handles->messages},
                 {schema::bodies_db, &handles->bodies},
                 {schema::submission_db, &handles->submission},
                 {schema::meta_db, &handles->meta}};
    handles->present = true;
    for (auto& n : names) {
      rc = mdb_dbi_open(txn.get(), n.name, dbflags, n.out);
      if (rc == MDB_NOTFOUND && ro) {
        handles->present = false;
        break;
      }
      if (rc) {
        error = lmdb_error((std::string("cannot open database ") + n.name).c_str(), rc);
        return false;
      }
    }
    struct {
      const char* name;
      MDB_dbi* out;
    } cat_names[] = {{schema::hop_names_db, &handles->hop_names},
                     {schema::hops_db, &handles->hops},
                     {schema::delivery_db, &handles->delivery},
                     {schema::refs_db, &handles->refs},
                     {schema::failed_db, &handles->failed}};
    handles->categorizer_present = handles->present;
    for (auto& n : cat_names) {
      if (!handles->present) break;
      rc = mdb_dbi_open(txn.get(), n.name, dbflags, n.out);
      if (rc == MDB_NOTFOUND && ro) {
        handles->categorizer_present = false;
        break;
      }
      if (rc) {
        error = lmdb_error((std::string("cannot open database ") + n.name).c_str(), rc);
        return false;
      }
    }
    // Committing (even a read-only txn) makes the handles usable by later transactions.
    rc = txn.commit();
    if (rc) {
      error = lmdb_error("cannot commit database creation", rc);
      return false;
    }
  }

  dbi_ = std::move(handles);
  env_ = env_owner.release();
  stopping_.store(false);
  if (!ro) {
    lanes_.clear();
    for (unsigned p = 0; p < options_.producers; ++p) lanes_.push_back(std::make_unique<lane>());
    writer_ = std::thread([this] { writer_main(); });
  }
  return true;
}

void queue_store::close() {
  if (writer_.joinable()) {
    stopping_.store(true, std::memory_order_release);
    wake_writer();
    writer_.join();
  }
  if (env_) {
    mdb_env_close(env_);
    env_ = nullptr;
  }
  dbi_.reset();
}

void queue_store::wake_writer() {
  // The release increment orders the push before the writer's acquire load; the writer
  // either sees the new value and skips the wait, or is woken from it.
  wake_seq_.fetch_add(1, std::memory_order_release);
  wake_seq_.notify_one();
}

bool queue_store::submit(unsigned producer, submit_request* req) {
  if (producer >= lanes_.size() || req == nullptr) return false;
  lane& l = *lanes_[producer];
  if (l.in_flight == ring_capacity) return false;
  req->result = submit_status::pending;
  req->error.clear();
  if (!l.to_writer.push(req)) return false;  // cannot happen while in_flight < capacity
  ++l.in_flight;
  wake_writer();
  return true;
}

std::size_t queue_store::take_completed(unsigned producer, submit_request** out,
                                        std::size_t max) {
  if (producer >= lanes_.size()) return 0;
  lane& l = *lanes_[producer];
  std::size_t n = l.to_producer.pop_batch(out, max);
  l.in_flight -= n;
  return n;
}

bool queue_store::categorize(unsigned producer, categorize_request* req) {
  if (producer >= lanes_.size() || req == nullptr) return false;
  lane& l = *lanes_[producer];
  if (l.cat_in_flight == categorize_capacity) return false;
  req->result = categorize_status::pending;
  req->error.clear();
  if (!l.cat_to_writer.push(req)) return false;
  ++l.cat_in_flight;
  wake_writer();
  return true;
}

std::size_t queue_store::take_categorized(unsigned producer, categorize_request** out,
                                          std::size_t max) {
  if (producer >= lanes_.size()) return 0;
  lane& l = *lanes_[producer];
  std::size_t n = l.cat_to_producer.pop_batch(out, max);
  l.cat_in_flight -= n;
  return n;
}

void queue_store::writer_main() {
  std::vector<submit_request*> batch;
  std::vector<unsigned> owner;
  std::vector<categorize_request*> cats;
  std::vector<unsigned> cat_owner;
  std::vector<bool> touched(lanes_.size());
  submit_request* buf[64];
  categorize_request* cbuf[64];
  batch.reserve(ring_capacity);
  for (;;) {
    const uint64_t seen = wake_seq_.load(std::memory_order_acquire);
    batch.clear();
    owner.clear();
    cats.clear();
    cat_owner.clear();
    for (unsigned p = 0; p < lanes_.size(); ++p) {
      std::size_t n;
      while ((n = lanes_[p]->to_writer.pop_batch(buf, 64)) != 0) {
        batch.insert(batch.end(), buf, buf + n);
        owner.insert(owner.end(), n, p);
      }
      while ((n = lanes_[p]->cat_to_writer.pop_batch(cbuf, 64)) != 0) {
        cats.insert(cats.end(), cbuf, cbuf + n);
        cat_owner.insert(cat_owner.end(), n, p);
      }
    }
    if (batch.empty() && cats.empty()) {
      if (stopping_.load(std::memory_order_acquire)) return;
      wake_seq_.wait(seen, std::memory_order_acquire);
      continue;
    }
    write_mixed(batch, cats);
    std::fill(touched.begin(), touched.end(), false);
    for (std::size_t i = 0; i < batch.size(); ++i) {
      // Cannot fail: a producer never has more than ring_capacity requests in flight.
      lanes_[owner[i]]->to_producer.push(batch[i]);
      touched[owner[i]] = true;
    }
    for (std::size_t i = 0; i < cats.size(); ++i) {
      lanes_[cat_owner[i]]->cat_to_producer.push(cats[i]);
      touched[cat_owner[i]] = true;
    }
    if (options_.notify)
      for (unsigned p = 0; p < touched.size(); ++p)
        if (touched[p]) options_.notify(p);
  }
}

// Writes the whole batch, submissions and categorizations together, in one transaction
// (one fsync for all of it). If the map is full, every request is retried in a
// transaction of its own so that one huge message does not fail the small ones that
// would still fit.
void queue_store::write_batch(std::vector<submit_request*>& batch) {
  std::vector<categorize_request*> none;
  write_mixed(batch, none);
}

void queue_store::write_mixed(std::vector<submit_request*>& batch,
                              std::vector<categorize_request*>& cats) {
  // Write in key order so put_ordered can append; `batch` keeps its order because the
  // caller pairs it with the producer of each request.
  std::vector<submit_request*> sorted(batch);
  std::sort(sorted.begin(), sorted.end(),
            [](const submit_request* a, const submit_request* b) { return a->id < b->id; });
  std::vector<categorize_request*> csorted(cats);
  std::sort(csorted.begin(), csorted.end(),
            [](const categorize_request* a, const categorize_request* b) { return a->id < b->id; });
  // Keep a reserve of free pages for deletions: LMDB copies pages on write, so a map
  // filled to the last page cannot even remove a message to make room. Requests that
  // would eat into the reserve get storage_full without being tried. Categorizations
  // are not held back: they free the submission entry and are what lets the queue drain.
  const uint64_t chunk = std::max<std::size_t>(chunk_size_, 1);
  uint64_t budget = sorted.empty() ? UINT64_MAX : free_page_budget(sorted.size());
  if (budget != UINT64_MAX) {
    std::vector<submit_request*> fits;
    for (auto* r : sorted) {
      // Two chunks per leaf page, plus the record, submission entry and tree growth.
      uint64_t need = (r->body.size() / chunk + 1) / 2 + 3;
      if (need <= budget) {
        budget -= need;
        fits.push_back(r);
      } else {
        r->result = submit_status::storage_full;
        r->error = "queue store is full (keeping free pages in reserve)";
      }
    }
    sorted.swap(fits);
  }
  if (sorted.empty() && csorted.empty()) return;
  std::vector<uint8_t> codes;
  int rc = write_requests(sorted.data(), sorted.size(), csorted.data(), csorted.size(), codes);
  auto finish_cats = [&](categorize_request* const* reqs, std::size_t n, int result) {
    for (std::size_t i = 0; i < n; ++i) {
      categorize_request* c = reqs[i];
      if (result == 0) {
        c->result = codes[i] == 1   ? categorize_status::not_queued
                    : codes[i] == 2 ? categorize_status::failed
                                    : categorize_status::ok;
        if (codes[i] == 2) c->error = "invalid next-hop key";
      } else if (result == MDB_MAP_FULL) {
        c->result = categorize_status::storage_full;
        c->error = mdb_strerror(result);
      } else {
        c->result = categorize_status::failed;
        c->error = mdb_strerror(result);
      }
    }
  };
  if (rc == 0) {
    for (auto* r : sorted) r->result = submit_status::ok;
    finish_cats(csorted.data(), csorted.size(), 0);
    return;
  }
  // MDB_TXN_FULL: the batch dirtied more pages than one LMDB transaction may hold (a big
  // categorize batch inserting all over a large delivery tree); smaller ones will fit.
  if (rc == MDB_MAP_FULL || rc == MDB_KEYEXIST || rc == MDB_TXN_FULL) {
    for (auto* r : sorted) {
      int one = write_requests(&r, 1, nullptr, 0, codes);
      if (one == 0) {
        r->result = submit_status::ok;
      } else if (one == MDB_MAP_FULL) {
        r->result = submit_status::storage_full;
        r->error = mdb_strerror(one);
      } else {
        r->result = submit_status::failed;
        r->error = one == MDB_KEYEXIST ? "duplicate queue id " + r->id.text()
                                       : std::string(mdb_strerror(one));
      }
    }
    // Categorizations are retried in halves rather than one by one: each transaction is
    // an fsync, and a few thousand of them would stall the writer for seconds.
    std::vector<std::pair<std::size_t, std::size_t>> ranges{{0, csorted.size()}};
    while (!ranges.empty()) {
      auto [lo, hi] = ranges.back();
      ranges.pop_back();
      if (lo == hi) continue;
      int part = write_requests(nullptr, 0, csorted.data() + lo, hi - lo, codes);
      if ((part == MDB_MAP_FULL || part == MDB_TXN_FULL) && hi - lo > 1) {
        const std::size_t mid = lo + (hi - lo) / 2;
        ranges.emplace_back(mid, hi);
        ranges.emplace_back(lo, mid);
        continue;
      }
      finish_cats(csorted.data() + lo, hi - lo, part);
    }
    return;
  }
  for (auto* r : sorted) {
    r->result = submit_status::failed;
    r->error = mdb_strerror(rc);
  }
  finish_cats(csorted.data(), csorted.size(), rc);
}

uint64_t queue_store::reserve_pages() const {
  MDB_envinfo info;
  mdb_env_info(env_, &info);
  MDB_stat st;
  mdb_env_stat(env_, &st);
  const uint64_t map_pages = info.me_mapsize / st.ms_psize;
  return std::max<uint64_t>(32, map_pages / 64);
}

// Pages a batch may still use before touching the reserve, or UINT64_MAX when the file's
// high-water mark is far enough from the map's end that the answer cannot matter (the
// common case, which costs no transaction). Otherwise the freelist is walked in a short
// read transaction, because freed pages below the high-water mark are reusable.
uint64_t queue_store::free_page_budget(std::size_t batch_size) const {
  MDB_envinfo info;
  mdb_env_info(env_, &info);
  MDB_stat st;
  mdb_env_stat(env_, &st);
  const uint64_t map_pages = info.me_mapsize / st.ms_psize;
  const uint64_t reserve = reserve_pages();
  const uint64_t high_water = info.me_last_pgno + 1;
  // Generous slack: up to 64 pages per request plus 32 MiB for one large message.
  const uint64_t slack = reserve + 64 * (batch_size + 1) + (uint64_t{32} << 20) / st.ms_psize;
  if (high_water + slack < map_pages) return UINT64_MAX;
  uint64_t free_pages = 0;
  txn_guard txn;
  if (txn.begin(env_, MDB_RDONLY) != 0) return UINT64_MAX;  // let LMDB decide
  cursor_guard cur;
  if (cur.open(txn.get(), 0) == 0) {
    MDB_val k, v;
    while (mdb_cursor_get(cur.get(), &k, &v, MDB_NEXT) == 0)
      if (v.mv_size >= sizeof(std::size_t)) free_pages += *static_cast<const std::size_t*>(v.mv_data);
  }
  const uint64_t in_use = high_water > free_pages ? high_water - free_pages : 0;
  return in_use + reserve >= map_pages ? 0 : map_pages - reserve - in_use;
}

int queue_store::write_requests(submit_request* const* reqs, std::size_t n,
                                categorize_request* const* cats, std::size_t m,
                                std::vector<uint8_t>& codes) {
  txn_guard txn;
  int rc = txn.begin(env_, 0);
  if (rc) return rc;
  const dbis& d = *dbi_;
  int64_t recipients = 0;
  std::string record;
  for (std::size_t i = 0; i < n; ++i) {
    const submit_request& r = *reqs[i];
    message_metadata meta;
    meta.received_at_ms = r.received_at_ms;
    meta.connector = r.connector;
    meta.client_address = r.client_address;
    meta.client_helo = r.client_helo;
    meta.auth_user = r.auth_user;
    meta.body_size = r.body.size();
    meta.body_chunks = static_cast<uint32_t>((r.body.size() + chunk_size_ - 1) / chunk_size_);
    record = encode_record(r.envelope, meta);
    auto idk = schema::make_id_key(r.id);
    MDB_val k = val(idk), v = val(record.data(), record.size());
    if ((rc = put_ordered(txn.get(), d.messages, &k, &v, MDB_NOOVERWRITE))) return rc;
    for (uint32_t c = 0; c < meta.body_chunks; ++c) {
      std::size_t off = std::size_t{c} * chunk_size_;
      auto ck = schema::make_chunk_key(r.id, c);
      MDB_val kk = val(ck);
      MDB_val cv = val(r.body.data() + off, std::min(chunk_size_, r.body.size() - off));
      if ((rc = put_ordered(txn.get(), d.bodies, &kk, &cv, 0))) return rc;
    }
    MDB_val empty = val(nullptr, 0);
    if ((rc = put_ordered(txn.get(), d.submission, &k, &empty, 0))) return rc;
    recipients += static_cast<int64_t>(r.envelope.recipients.size());
  }
  if (n != 0 && (rc = add_counter(txn.get(), d.meta, schema::meta_recipients, recipients)))
    return rc;
  if (m != 0 && (rc = write_categorizations(txn.get(), cats, m, codes))) return rc;
  return txn.commit();  // the durability point: returns after fsync
}

namespace {

// A hop record being updated by one transaction; written back once at its end, so a
// batch that puts many items on one hop rewrites its record once.
struct hop_update {
  uint64_t id = 0;
  hop_record record;
};

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

}  // namespace

// The categorize half of a write transaction. codes[i]: 0 written, 1 not queued (no
// submission entry: skipped), 2 invalid request (skipped). Any LMDB error aborts the
// whole transaction (the caller's txn_guard), so a message is categorized entirely or
// not at all.
int queue_store::write_categorizations(void* txn_ptr, categorize_request* const* reqs,
                                       std::size_t n, std::vector<uint8_t>& codes) {
  MDB_txn* txn = static_cast<MDB_txn*>(txn_ptr);
  const dbis& d = *dbi_;
  codes.assign(n, 0);
  std::unordered_map<std::string_view, hop_update> hops;
  std::string item_bytes;
  delivery_item_record item;
  int rc = 0;
  for (std::size_t i = 0; i < n; ++i) {
    categorize_request& r = *reqs[i];
    bool valid = true;
    for (const auto& it : r.items)
      if (it.hop_key.empty() || it.hop_key.size() > schema::max_hop_key_size) valid = false;
    if (!valid) {
      codes[i] = 2;
      continue;
    }
    auto idk = schema::make_id_key(r.id);
    MDB_val k = val(idk);
    rc = mdb_del(txn, d.submission, &k, nullptr);
    if (rc == MDB_NOTFOUND) {
      codes[i] = 1;
      continue;
    }
    if (rc) return rc;
    if (r.new_body) {
      // Header edits: the shared body is rewritten once, before any item refers to it.
      if ((rc = delete_chunks(txn, d.bodies, r.id))) return rc;
      const std::string& body = *r.new_body;
      for (uint32_t c = 0; std::size_t{c} * chunk_size_ < body.size(); ++c) {
        std::size_t off = std::size_t{c} * chunk_size_;
        auto ck = schema::make_chunk_key(r.id, c);
        MDB_val kk = val(ck), cv = val(body.data() + off, std::min(chunk_size_, body.size() - off));
        if ((rc = mdb_put(txn, d.bodies, &kk, &cv, 0))) return rc;
      }
    }
    if (!r.new_record.empty()) {
      MDB_val rv = val(r.new_record.data(), r.new_record.size());
      if ((rc = mdb_put(txn, d.messages, &k, &rv, 0))) return rc;
    }
    if (r.recipient_delta != 0 &&
        (rc = add_counter(txn, d.meta, schema::meta_recipients, r.recipient_delta)))
      return rc;
    for (auto& spec : r.items) {
      auto found = hops.find(spec.hop_key);
      if (found == hops.end()) {
        hop_update u;
        MDB_val nk = val(spec.hop_key.data(), spec.hop_key.size()), nv;
        rc = mdb_get(txn, d.hop_names, &nk, &nv);
        if (rc == 0 && nv.mv_size == 8) {
          u.id = schema::hop_id_of(static_cast<const unsigned char*>(nv.mv_data));
          auto hk = schema::make_hop_key(u.id);
          MDB_val hkv = val(hk), hv;
          std::string err;
          if (mdb_get(txn, d.hops, &hkv, &hv) != 0 || !decode_hop(view(hv), u.record, err))
            u.record = hop_record{};  // lost or damaged: counts restart from this item
        } else if (rc == 0 || rc == MDB_NOTFOUND) {
          MDB_val ck = val(schema::meta_next_hop_id, std::strlen(schema::meta_next_hop_id)), cv;
          rc = mdb_get(txn, d.meta, &ck, &cv);
          if (rc != 0 && rc != MDB_NOTFOUND) return rc;
          u.id = (rc == 0 ? read_u64_be(cv) : 0) + 1;
          if ((rc = add_counter(txn, d.meta, schema::meta_next_hop_id, 1))) return rc;
          auto idbytes = u64_be(u.id);
          MDB_val iv = val(idbytes);
          if ((rc = mdb_put(txn, d.hop_names, &nk, &iv, 0))) return rc;
        } else {
          return rc;
        }
        u.record.key = spec.hop_key;
        found = hops.emplace(std::string_view(spec.hop_key), std::move(u)).first;
      }
      hop_update& u = found->second;
      spec.hop_id = u.id;
      ++u.record.items;
      u.record.recipients += spec.recipients.size();
      if (u.record.oldest_ms == 0 || (r.received_at_ms != 0 && r.received_at_ms < u.record.oldest_ms))
        u.record.oldest_ms = r.received_at_ms;
      item.state = item_state::queued;
      item.attempts = 0;
      item.received_at_ms = r.received_at_ms;
      item.next_attempt_ms = 0;
      item.recipients.assign(spec.recipients.begin(), spec.recipients.end());
      encode_item(item, item_bytes);
      auto dk = schema::make_delivery_key(u.id, r.id);
      MDB_val dkv = val(dk), dv = val(item_bytes.data(), item_bytes.size());
      // Ids of one hop arrive in queue order, so this usually appends within the hop.
      if ((rc = mdb_put(txn, d.delivery, &dkv, &dv, 0))) return rc;
    }
    if (!r.failed.empty()) {
      std::string f = encode_failed(r.failed);
      MDB_val fv = val(f.data(), f.size());
      if ((rc = mdb_put(txn, d.failed, &k, &fv, 0))) return rc;
    }
    const uint32_t refs = static_cast<uint32_t>(r.items.size()) + (r.failed.empty() ? 0u : 1u);
    if (refs == 0) {
      // Nothing refers to the message (no recipients at all): drop it now.
      MDB_val v;
      if ((rc = mdb_get(txn, d.messages, &k, &v)) == 0) {
        smtp::envelope env;
        message_metadata meta;
        std::string err;
        if (decode_record(view(v), env, meta, err) && !env.recipients.empty())
          rc = add_counter(txn, d.meta, schema::meta_recipients,
                           -static_cast<int64_t>(env.recipients.size()));
        if (rc == 0) rc = mdb_del(txn, d.messages, &k, nullptr);
      }
      if (rc == MDB_NOTFOUND) rc = 0;
      if (rc == 0) rc = delete_chunks(txn, d.bodies, r.id);
      if (rc) return rc;
      continue;
    }
    unsigned char rb[4] = {static_cast<unsigned char>(refs >> 24), static_cast<unsigned char>(refs >> 16),
                           static_cast<unsigned char>(refs >> 8), static_cast<unsigned char>(refs)};
    MDB_val rv = val(rb, 4);
    if ((rc = put_ordered(txn, d.refs, &k, &rv, 0))) return rc;
  }
  for (auto& [key, u] : hops) {
    auto hk = schema::make_hop_key(u.id);
    MDB_val hkv = val(hk);
    std::string bytes = encode_hop(u.record);
    MDB_val hv = val(bytes.data(), bytes.size());
    if ((rc = mdb_put(txn, d.hops, &hkv, &hv, 0))) return rc;
  }
  return 0;
}

std::optional<store_stats> queue_store::stats(std::string& error) const {
  if (!env_) {
    error = "queue store not open";
    return std::nullopt;
  }
  store_stats s;
  MDB_envinfo info;
  mdb_env_info(env_, &info);
  s.map_size = info.me_mapsize;
  s.chunk_size = chunk_size_;
  std::error_code ec;
  auto fsize = std::filesystem::file_size(std::filesystem::path(options_.dir) / "data.mdb", ec);
  s.file_size = ec ? 0 : fsize;

  txn_guard txn;
  int rc = txn.begin(env_, MDB_RDONLY);
  if (rc) {
    error = lmdb_error("cannot begin read transaction", rc);
    return std::nullopt;
  }
  MDB_envinfo tinfo;
  mdb_env_info(env_, &tinfo);
  MDB_stat st;
  mdb_env_stat(env_, &st);
  s.pages.page_size = st.ms_psize;
  s.pages.pages_used = tinfo.me_last_pgno + 1;
  if (!dbi_->present) return s;
  const dbis& d = *dbi_;
  for (MDB_dbi dbi : {d.messages, d.bodies, d.submission, d.meta}) {
    if ((rc = mdb_stat(txn.get(), dbi, &st))) {
      error = lmdb_error("mdb_stat", rc);
      return std::nullopt;
    }
    s.pages.tree_pages += st.ms_branch_pages + st.ms_leaf_pages + st.ms_overflow_pages;
    s.pages.overflow_pages += st.ms_overflow_pages;
    if (dbi == d.messages) s.messages = st.ms_entries;
    if (dbi == d.submission) s.submission_queued = st.ms_entries;
  }
  if (d.categorizer_present) {
    for (MDB_dbi dbi : {d.hop_names, d.hops, d.delivery, d.refs, d.failed}) {
      if ((rc = mdb_stat(txn.get(), dbi, &st))) {
        error = lmdb_error("mdb_stat", rc);
        return std::nullopt;
      }
      s.pages.tree_pages += st.ms_branch_pages + st.ms_leaf_pages + st.ms_overflow_pages;
      s.pages.overflow_pages += st.ms_overflow_pages;
      if (dbi == d.delivery) s.delivery_items = st.ms_entries;
      if (dbi == d.hops) s.delivery_queues = st.ms_entries;
      if (dbi == d.failed) s.failed_messages = st.ms_entries;
    }
  }
  {
    // The freelist is database 0: each value is an ID list whose first word is its
    // length in pages (the same walk as `mdb_stat -f`).
    cursor_guard cur;
    if ((rc = cur.open(txn.get(), 0)) == 0) {
      MDB_val k, v;
      while (mdb_cursor_get(cur.get(), &k, &v, MDB_NEXT) == 0)
        if (v.mv_size >= sizeof(std::size_t))
          s.pages.free_pages += *static_cast<const std::size_t*>(v.mv_data);
    }
  }
  MDB_val k = val(schema::meta_recipients, std::strlen(schema::meta_recipients)), v;
  if (mdb_get(txn.get(), d.meta, &k, &v) == 0) s.recipients = read_u64_be(v);
  {
    cursor_guard cur;
    if ((rc = cur.open(txn.get(), d.messages)) == 0 &&
        mdb_cursor_get(cur.get(), &k, &v, MDB_FIRST) == 0) {
      smtp::envelope env;
      message_metadata meta;
      std::string err;
      if (decode_record(view(v), env, meta, err)) s.oldest_received_at_ms = meta.received_at_ms;
    }
  }
  return s;
}

bool queue_store::for_each_message(const message_visitor& fn, std::string& error) const {
  if (!env_) {
    error = "queue store not open";
    return false;
  }
  if (!dbi_->present) return true;
  struct item {
    base::queue_id id;
    smtp::envelope env;
    message_metadata meta;
  };
  constexpr std::size_t page = 256;
  std::vector<item> items;
  std::optional<base::queue_id> after;
  for (;;) {
    items.clear();
    {
      txn_guard txn;
      int rc = txn.begin(env_, MDB_RDONLY);
      if (rc) {
        error = lmdb_error("cannot begin read transaction", rc);
        return false;
      }
      cursor_guard cur;
      if ((rc = cur.open(txn.get(), dbi_->messages))) {
        error = lmdb_error("cannot open cursor", rc);
        return false;
      }
      MDB_val k, v;
      std::array<unsigned char, 8> start{};
      if (after) {
        start = after->key();
        k = val(start);
        rc = mdb_cursor_get(cur.get(), &k, &v, MDB_SET_RANGE);
        if (rc == 0 && k.mv_size == 8 && base::queue_id::from_key(k.mv_data) == *after)
          rc = mdb_cursor_get(cur.get(), &k, &v, MDB_NEXT);
      } else {
        rc = mdb_cursor_get(cur.get(), &k, &v, MDB_FIRST);
      }
      while (rc == 0 && items.size() < page) {
        if (k.mv_size != schema::id_key_size) {
          error = "message key of unexpected size";
          return false;
        }
        item it;
        it.id = base::queue_id::from_key(k.mv_data);
        std::string err;
        if (!decode_record(view(v), it.env, it.meta, err)) {
          error = "message " + it.id.text() + ": " + err;
          return false;
        }
        items.push_back(std::move(it));
        rc = mdb_cursor_get(cur.get(), &k, &v, MDB_NEXT);
      }
      if (rc != 0 && rc != MDB_NOTFOUND) {
        error = lmdb_error("cursor read", rc);
        return false;
      }
    }  // transaction ends before callbacks run
    for (auto& it : items)
      if (!fn(it.id, it.env, it.meta)) return true;
    if (items.size() < page) return true;
    after = items.back().id;
  }
}

std::optional<stored_message> queue_store::read_message(base::queue_id id,
                                                        std::string& error) const {
  error.clear();
  txn_guard txn;
  if (!begin_read(env_, txn, error)) return std::nullopt;
  if (!dbi_->present) return std::nullopt;
  int rc = 0;
  auto idk = schema::make_id_key(id);
  MDB_val k = val(idk), v;
  rc = mdb_get(txn.get(), dbi_->messages, &k, &v);
  if (rc == MDB_NOTFOUND) return std::nullopt;
  if (rc) {
    error = lmdb_error("read message", rc);
    return std::nullopt;
  }
  stored_message m;
  m.id = id;
  if (!decode_record(view(v), m.envelope, m.meta, error)) {
    error = "message " + id.text() + ": " + error;
    return std::nullopt;
  }
  if (m.meta.body_size > (uint64_t{1} << 40)) {
    error = "message " + id.text() + ": implausible body size";
    return std::nullopt;
  }
  m.body.reserve(m.meta.body_size);
  for (uint32_t c = 0; c < m.meta.body_chunks; ++c) {
    auto ck = schema::make_chunk_key(id, c);
    MDB_val kk = val(ck), cv;
    rc = mdb_get(txn.get(), dbi_->bodies, &kk, &cv);
    if (rc) {
      error = "message " + id.text() + ": body chunk " + std::to_string(c) + ": " +
              mdb_strerror(rc);
      return std::nullopt;
    }
    m.body.append(view(cv));
  }
  if (m.body.size() != m.meta.body_size) {
    error = "message " + id.text() + ": body size does not match its record";
    return std::nullopt;
  }
  return m;
}

std::optional<std::size_t> queue_store::remove(std::span<const base::queue_id> ids,
                                               std::string& error) {
  if (!env_ || options_.read_only) {
    error = env_ ? "queue store opened read-only" : "queue store not open";
    return std::nullopt;
  }
  const dbis& d = *dbi_;
  txn_guard txn;
  int rc = txn.begin(env_, 0);
  if (rc) {
    error = lmdb_error("cannot begin write transaction", rc);
    return std::nullopt;
  }
  std::size_t removed = 0;
  int64_t recipients = 0;
  for (base::queue_id id : ids) {
    auto idk = schema::make_id_key(id);
    MDB_val k = val(idk), v;
    rc = mdb_get(txn.get(), d.messages, &k, &v);
    if (rc == MDB_NOTFOUND) continue;
    if (rc == 0) {
      smtp::envelope env;
      message_metadata meta;
      std::string err;
      if (decode_record(view(v), env, meta, err))
        recipients -= static_cast<int64_t>(env.recipients.size());
      rc = mdb_del(txn.get(), d.messages, &k, nullptr);
    }
    if (rc == 0) rc = delete_chunks(txn.get(), d.bodies, id);
    if (rc == 0) {
      rc = mdb_del(txn.get(), d.submission, &k, nullptr);
      if (rc == MDB_NOTFOUND) rc = 0;
    }
    // Delivery items are keyed by hop first and are not found from here; removing a
    // categorized message is the delivery engine's job, which knows its items.
    for (MDB_dbi extra : {d.refs, d.failed}) {
      if (rc == 0) {
        rc = mdb_del(txn.get(), extra, &k, nullptr);
        if (rc == MDB_NOTFOUND) rc = 0;
      }
    }
    if (rc) {
      error = lmdb_error(("remove " + id.text()).c_str(), rc);
      return std::nullopt;
    }
    ++removed;
  }
  if (removed == 0) return 0;
  if ((rc = add_counter(txn.get(), d.meta, schema::meta_recipients, recipients)) ||
      (rc = txn.commit())) {
    error = lmdb_error("remove commit", rc);
    return std::nullopt;
  }
  return removed;
}

bool queue_store::remove(base::queue_id id, std::string& error) {
  auto n = remove(std::span<const base::queue_id>(&id, 1), error);
  return n && *n == 1;
}

bool queue_store::read_envelopes(std::span<const base::queue_id> ids, const envelope_visitor& fn,
                                 std::string& problems, std::string& error) const {
  txn_guard txn;
  if (!begin_read(env_, txn, error)) return false;
  if (!dbi_->present || ids.empty()) return true;
  int rc = 0;
  smtp::envelope env;
  message_metadata meta;
  std::string err;
  for (base::queue_id id : ids) {
    auto idk = schema::make_id_key(id);
    MDB_val k = val(idk), v;
    rc = mdb_get(txn.get(), dbi_->messages, &k, &v);
    if (rc == MDB_NOTFOUND) continue;
    if (rc) {
      error = lmdb_error("read message", rc);
      return false;
    }
    if (!decode_record(view(v), env, meta, err)) {
      problems += "message " + id.text() + ": " + err + "\n";
      continue;
    }
    fn(id, env, meta);
  }
  return true;
}

namespace {

// Pages through a database whose keys start with an 8-byte prefix (or are exactly 8
// bytes), one short read transaction per page, so a slow visitor never pins pages.
// `visit` gets key and value and returns false to stop.
template <typename Visit>
bool page_through(MDB_env* env, MDB_dbi dbi, const unsigned char* prefix, std::size_t prefix_len,
                  std::size_t key_len, Visit&& visit, std::string& error) {
  constexpr std::size_t page = 512;
  std::vector<std::pair<std::string, std::string>> rows;
  std::string after;
  bool first_page = true;
  for (;;) {
    rows.clear();
    {
      txn_guard txn;
      int rc = txn.begin(env, MDB_RDONLY);
      if (rc) {
        error = lmdb_error("cannot begin read transaction", rc);
        return false;
      }
      cursor_guard cur;
      if ((rc = cur.open(txn.get(), dbi))) {
        error = lmdb_error("cannot open cursor", rc);
        return false;
      }
      MDB_val k, v;
      std::string start = first_page ? std::string(reinterpret_cast<const char*>(prefix), prefix_len) : after;
      if (start.empty()) {
        rc = mdb_cursor_get(cur.get(), &k, &v, MDB_FIRST);
      } else {
        k = val(start.data(), start.size());
        rc = mdb_cursor_get(cur.get(), &k, &v, MDB_SET_RANGE);
        if (!first_page && rc == 0 && view(k) == after) rc = mdb_cursor_get(cur.get(), &k, &v, MDB_NEXT);
      }
      while (rc == 0 && rows.size() < page) {
        if (k.mv_size != key_len) {
          error = "key of unexpected size";
          return false;
        }
        if (prefix_len && std::memcmp(k.mv_data, prefix, prefix_len) != 0) {
          rc = MDB_NOTFOUND;
          break;
        }
        rows.emplace_back(std::string(view(k)), std::string(view(v)));
        rc = mdb_cursor_get(cur.get(), &k, &v, MDB_NEXT);
      }
      if (rc != 0 && rc != MDB_NOTFOUND) {
        error = lmdb_error("cursor read", rc);
        return false;
      }
    }
    for (const auto& [key, value] : rows)
      if (!visit(key, value)) return true;
    if (rows.size() < page) return true;
    after = rows.back().first;
    first_page = false;
  }
}

}  // namespace

bool queue_store::read_header_block(base::queue_id id, std::string& out, std::size_t limit,
                                    std::string& error) const {
  out.clear();
  error.clear();
  txn_guard txn;
  if (!begin_read(env_, txn, error)) return false;
  if (!dbi_->present) return false;
  int rc = 0;
  for (uint32_t c = 0; out.size() < limit; ++c) {
    auto ck = schema::make_chunk_key(id, c);
    MDB_val kk = val(ck), cv;
    rc = mdb_get(txn.get(), dbi_->bodies, &kk, &cv);
    if (rc == MDB_NOTFOUND) break;  // end of body (or no body at all)
    if (rc) {
      error = lmdb_error("read body", rc);
      return false;
    }
    const std::size_t scan_from = out.size() >= 3 ? out.size() - 3 : 0;
    out.append(view(cv).substr(0, limit - out.size()));
    // Stop at the empty line: "\n\n" or "\n\r\n" ends the header block.
    for (std::size_t i = scan_from; i + 1 < out.size(); ++i) {
      if (out[i] != '\n') continue;
      std::size_t end = out[i + 1] == '\n' ? i + 2 : (out[i + 1] == '\r' && i + 2 < out.size() && out[i + 2] == '\n') ? i + 3 : 0;
      if (end != 0) {
        out.resize(end);
        return true;
      }
    }
  }
  return true;
}

bool queue_store::for_each_submission(const std::function<bool(base::queue_id)>& fn,
                                      std::string& error) const {
  if (!env_) {
    error = "queue store not open";
    return false;
  }
  if (!dbi_->present) return true;
  return page_through(
      env_, dbi_->submission, nullptr, 0, schema::id_key_size,
      [&](const std::string& key, const std::string&) { return fn(base::queue_id::from_key(key.data())); },
      error);
}

bool queue_store::for_each_hop(const std::function<bool(const hop_entry&)>& fn,
                               std::string& error) const {
  if (!env_) {
    error = "queue store not open";
    return false;
  }
  if (!dbi_->categorizer_present) return true;
  hop_entry e;
  return page_through(
      env_, dbi_->hops, nullptr, 0, schema::id_key_size,
      [&](const std::string& key, const std::string& value) {
        e.id = schema::hop_id_of(reinterpret_cast<const unsigned char*>(key.data()));
        std::string err;
        if (!decode_hop(value, e.record, err)) {
          e.record = hop_record{};
          e.record.key = "(damaged record: " + err + ")";
        }
        return fn(e);
      },
      error);
}

bool queue_store::for_each_item(
    uint64_t hop_id, const std::function<bool(base::queue_id, const delivery_item_record&)>& fn,
    std::string& error) const {
  if (!env_) {
    error = "queue store not open";
    return false;
  }
  if (!dbi_->categorizer_present) return true;
  auto prefix = schema::make_hop_key(hop_id);
  delivery_item_record item;
  bool ok = true;
  bool done = page_through(
      env_, dbi_->delivery, prefix.data(), prefix.size(), schema::delivery_key_size,
      [&](const std::string& key, const std::string& value) {
        base::queue_id id = base::queue_id::from_key(key.data() + 8);
        if (!decode_item(value, item, error)) {
          error = "delivery item " + id.text() + ": " + error;
          ok = false;
          return false;
        }
        return fn(id, item);
      },
      error);
  return done && ok;
}

std::optional<std::vector<failed_recipient>> queue_store::read_failed(base::queue_id id,
                                                                      std::string& error) const {
  error.clear();
  txn_guard txn;
  if (!begin_read(env_, txn, error)) return std::nullopt;
  if (!dbi_->categorizer_present) return std::nullopt;
  int rc = 0;
  auto idk = schema::make_id_key(id);
  MDB_val k = val(idk), v;
  rc = mdb_get(txn.get(), dbi_->failed, &k, &v);
  if (rc == MDB_NOTFOUND) return std::nullopt;
  std::vector<failed_recipient> out;
  if (rc) {
    error = lmdb_error("read failed list", rc);
    return std::nullopt;
  }
  if (!decode_failed(view(v), out, error)) return std::nullopt;
  return out;
}

uint32_t queue_store::references(base::queue_id id, std::string& error) const {
  error.clear();
  if (!env_ || !dbi_->categorizer_present) return 0;
  txn_guard txn;
  int rc = txn.begin(env_, MDB_RDONLY);
  if (rc) {
    error = lmdb_error("cannot begin read transaction", rc);
    return 0;
  }
  auto idk = schema::make_id_key(id);
  uint32_t refs = 0;
  rc = get_u32(txn.get(), dbi_->refs, val(idk), refs);
  if (rc && rc != MDB_NOTFOUND) error = lmdb_error("read references", rc);
  return refs;
}

}  // namespace sluice::store
