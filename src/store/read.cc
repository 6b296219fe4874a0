// read.cc: the queue store's readers (stats, messages, envelopes, listings) and the administrative removal.
// Untrusted input: records read back from the LMDB file (validated on decode, sizes checked).
#include <lmdb.h>

#include <cstring>
#include <filesystem>
#include <system_error>

#include "store/env.h"
#include "store/record.h"
#include "store/schema.h"
#include "store/store.h"
#include "store/txn.h"

namespace sluice::store {

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
  if (!begin_read(env_, txn, error)) return std::nullopt;
  int rc = 0;
  MDB_envinfo tinfo;
  mdb_env_info(env_, &tinfo);
  MDB_stat st;
  mdb_env_stat(env_, &st);
  s.pages.page_size = st.ms_psize;
  s.pages.pages_used = tinfo.me_last_pgno + 1;
  if (!dbi_->present) return s;
  const databases& d = *dbi_;
  for (MDB_dbi dbi : {d.messages, d.bodies, d.submission, d.meta}) {
    if ((rc = mdb_stat(txn.get(), dbi, &st))) {
      error = lmdb_error("mdb_stat", rc);
      return std::nullopt;
    }
    s.pages.tree_pages += st.ms_branch_pages + st.ms_leaf_pages + st.ms_overflow_pages;
    s.pages.overflow_pages += st.ms_overflow_pages;
    if (dbi == d.messages) s.messages = st.ms_entries;
    if (dbi == d.bodies) s.body_chunks = st.ms_entries;
    if (dbi == d.submission) s.submission_queued = st.ms_entries;
  }
  if (d.categorizer_present) {
    for (MDB_dbi dbi : {d.hop_names, d.hops, d.delivery, d.refs, d.reports}) {
      if ((rc = mdb_stat(txn.get(), dbi, &st))) {
        error = lmdb_error("mdb_stat", rc);
        return std::nullopt;
      }
      s.pages.tree_pages += st.ms_branch_pages + st.ms_leaf_pages + st.ms_overflow_pages;
      s.pages.overflow_pages += st.ms_overflow_pages;
      if (dbi == d.delivery) s.delivery_items = st.ms_entries;
      if (dbi == d.hops) s.delivery_queues = st.ms_entries;
      if (dbi == d.reports) s.failed_messages = st.ms_entries;
    }
  }
  s.pages.free_pages = freelist_pages(txn.get());
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
      if (!begin_read(env_, txn, error)) return false;
      cursor_guard cur;
      int rc = cur.open(txn.get(), dbi_->messages);
      if (rc) {
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
  const databases& d = *dbi_;
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
    for (MDB_dbi extra : {d.refs, d.reports}) {
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
      if (!begin_read(env, txn, error)) return false;
      cursor_guard cur;
      int rc = cur.open(txn.get(), dbi);
      if (rc) {
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

std::optional<std::vector<message_item>> queue_store::items_of(base::queue_id id, std::string& error) const {
  error.clear();
  txn_guard txn;
  if (!begin_read(env_, txn, error)) return std::nullopt;
  std::vector<message_item> out;
  if (!dbi_->categorizer_present) return out;
  cursor_guard cur;
  int rc = cur.open(txn.get(), dbi_->hops);
  if (rc) {
    error = lmdb_error("cannot open cursor", rc);
    return std::nullopt;
  }
  MDB_val k, v;
  hop_record hop;
  while ((rc = mdb_cursor_get(cur.get(), &k, &v, MDB_NEXT)) == 0) {
    if (k.mv_size != schema::id_key_size) continue;
    const uint64_t hop_id = schema::hop_id_of(static_cast<const unsigned char*>(k.mv_data));
    if (!decode_hop(view(v), hop, error)) {
      error = "hop " + std::to_string(hop_id) + ": " + error;
      return std::nullopt;
    }
    if (hop.items == 0) continue;
    auto dk = schema::make_delivery_key(hop_id, id);
    MDB_val dkv = val(dk), dv;
    rc = mdb_get(txn.get(), dbi_->delivery, &dkv, &dv);
    if (rc == MDB_NOTFOUND) continue;
    if (rc) {
      error = lmdb_error("read delivery item", rc);
      return std::nullopt;
    }
    message_item m{hop_id, hop.key, {}};
    if (!decode_item(view(dv), m.item, error)) {
      error = "delivery item " + id.text() + " of " + hop.key + ": " + error;
      return std::nullopt;
    }
    out.push_back(std::move(m));
  }
  if (rc != MDB_NOTFOUND) {
    error = lmdb_error("read hops", rc);
    return std::nullopt;
  }
  return out;
}

std::optional<std::vector<std::pair<std::string, int64_t>>> queue_store::bounce_rules(std::string& error) const {
  error.clear();
  txn_guard txn;
  if (!begin_read(env_, txn, error)) return std::nullopt;
  std::vector<std::pair<std::string, int64_t>> out;
  if (!dbi_->present) return out;
  cursor_guard cur;
  int rc = cur.open(txn.get(), dbi_->meta);
  if (rc) {
    error = lmdb_error("cannot open cursor", rc);
    return std::nullopt;
  }
  const std::string_view prefix = schema::meta_bounce_prefix;
  MDB_val k = val(prefix.data(), prefix.size()), v;
  for (rc = mdb_cursor_get(cur.get(), &k, &v, MDB_SET_RANGE); rc == 0; rc = mdb_cursor_get(cur.get(), &k, &v, MDB_NEXT)) {
    const std::string_view key = view(k);
    if (key.substr(0, prefix.size()) != prefix) break;
    out.emplace_back(std::string(key.substr(prefix.size())), static_cast<int64_t>(read_u64_be(v)));
  }
  if (rc != 0 && rc != MDB_NOTFOUND) {
    error = lmdb_error("read bounce rules", rc);
    return std::nullopt;
  }
  return out;
}

std::optional<std::vector<report_entry>> queue_store::read_reports(base::queue_id id, std::string& error) const {
  error.clear();
  txn_guard txn;
  if (!begin_read(env_, txn, error)) return std::nullopt;
  if (!dbi_->categorizer_present) return std::nullopt;
  auto idk = schema::make_id_key(id);
  MDB_val k = val(idk), v;
  const int rc = mdb_get(txn.get(), dbi_->reports, &k, &v);
  if (rc == MDB_NOTFOUND) return std::nullopt;
  if (rc) {
    error = lmdb_error("read report list", rc);
    return std::nullopt;
  }
  std::vector<report_entry> out;
  if (!decode_reports(view(v), out, error)) return std::nullopt;
  return out;
}

std::vector<base::queue_id> queue_store::list_reports(base::queue_id after, std::size_t max,
                                                      std::string& error) const {
  error.clear();
  std::vector<base::queue_id> out;
  txn_guard txn;
  if (!begin_read(env_, txn, error) || !dbi_->categorizer_present || max == 0) return out;
  cursor_guard cur;
  int rc = cur.open(txn.get(), dbi_->reports);
  if (rc) {
    error = lmdb_error("cannot open cursor", rc);
    return out;
  }
  auto start = after.key();
  MDB_val k = val(start), v;
  rc = mdb_cursor_get(cur.get(), &k, &v, after.value == 0 ? MDB_FIRST : MDB_SET_RANGE);
  if (rc == 0 && after.value != 0 && k.mv_size == schema::id_key_size && base::queue_id::from_key(k.mv_data) == after)
    rc = mdb_cursor_get(cur.get(), &k, &v, MDB_NEXT);
  for (; rc == 0 && out.size() < max; rc = mdb_cursor_get(cur.get(), &k, &v, MDB_NEXT)) {
    if (k.mv_size != schema::id_key_size) {
      error = "report list key of unexpected size";
      out.clear();
      return out;
    }
    out.push_back(base::queue_id::from_key(k.mv_data));
  }
  if (rc != 0 && rc != MDB_NOTFOUND) {
    error = lmdb_error("cursor read", rc);
    out.clear();
  }
  return out;
}

uint32_t queue_store::references(base::queue_id id, std::string& error) const {
  error.clear();
  if (!env_ || !dbi_->categorizer_present) return 0;
  txn_guard txn;
  if (!begin_read(env_, txn, error)) return 0;
  auto idk = schema::make_id_key(id);
  uint32_t refs = 0;
  int rc = get_u32(txn.get(), dbi_->refs, val(idk), refs);
  if (rc && rc != MDB_NOTFOUND) error = lmdb_error("read references", rc);
  return refs;
}

}  // namespace sluice::store
