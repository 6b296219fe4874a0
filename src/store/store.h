// store.h: the durable submission queue on LMDB, with a single group-committing writer thread.
// Untrusted input: message envelopes and bodies from SMTP clients (stored, never interpreted),
// and the store file itself when read back (records are validated on decode).
#pragma once
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "base/queue_id.h"
#include "smtp/envelope.h"
#include "store/record.h"
#include "store/write_op.h"

typedef struct MDB_env MDB_env;
typedef struct MDB_txn MDB_txn;

namespace sluice::store {

struct databases;  // env.h: the environment's database handles
class lane;        // lane.h: one producer's rings to and from the writer

enum class submit_status : uint8_t {
  pending,       // not yet written (the value between submit() and take_completed())
  ok,            // durable: the commit holding it returned, reply 250
  storage_full,  // MDB_MAP_FULL even on its own: reply 452 4.3.1 Insufficient system storage
  too_large,     // bigger than even an empty map could hold twice (stored, and rewritten by
                 // header edits when it is categorized) beside the free-page reserve's fixed
                 // part: reply 552 5.3.4, never retried
  failed,        // any other storage error: reply 451 4.3.0
};

// One message to store (write_kind::submit). Ownership: the caller allocates and owns the
// request. Between a successful submit() and the moment take_completed() hands the
// pointer back, the store borrows it: the writer thread reads every field and writes
// `result` and `error`, so the caller must not read, write or free it in that window.
// After take_completed() the caller owns it fully again and may reuse it for another
// message. `id` (write_op) comes from the producer's queue_id_generator and must be unique.
struct submit_request : write_op {
  static constexpr write_kind kind_tag = write_kind::submit;
  submit_request() : write_op(kind_tag) {}

  smtp::envelope envelope;
  std::string body;           // message content after DATA/BDAT, dot-unstuffed
  std::string connector;      // receive connector name
  std::string client_address;
  std::string client_helo;
  std::string auth_user;      // "" if the session did not authenticate
  int64_t received_at_ms = 0; // unix ms
  submit_status result = submit_status::pending;
  // write_op::error is set with storage_full/failed, for logs; write_op::user is the
  // caller's cookie (the session).
};

enum class categorize_status : uint8_t {
  pending,       // between categorize() and take_categorized()
  ok,            // durable: submission entry gone, items, report list and refs written
  not_queued,    // the message had no submission entry (already categorized or removed);
                 // nothing was written, so a duplicate hand-off is harmless
  storage_full,  // MDB_MAP_FULL: nothing written, the message stays in `submission`
  failed,        // any other error: nothing written
};

// One next hop's share of a message: becomes one record in `delivery`.
struct delivery_item_spec {
  std::string hop_key;              // route::table::hop_key text; at most schema::max_hop_key_size
  std::vector<uint32_t> recipients; // indices into the message's envelope recipients
  uint64_t hop_id = 0;              // out: the hop's id, set by the writer on ok
};

// The categorizer's decision for one message (write_kind::categorize). Ownership as for
// submit_request: the store borrows the request from a successful categorize() until
// take_categorized() returns it; the writer reads everything but `result`, `error` and
// the items' hop_id, which it writes. Recipient indices are not checked against the
// envelope (the categorizer read it).
struct categorize_request : write_op {
  static constexpr write_kind kind_tag = write_kind::categorize;
  categorize_request() : write_op(kind_tag) {}

  int64_t received_at_ms = 0;       // the message's, for the hops' oldest-age
  std::vector<delivery_item_spec> items;
  std::vector<report_entry> failed;  // action failed: they join the message's report list
  // Set only when transport rules changed the message, written in the same transaction:
  // new_record replaces the envelope record (encode_record; redirects, added BCC
  // recipients, and body_size/body_chunks for new_body), new_body replaces every body
  // chunk (header edits; chunked with chunk_size()), recipient_delta adjusts the store's
  // recipient counter. Item and failed indices refer to the new envelope.
  std::string new_record;
  std::optional<std::string> new_body;
  int64_t recipient_delta = 0;
  categorize_status result = categorize_status::pending;
};

enum class deliver_status : uint8_t {
  pending,       // between deliver() and take_delivered()
  ok,            // durable: the item, report list, refs and hop record are updated
  not_found,     // no item (hop_id, id): already delivered or removed; nothing was written,
                 // so a duplicate outcome is harmless
  storage_full,  // MDB_MAP_FULL: nothing written (rare: delivery is never held back)
  failed,        // any other error (including a corrupt item record): nothing written
};

// One attempt's durable outcome for one delivery item (hop_id + queue id), write_kind::
// deliver. Ownership as submit_request: borrowed by the store from a successful deliver()
// until take_delivered() returns it; the writer reads every input field and writes
// `result`, `error`, `remaining` and `message_removed`. Every report entry, failed ones
// included, joins the message's report list unless its (recipient, action) pair is there.
// An entry for a recipient not in the item is ignored, as in `delivered`.
struct deliver_request : write_op {  // write_op::id = the message's queue id
  static constexpr write_kind kind_tag = write_kind::deliver;
  deliver_request() : write_op(kind_tag) {}

  uint64_t hop_id = 0;
  std::vector<uint32_t> delivered;       // recipient indices the next hop took
  // Permanent failures (status, reason = remote reply text, remote_mta, diagnostic). An
  // entry whose at_ms is 0 is stored with now_ms. An index in both lists counts as delivered.
  std::vector<report_entry> failed;
  // Reports for recipients that do not leave the item as failures: delivered ones that
  // asked for a success report (action delivered or relayed, the index also in
  // `delivered`) and deferred ones that get a delay report (action delayed; they stay in
  // the item). Any other entry (another action, a recipient the item does not hold in
  // that way) is ignored. at_ms 0 is stored as now_ms, as for `failed`.
  std::vector<report_entry> reports;
  // When the item remains, it is stored with delay_reported set (the delay report
  // above is the one the item gets).
  bool mark_delay_reported = false;
  // Recipients of the item in neither list stay in it, deferred: attempts+1,
  // next_attempt_ms, last_error. Indices not in the item are ignored.
  int64_t next_attempt_ms = 0;           // unix ms of the next try for the remaining ones
  std::string last_error;                // "451 4.4.1 mx.example[1.2.3.4]: connection refused"
  int64_t now_ms = 0;                    // the attempt's time (hop record, report entries)
  deliver_status result = deliver_status::pending;
  // out (set by the writer on ok):
  uint32_t remaining = 0;                // recipients still in the item; 0 = item removed
  bool message_removed = false;          // refs reached zero: message and body deleted
};

enum class reroute_status : uint8_t {
  pending,       // between reroute() and take_rerouted()
  ok,            // durable: old item gone, new items, report list, refs and hop records written
  not_found,     // no item (hop_id, id): already delivered, removed or moved; nothing was
                 // written, so a duplicate request is harmless
  storage_full,  // MDB_MAP_FULL, or held back by the free-page reserve: nothing written
  failed,        // any other error (a corrupt item record, an empty or too long hop key):
                 // nothing written
};

// Moves one delivery item's recipients to other next hops (write_kind::reroute, applied
// after deliver in a transaction), when routing changed under a queued item. Ownership as
// deliver_request: borrowed by the store from a successful reroute() until take_rerouted()
// returns it; the writer reads every input field and writes `result`, `error` and the
// items' hop_id. Only the old item's own recipients move: an index not in it is ignored,
// and an index given twice goes where it is given first (items in order, then failed).
// Recipients of the old item named nowhere stay on the old hop. The items' recipients
// and the kept ones are merged per hop, so one hop gets at most one item.
struct reroute_request : write_op {  // write_op::id = the message's queue id
  static constexpr write_kind kind_tag = write_kind::reroute;
  reroute_request() : write_op(kind_tag) {}

  uint64_t hop_id = 0;                   // the item being moved
  // New items: hop_key + recipient indices; hop_id is set on ok (0 for a spec left with
  // no recipient of the old item, which creates nothing, not even a hop).
  std::vector<delivery_item_spec> items;
  // Recipients that no longer route anywhere (status, reason, diagnostic); an entry whose
  // at_ms is 0 is stored with now_ms.
  std::vector<report_entry> failed;
  int64_t now_ms = 0;                    // failed entries' time
  reroute_status result = reroute_status::pending;
  // out (set by the writer on ok): refs reached zero, message and body deleted (only
  // when the old item had no recipients and nothing was given).
  bool message_removed = false;
};

enum class report_status : uint8_t {
  pending,       // between report() and take_reported()
  ok,            // durable: the consumed entries are gone and the DSN (if any) is queued
  stale,         // a consumed entry is not in the message's list (another report took it,
                 // or the message is gone): nothing was written; read the list again
  storage_full,  // MDB_MAP_FULL, or a DSN held back by the free-page reserve: nothing written
  failed,        // any other error (a corrupt list, a duplicate dsn_id, a DSN larger than
                 // the map): nothing written
};

// A DSN generator's step for one message (write_kind::report, applied last in a
// transaction): it removes exactly the pending report entries the DSN covers and
// enqueues the DSN in the same transaction, so a crash either keeps the entries (the
// report is composed again) or keeps the DSN (the entries are gone): never both, never
// neither. Ownership as submit_request: borrowed by the store from a successful report()
// until take_reported() returns it; the writer reads every input field and writes
// `result`, `error` and `message_removed`.
struct report_request : write_op {  // write_op::id = the ORIGINAL message
  static constexpr write_kind kind_tag = write_kind::report;
  report_request() : write_op(kind_tag) {}

  // The pending entries this report covers, as (recipient, action) pairs of the list.
  std::vector<std::pair<uint32_t, report_action>> consumed;
  // The DSN, stored exactly as submit() stores a message (into `submission`, to be
  // categorized like any other). Absent: the entries are only dropped (nobody wants the
  // report, or the sender is null).
  bool has_message = false;
  base::queue_id dsn_id;      // caller-assigned and unique, like submit_request::id
  smtp::envelope envelope;
  std::string body;
  std::string connector;      // receive connector name recorded for the DSN
  int64_t received_at_ms = 0; // unix ms
  report_status result = report_status::pending;
  // out (set by the writer on ok): the emptied list dropped the message's last
  // reference, message and body deleted.
  bool message_removed = false;
};

enum class control_status : uint8_t {
  pending,     // between control() and take_controlled()
  ok,          // durable
  not_found,   // nothing to act on (no such message, no item of it, a hop never seen for
               // resume): nothing was written
  failed,      // any other error (a corrupt record, an empty or too long hop key): nothing written
};

// What the administrator asks of the queue (sluicectl message/queue actions).
enum class control_action : uint8_t {
  hold,     // every item of message `id` is held: the engine does not deliver it
  release,  // every item of message `id` is no longer held
  suspend,  // hop `hop_key` (created if never seen, so new arrivals wait too) is suspended
            // until `until_ms` (0 = until resumed)
  resume,   // hop `hop_key` is no longer suspended
  remove,   // message `id` is deleted with all its items, pending reports, refs and
            // submission entry, the hops' counts lowered: no DSN, no trace left
  bounce,   // a bounce rule for domain `hop_key` until `until_ms` is stored (meta db): mail
            // for it fails at its first attempt until then (the engine's doing)
  unbounce, // the bounce rule for domain `hop_key` is removed
};

// One administrator's action (write_kind::control, applied last in a transaction).
// Ownership as submit_request: borrowed by the store from a successful control() until
// take_controlled() returns it; the writer reads the inputs and writes `result`, `error`
// and the outputs. Message actions find the message's items themselves (one lookup per
// hop), so an item moved by a reroute in the meantime is not missed.
struct control_request : write_op {  // write_op::id = the message (hold, release, remove)
  static constexpr write_kind kind_tag = write_kind::control;
  control_request() : write_op(kind_tag) {}

  control_action action = control_action::hold;
  std::string hop_key;     // suspend, resume; the domain for bounce, unbounce
  int64_t until_ms = 0;    // suspend: unix ms, 0 = until resumed
  int64_t now_ms = 0;      // resume: whether the hop's next retry is still ahead
  control_status result = control_status::pending;
  // out (set by the writer on ok):
  uint64_t hop_id = 0;             // suspend, resume: the hop's id
  std::vector<uint64_t> hops;      // hold, release, remove: the hops whose items changed
  uint64_t recipients = 0;         // in those items
};

// One delivery queue as stored, for views and for rebuilding in-memory queues at start.
struct hop_entry {
  uint64_t id = 0;
  hop_record record;
};

// One delivery item of a message with the hop that holds it (items_of).
struct message_item {
  uint64_t hop_id = 0;
  std::string hop_key;
  delivery_item_record item;
};

struct store_options {
  std::string dir;                         // queue_dir; created if missing (not in read_only)
  std::size_t map_size = std::size_t{8} << 30;  // LMDB map size; the file never exceeds it
  unsigned producers = 1;                  // lanes: threads that call submit()/categorize()
  // Called on the writer thread once per producer that has new completions after a
  // commit, when those are ready to take; must be thread-safe and cheap (the daemon
  // wires it to uv_async_send). It hands over no request: take_*() does.
  std::function<void(unsigned producer)> notify;
  bool read_only = false;                  // MDB_RDONLY: for sluicectl, works while sluiced runs
};

struct page_stats {
  std::size_t page_size = 0;
  uint64_t pages_used = 0;      // highest page number in use + 1 (what the file holds)
  uint64_t tree_pages = 0;      // branch + leaf + overflow pages of our databases
  uint64_t overflow_pages = 0;  // of those, overflow pages (bodies should have none)
  uint64_t free_pages = 0;      // pages on LMDB's freelist, reusable by later writes
};

struct store_stats {
  uint64_t messages = 0;
  uint64_t body_chunks = 0;      // entries in `bodies`: what a removed message must free
  uint64_t recipients = 0;
  uint64_t submission_queued = 0;
  uint64_t delivery_items = 0;   // entries in `delivery`
  uint64_t delivery_queues = 0;  // entries in `hops` (including empty ones)
  uint64_t failed_messages = 0;  // messages with a pending report list (the name predates reports)
  std::optional<int64_t> oldest_received_at_ms;
  uint64_t file_size = 0;       // bytes of data.mdb on disk
  uint64_t map_size = 0;
  std::size_t chunk_size = 0;   // body chunk size for this page size
  page_stats pages;
};

struct stored_message {
  base::queue_id id;
  smtp::envelope envelope;
  message_metadata meta;
  std::string body;
};

class queue_store;

// A message read under a read transaction the view holds until destroyed: envelope,
// metadata, the delivery item (none for open_message), and the body as views straight into the LMDB map (no
// copy). Move-only. It may be destroyed on another thread than the one that made it
// (MDB_NOTLS is set), but used by one thread at a time. A long-lived view pins pages
// (LMDB cannot reuse pages freed after its transaction began, so the file grows while
// it lives): the delivery engine holds one only while that message's content is being
// written to a socket. Every view must be destroyed before its store is closed: the
// transaction belongs to the store's environment.
class message_view {
 public:
  base::queue_id id;
  uint64_t hop_id = 0;
  smtp::envelope envelope;
  message_metadata meta;
  delivery_item_record item;              // the item of (hop_id, id), delay_reported included
  std::vector<std::string_view> chunks;   // body chunks in order, pointing into the map

  message_view() = default;               // empty: holds no transaction
  message_view(message_view&& other) noexcept;
  message_view& operator=(message_view&& other) noexcept;
  message_view(const message_view&) = delete;
  message_view& operator=(const message_view&) = delete;
  ~message_view();                        // ends the read transaction

 private:
  friend class queue_store;
  void release() noexcept;
  MDB_txn* txn_ = nullptr;                        // owned: a read-only transaction
  std::atomic<std::size_t>* open_count_ = nullptr;  // the store's open_views counter
};

class queue_store {
 public:
  // The most submit requests one producer may have in flight (submitted, not yet taken
  // back by take_completed()).
  static constexpr std::size_t ring_capacity = 1024;
  // Categorize requests one producer may have in flight. Larger than ring_capacity: a
  // shard works through a backlog (recovery, bursts) as fast as the writer commits, and
  // with disk flushes of milliseconds the batch size per commit is what sets the rate.
  static constexpr std::size_t categorize_capacity = 4096;
  // Deliver requests one producer may have in flight: a loop finishing many attempts at
  // once (a hop coming back after an outage) hands them all to one commit.
  static constexpr std::size_t deliver_capacity = 4096;
  // Reroute requests one producer may have in flight: a configuration change can move
  // every item of a hop at once.
  static constexpr std::size_t reroute_capacity = 4096;
  // Report requests one producer may have in flight: a sweep after a restart works through
  // the pending lists in pages (list_reports), so a commit's worth is enough, and this keeps
  // the lane's rings at the size the other kinds already need (lane.h: lane_capacity).
  static constexpr std::size_t report_capacity = 1024;
  // Control requests one producer may have in flight: an administrator's commands, one at
  // a time in practice.
  static constexpr std::size_t control_capacity = 64;
  // LMDB reader slots (mdb_env_set_maxreaders): every live message_view holds one, and
  // so does every short reader. Delivery engines must keep their views below this, less
  // a margin for readers (stats, sluicectl, the categorizer); past it open_delivery()
  // fails with MDB_READERS_FULL. The lock file holds 64 bytes per slot (256 KiB).
  static constexpr unsigned max_readers = 4096;

  queue_store();
  ~queue_store();  // close()
  queue_store(const queue_store&) = delete;
  queue_store& operator=(const queue_store&) = delete;

  // Opens (creating if needed) the environment under options.dir and, unless read_only,
  // starts the writer thread. False with `error` set on failure.
  bool open(store_options options, std::string& error);
  // Stops the writer after it has written everything already submitted or handed to
  // categorize(). All producers must have stopped calling submit() and categorize()
  // first. Completions stay collectable: every request is still owned by the store
  // until its take_*() returns it.
  void close();

  // ---- Write operations (the writer thread's group commit) ----
  // Each producer (worker loop) has one lane to the writer, which carries every kind of
  // write operation. The same discipline holds for each kind: only the thread of
  // `producer` calls the request and take functions for that producer; the request is
  // never refused because of another kind's backlog; a request passed in is borrowed by
  // the store (see the request structs) until a take function of its kind returns it;
  // after the commit that holds it is durable, options.notify(producer) is called once.
  // Requests of one kind come back in the order they were handed in.

  // Producer thread `producer` only. Hands `req` to the writer; false if the producer
  // already has ring_capacity submit requests in flight (the caller keeps `req` and
  // retries later, e.g. after its next take_completed()). Never blocks, takes no lock.
  bool submit(unsigned producer, submit_request* req);
  // Producer thread `producer` only. Moves up to `max` finished submit requests (result
  // set) into out[0..); returns how many. Their ownership returns to the caller.
  std::size_t take_completed(unsigned producer, submit_request** out, std::size_t max);

  // Producer thread `producer` only, as submit() (categorize_capacity in flight): the
  // categorize transaction for one message, written by the writer thread in the same
  // group commit as submissions. In one transaction: the submission entry is deleted,
  // one `delivery` record per item is written, hop records are created or updated
  // (count, recipients, oldest), the failed recipients become the report list and the
  // message's reference count is set to items + (report list ? 1 : 0). A message with
  // neither items nor failed recipients is removed with its body.
  bool categorize(unsigned producer, categorize_request* req);
  // Producer thread `producer` only, as take_completed(), for categorize requests.
  std::size_t take_categorized(unsigned producer, categorize_request** out, std::size_t max);

  // Producer thread `producer` only, as submit() (deliver_capacity in flight): one
  // attempt's outcome for one item, in one transaction of the group commit. The
  // delivered and failed recipients leave the item; failed ones and `reports` are
  // appended to the message's report list (created if absent, which adds a reference;
  // a (recipient, action) pair already there is not added again). An item left
  // empty is deleted and drops a reference; the last reference deletes message, body
  // and refs entry. An item with recipients left becomes deferred (attempts+1,
  // next_attempt_ms, last_error, delay_reported if asked). The hop record's counts, next retry, last error and
  // status follow. Never held back by the free-page reserve: it is what drains a full store.
  bool deliver(unsigned producer, deliver_request* req);
  // Producer thread `producer` only, as take_completed(), for deliver requests.
  std::size_t take_delivered(unsigned producer, deliver_request** out, std::size_t max);

  // Producer thread `producer` only, as submit() (reroute_capacity in flight): moves one
  // item's recipients to other next hops, in one transaction of the group commit. The
  // old item is deleted and its hop record's counts lowered; each hop of `items` gets a
  // new item (state queued, next_attempt_ms 0, attempts, received_at_ms and last_error
  // carried over) and its hop record is created or updated as categorize() does; failed
  // recipients join the message's report list as deliver() does. The references follow:
  // -1 for the old item, +1 per new item, +1 if the report list is created; the last one
  // gone deletes message and body. Held back by the free-page reserve (it can write more
  // than it deletes); storage_full then leaves the item where it was.
  bool reroute(unsigned producer, reroute_request* req);
  // Producer thread `producer` only, as take_completed(), for reroute requests.
  std::size_t take_rerouted(unsigned producer, reroute_request** out, std::size_t max);

  // Producer thread `producer` only, as submit() (report_capacity in flight): one DSN's
  // step for message `id` in one transaction of the group commit (see report_request).
  // If any consumed pair is missing from the list the request is stale and writes
  // nothing. Otherwise those entries leave the list; an emptied list is deleted and drops
  // its reference (the last one deletes message and body, as deliver() does); the DSN,
  // if any, is stored as submit() stores a message (record, chunks, submission entry,
  // recipient counter, id floor). Held back by the free-page reserve only when it has a
  // message: dropping entries alone frees space.
  bool report(unsigned producer, report_request* req);
  // Producer thread `producer` only, as take_completed(), for report requests.
  std::size_t take_reported(unsigned producer, report_request** out, std::size_t max);

  // Producer thread `producer` only, as submit() (control_capacity in flight): one
  // administrator's action (see control_request and control_action) in one transaction
  // of the group commit. Never held back by the free-page reserve: it rewrites records
  // in place or deletes them.
  bool control(unsigned producer, control_request* req);
  // Producer thread `producer` only, as take_completed(), for control requests.
  std::size_t take_controlled(unsigned producer, control_request** out, std::size_t max);

  // ---- Readers: any thread, each call uses its own short read transactions ----
  std::optional<store_stats> stats(std::string& error) const;
  // Visits every message in queue order; return false from `fn` to stop. Reads in pages
  // of short transactions, so a slow callback never pins old pages. False on error.
  using message_visitor = std::function<bool(base::queue_id, const smtp::envelope&,
                                             const message_metadata&)>;
  bool for_each_message(const message_visitor& fn, std::string& error) const;
  // nullopt with `error` empty: no such message; with `error` set: corrupt or I/O error.
  std::optional<stored_message> read_message(base::queue_id id, std::string& error) const;

  // Envelopes (no bodies) of `ids`, all in one short read transaction; for the categorizer.
  // Missing ids are skipped; undecodable records are skipped and described in `problems`.
  // False with `error` only when the transaction itself fails. The references passed to
  // `fn` are valid during the call only.
  using envelope_visitor =
      std::function<void(base::queue_id, const smtp::envelope&, const message_metadata&)>;
  bool read_envelopes(std::span<const base::queue_id> ids, const envelope_visitor& fn,
                      std::string& problems, std::string& error) const;
  // The header block of a message's body (up to and including the empty line, at most
  // `limit` bytes), read from its first chunks in one short transaction. False with
  // `error` empty when there is no such message.
  bool read_header_block(base::queue_id id, std::string& out, std::size_t limit, std::string& error) const;
  // Ids in the submission queue (accepted, not yet categorized), in queue order, in pages of
  // short transactions; return false from `fn` to stop. For recovery at start.
  bool for_each_submission(const std::function<bool(base::queue_id)>& fn, std::string& error) const;
  // Every delivery queue (hop record), in hop id order.
  bool for_each_hop(const std::function<bool(const hop_entry&)>& fn, std::string& error) const;
  // The items of one hop in queue order, in pages of short transactions.
  bool for_each_item(uint64_t hop_id,
                     const std::function<bool(base::queue_id, const delivery_item_record&)>& fn,
                     std::string& error) const;
  // Every delivery item of message `id`, in hop id order, in one short read transaction:
  // one lookup per hop that has items (there is no index by message), so for the admin's
  // commands, not for a hot path. nullopt with `error` on failure; a damaged item or hop
  // record is an error.
  std::optional<std::vector<message_item>> items_of(base::queue_id id, std::string& error) const;
  // The administrator's bounce rules (control_action::bounce), domain and until when (unix
  // ms), in domain order, expired ones included. nullopt with `error` on failure.
  std::optional<std::vector<std::pair<std::string, int64_t>>> bounce_rules(std::string& error) const;
  // The pending report list of a message: nullopt with `error` empty when it has none.
  std::optional<std::vector<report_entry>> read_reports(base::queue_id id, std::string& error) const;
  // Up to `max` ids of messages with a pending report list, in queue order, strictly
  // after `after` (a default-constructed id starts at the beginning), in one short read
  // transaction: for the DSN generator's sweeps, page by page. Empty with `error` set on
  // failure.
  std::vector<base::queue_id> list_reports(base::queue_id after, std::size_t max, std::string& error) const;
  // The message's reference count (0 when it has none: not categorized, or unknown).
  uint32_t references(base::queue_id id, std::string& error) const;

  // Any thread (message_view.cc). The item (hop_id, id) with its message, the body as
  // chunks pointing into the map, under a read transaction the view keeps (see
  // message_view). nullptr with `error` empty: no such item or message (already
  // delivered or removed); with `error` set: I/O error, reader slots exhausted, or a
  // corrupt record.
  std::unique_ptr<message_view> open_delivery(uint64_t hop_id, base::queue_id id, std::string& error) const;
  // Any thread (message_view.cc). Message `id` alone, as open_delivery() reads it but
  // with no item (hop_id 0, item empty): envelope, metadata and the pinned body chunks,
  // for composing a DSN that returns the content. Same lifetime rules; nullptr with
  // `error` empty when the message is gone.
  std::unique_ptr<message_view> open_message(base::queue_id id, std::string& error) const;
  // Views alive now, for tests and metrics.
  std::size_t open_views() const { return open_views_.load(std::memory_order_relaxed); }

  // Deletes messages (record, body chunks, submission entry) in one durable write
  // transaction, from the calling thread; waits for LMDB's writer lock, so not for a
  // loop thread's hot path. Missing ids are skipped. Returns how many were removed, or
  // nullopt with `error` on failure (nothing removed).
  std::optional<std::size_t> remove(std::span<const base::queue_id> ids, std::string& error);
  bool remove(base::queue_id id, std::string& error);

  std::size_t chunk_size() const { return chunk_size_; }
  // Any thread. The free-page reserve now, in pages (writer.cc): new mail is held back
  // (storage_full) rather than leave fewer pages free than this to the writes that drain
  // the store, which are never held back.
  uint64_t reserved_pages() const;
  // The highest queue id ever committed to this store (0 for a new one), read at open():
  // queue id generators start above it, so a clock that stepped back across a restart
  // cannot issue an id again (base::queue_id_generator::raise_floor).
  base::queue_id id_floor() const { return id_floor_; }

 private:
  // writer.cc: lanes, the writer thread and its group commit.
  void start_writer();
  void stop_writer();
  // False when `producer` is out of range or its lane has op's kind at its limit.
  bool post(unsigned producer, write_op* op);
  // lane.h: what every kind's request and take functions share. hand_in leaves a
  // refused request exactly as it was, result and error included.
  template <typename Request>
  bool hand_in(unsigned producer, Request* req);
  template <typename Request>
  std::size_t take_back(unsigned producer, Request** out, std::size_t max);
  void wake_writer();  // after a post (producers) or the stop flag (close)
  void writer_main();
  void commit(const std::vector<write_op*>& batch);
  int write_ops(write_op* const* ops, std::size_t n, std::vector<uint8_t>& codes);
  void retry_alone(write_op* const* ops, std::size_t n, std::vector<uint8_t>& codes);
  void hold_back(std::vector<write_op*>& ops);
  // message_view.cc: open_delivery (with_item) and open_message (without).
  std::unique_ptr<message_view> open_view(uint64_t hop_id, base::queue_id id, bool with_item,
                                          std::string& error) const;

  store_options options_;
  MDB_env* env_ = nullptr;
  std::unique_ptr<databases> dbi_;
  std::size_t chunk_size_ = 0;
  base::queue_id id_floor_;
  std::vector<std::unique_ptr<lane>> lanes_;
  std::thread writer_;
  // Bumped after every post and by close(); the writer futex-waits on it when idle.
  std::atomic<uint64_t> wake_seq_{0};
  std::atomic<bool> stopping_{false};
  // Pages of the largest message (submission or DSN) admitted since open(): part of the
  // free-page reserve (writer.cc). Written by the writer thread, read by reserved_pages().
  std::atomic<uint64_t> largest_message_pages_{0};
  // Views alive (message_view decrements it when it ends its transaction); mutable
  // because opening a view is a read.
  mutable std::atomic<std::size_t> open_views_{0};
};

}  // namespace sluice::store
