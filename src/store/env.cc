// env.cc: opening and closing the queue store's LMDB environment and its named databases.
// Untrusted input: the store file itself (an existing data.mdb is opened as found).
#include <lmdb.h>

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <system_error>

#include "store/env.h"
#include "store/lane.h"
#include "store/schema.h"
#include "store/store.h"
#include "store/txn.h"

namespace sluice::store {

namespace {

bool sync_directory(const std::filesystem::path& dir, std::string& error) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0 || ::fsync(fd) != 0) {
    error = "cannot sync queue directory " + dir.string() + ": " + std::strerror(errno);
    if (fd >= 0) ::close(fd);
    return false;
  }
  ::close(fd);
  return true;
}

// A store written before report lists had their own name keeps its failed lists in
// `failed`: they move to `reports` (same keys, records that still decode) inside the
// opening transaction, so an upgrade keeps every pending report and its reference.
int adopt_legacy_failed(MDB_txn* txn, MDB_dbi reports) {
  MDB_dbi legacy = 0;
  int rc = mdb_dbi_open(txn, schema::legacy_failed_db, 0, &legacy);
  if (rc == MDB_NOTFOUND) return 0;
  if (rc) return rc;
  {
    cursor_guard cur;
    if ((rc = cur.open(txn, legacy))) return rc;
    MDB_val k, v;
    while ((rc = mdb_cursor_get(cur.get(), &k, &v, MDB_NEXT)) == 0) {
      rc = mdb_put(txn, reports, &k, &v, MDB_NOOVERWRITE);
      if (rc && rc != MDB_KEYEXIST) return rc;
    }
    if (rc != MDB_NOTFOUND) return rc;
  }
  return mdb_drop(txn, legacy, 1);
}

}  // namespace

queue_store::queue_store() = default;
queue_store::~queue_store() { close(); }

bool queue_store::open(store_options options, std::string& error) {
  if (env_) {
    error = "queue store already open";
    return false;
  }
  options_ = std::move(options);
  if (options_.producers == 0) options_.producers = 1;
  largest_message_pages_.store(0, std::memory_order_relaxed);
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
  }
  bool new_file = false;  // this open creates data.mdb
  if (!ro) {
    new_file = !std::filesystem::exists(std::filesystem::path(options_.dir) / "data.mdb", ec);
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
  // The first process to open the environment sizes the lock file's reader table; later
  // ones take the size the file has. Both set it, so a sluicectl that happens to open
  // first does not leave the daemon with LMDB's default of 126 slots, too few for the
  // delivery engine's message views (queue_store::max_readers).
  mdb_env_set_maxreaders(env, max_readers);
  // A read-only opener leaves the map size to what the file's meta page records.
  if (!ro) {
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

  auto handles = std::make_unique<databases>();
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
                     {schema::reports_db, &handles->reports}};
    handles->categorizer_present = handles->present;
    for (auto& n : cat_names) {
      if (!handles->present) break;
      rc = mdb_dbi_open(txn.get(), n.name, dbflags, n.out);
      // Read-only on a store the daemon has not upgraded yet: its lists are in `failed`,
      // whose records decode as report lists.
      if (rc == MDB_NOTFOUND && ro && n.out == &handles->reports)
        rc = mdb_dbi_open(txn.get(), schema::legacy_failed_db, 0, n.out);
      if (rc == MDB_NOTFOUND && ro) {
        handles->categorizer_present = false;
        break;
      }
      if (rc) {
        error = lmdb_error((std::string("cannot open database ") + n.name).c_str(), rc);
        return false;
      }
    }
    if (handles->categorizer_present && !ro && (rc = adopt_legacy_failed(txn.get(), handles->reports))) {
      error = lmdb_error("cannot move the failed lists into reports", rc);
      return false;
    }
    // Stores written before the floor was kept have none: their newest message stands in.
    if (handles->present) {
      uint64_t floor = 0;
      if ((rc = read_u64(txn.get(), handles->meta, schema::meta_id_floor, floor))) {
        error = lmdb_error("cannot read the queue id floor", rc);
        return false;
      }
      cursor_guard newest;
      MDB_val k, v;
      if (newest.open(txn.get(), handles->messages) == 0 && mdb_cursor_get(newest.get(), &k, &v, MDB_LAST) == 0 &&
          k.mv_size == schema::id_key_size)
        floor = std::max(floor, base::queue_id::from_key(k.mv_data).value);
      id_floor_ = base::queue_id{floor};
    }
    // Committing (even a read-only txn) makes the handles usable by later transactions.
    rc = txn.commit();
    if (rc) {
      error = lmdb_error("cannot commit database creation", rc);
      return false;
    }
  }

  // data.mdb and lock.mdb are new directory entries: until the directory itself is
  // synced, a crash can lose the file, and with it every message whose commit was
  // fsynced into it. The queue directory is likely new too (the daemon creates it just
  // before), an entry of its parent in turn.
  if (new_file) {
    const std::filesystem::path dir = std::filesystem::absolute(options_.dir, ec);
    if (!sync_directory(dir, error) || !sync_directory(dir.parent_path(), error)) return false;
  }

  dbi_ = std::move(handles);
  env_ = env_owner.release();
  if (!ro) start_writer();
  return true;
}

void queue_store::close() {
  stop_writer();
  if (env_) {
    mdb_env_close(env_);
    env_ = nullptr;
  }
  dbi_.reset();
}

}  // namespace sluice::store
