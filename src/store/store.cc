// store.cc: LMDB environment, group-commit writer thread, readers and removal for the queue store.
// Untrusted input: envelopes/bodies from SMTP clients (stored as bytes) and records read back.
#include "store/store.h"

#include <lmdb.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <system_error>

#include "shard/spsc_ring.h"
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
  MDB_dbi messages = 0, bodies = 0, submission = 0, meta = 0;
};

// One producer's pair of rings. The in-flight count is touched only on the producer's
// thread (submit and take_completed), so it needs no atomic; bounding it by the ring
// capacity guarantees the completion ring always has room, so the writer never has to
// wait for a producer.
struct queue_store::lane {
  shard::spsc_ring<submit_request*, ring_capacity> to_writer;
  shard::spsc_ring<submit_request*, ring_capacity> to_producer;
  alignas(shard::ring_line_size) std::size_t in_flight = 0;
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
    wake_seq_.fetch_add(1, std::memory_order_release);
    wake_seq_.notify_one();
    writer_.join();
  }
  if (env_) {
    mdb_env_close(env_);
    env_ = nullptr;
  }
  dbi_.reset();
}

bool queue_store::submit(unsigned producer, submit_request* req) {
  if (producer >= lanes_.size() || req == nullptr) return false;
  lane& l = *lanes_[producer];
  if (l.in_flight == ring_capacity) return false;
  req->result = submit_status::pending;
  req->error.clear();
  if (!l.to_writer.push(req)) return false;  // cannot happen while in_flight < capacity
  ++l.in_flight;
  // The release increment orders the push before the writer's acquire load; the writer
  // either sees the new value and skips the wait, or is woken from it.
  wake_seq_.fetch_add(1, std::memory_order_release);
  wake_seq_.notify_one();
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

void queue_store::writer_main() {
  std::vector<submit_request*> batch;
  std::vector<unsigned> owner;
  std::vector<bool> touched(lanes_.size());
  submit_request* buf[64];
  batch.reserve(ring_capacity);
  for (;;) {
    const uint64_t seen = wake_seq_.load(std::memory_order_acquire);
    batch.clear();
    owner.clear();
    for (unsigned p = 0; p < lanes_.size(); ++p) {
      std::size_t n;
      while ((n = lanes_[p]->to_writer.pop_batch(buf, 64)) != 0) {
        batch.insert(batch.end(), buf, buf + n);
        owner.insert(owner.end(), n, p);
      }
    }
    if (batch.empty()) {
      if (stopping_.load(std::memory_order_acquire)) return;
      wake_seq_.wait(seen, std::memory_order_acquire);
      continue;
    }
    write_batch(batch);
    std::fill(touched.begin(), touched.end(), false);
    for (std::size_t i = 0; i < batch.size(); ++i) {
      // Cannot fail: a producer never has more than ring_capacity requests in flight.
      lanes_[owner[i]]->to_producer.push(batch[i]);
      touched[owner[i]] = true;
    }
    if (options_.notify)
      for (unsigned p = 0; p < touched.size(); ++p)
        if (touched[p]) options_.notify(p);
  }
}

// Writes the whole batch in one transaction (one fsync for all of it). If the map is
// full, the batch is retried one request per transaction so that one huge message
// does not fail the small ones that would still fit.
void queue_store::write_batch(std::vector<submit_request*>& batch) {
  // Write in key order so put_ordered can append; `batch` keeps its order because the
  // caller pairs it with the producer of each request.
  std::vector<submit_request*> sorted(batch);
  std::sort(sorted.begin(), sorted.end(),
            [](const submit_request* a, const submit_request* b) { return a->id < b->id; });
  // Keep a reserve of free pages for deletions: LMDB copies pages on write, so a map
  // filled to the last page cannot even remove a message to make room. Requests that
  // would eat into the reserve get storage_full without being tried.
  const uint64_t chunk = std::max<std::size_t>(chunk_size_, 1);
  uint64_t budget = free_page_budget(sorted.size());
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
    if (sorted.empty()) return;
  }
  int rc = write_requests(sorted.data(), sorted.size());
  if (rc == 0) {
    for (auto* r : sorted) r->result = submit_status::ok;
    return;
  }
  if (rc == MDB_MAP_FULL || rc == MDB_KEYEXIST) {
    for (auto* r : sorted) {
      int one = write_requests(&r, 1);
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
    return;
  }
  for (auto* r : sorted) {
    r->result = submit_status::failed;
    r->error = mdb_strerror(rc);
  }
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

int queue_store::write_requests(submit_request* const* reqs, std::size_t n) {
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
  if ((rc = add_counter(txn.get(), d.meta, schema::meta_recipients, recipients))) return rc;
  return txn.commit();  // the durability point: returns after fsync
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
  if (!env_) {
    error = "queue store not open";
    return std::nullopt;
  }
  if (!dbi_->present) return std::nullopt;
  txn_guard txn;
  int rc = txn.begin(env_, MDB_RDONLY);
  if (rc) {
    error = lmdb_error("cannot begin read transaction", rc);
    return std::nullopt;
  }
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

}  // namespace sluice::store
