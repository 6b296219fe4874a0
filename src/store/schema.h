// schema.h: every LMDB named database of the queue store and its key layout, in one place.
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>

#include "base/queue_id.h"

namespace sluice::store::schema {

// All keys are fixed-width and big-endian, so LMDB's default memcmp ordering makes
// cursor order equal queue order (queue ids are time-ordered, see base/queue_id.h).
//
// messages     key: queue id (8)                  value: envelope record (record.h):
//              version byte, smtp::envelope, received_at (unix ms), receive connector,
//              client address, client HELO, AUTH user, body size, body chunk count.
//              Records are small (a few hundred bytes); an envelope with thousands of
//              recipients can exceed the inline limit and use overflow pages, which is
//              rare enough not to fragment the file.
// bodies       key: queue id (8) + chunk index (4)  value: up to chunk_size bytes of
//              the message body (the bytes after DATA, dot-unstuffed), in order.
//              A message with an empty body has no chunks.
// submission   key: queue id (8)                  value: empty. Messages accepted but
//              not yet categorized; the categorizer deletes the entry in the same
//              transaction that creates the delivery items.
// meta         key: ASCII name                    value: u64 big-endian counter.
//              "recipients": total recipients of all messages in `messages`, so
//              stats() needs no scan.
//              "next_hop_id": the last hop id handed out (ids start at 1).
//
// The categorizer's databases (written by the categorize transaction, record.h):
// hop_names    key: next-hop key text (route::table::hop_key, e.g. "smarthost:Outbound")
//              value: hop id (8). Hop ids are assigned once per key and never reused,
//              so delivery keys stay short and fixed-width whatever the key text.
// hops         key: hop id (8)                    value: queue record: hop key text,
//              status, item and recipient counts, oldest message, next retry time and
//              last error: what `sluicectl queue list` shows per delivery queue.
// delivery     key: hop id (8) + queue id (8)     value: delivery item record: the
//              indices of the message's recipients that travel to this hop, state,
//              attempts, next attempt, last error. Cursor order within one hop is queue
//              order. The deliver transaction removes recipients as they are delivered
//              or fail, and the item when none are left.
// refs         key: queue id (8)                  value: u32 big-endian: delivery items
//              plus report lists still referring to the message. The body is stored
//              once; whoever drops the count to zero deletes message and body.
// reports      key: queue id (8)                  value: report list record: the pending
//              delivery-status reports of the message, one entry per (recipient, action)
//              at most: recipients the categorizer could not route or a next hop refused
//              for good (failed), delayed ones that get a delay report, delivered ones
//              that asked for a success report (delivered, relayed), each with status,
//              remote MTA and diagnostic. Written in the transaction that records the
//              outcome; the report transaction that enqueues the DSN removes the entries
//              it covers. While non-empty it holds one reference to the message; an
//              emptied list is deleted. Stores written before version 3 named it `failed`
//              (env.cc moves its entries here at open).
// Reserved: `retry` (due time + queue id → item).
inline constexpr const char* messages_db = "messages";
inline constexpr const char* bodies_db = "bodies";
inline constexpr const char* submission_db = "submission";
inline constexpr const char* meta_db = "meta";
inline constexpr const char* hop_names_db = "hop_names";
inline constexpr const char* hops_db = "hops";
inline constexpr const char* delivery_db = "delivery";
inline constexpr const char* refs_db = "refs";
inline constexpr const char* reports_db = "reports";
// The name `reports` had before it held more than failures; read at open (env.cc).
inline constexpr const char* legacy_failed_db = "failed";
inline constexpr const char* retry_db = "retry";        // reserved
inline constexpr unsigned max_dbs = 16;                  // room for the reserved ones and more

inline constexpr const char* meta_recipients = "recipients";
inline constexpr const char* meta_next_hop_id = "next_hop_id";
// u64 big-endian: the highest queue id any submit committed. Kept after the message is
// gone, so ids stay unique for the life of the store, whatever the clock does.
inline constexpr const char* meta_id_floor = "id_floor";

// Bounce rules (sluicectl message bounce --for): "bounce:" + lower-case domain, value u64
// big-endian unix ms until which mail for the domain fails at its first attempt.
inline constexpr const char* meta_bounce_prefix = "bounce:";

// Longest hop key text accepted as a hop_names key; LMDB's default maximum key size is
// 511, and a hop key is a connector name plus a domain (at most 255), so this is ample.
inline constexpr std::size_t max_hop_key_size = 480;

inline constexpr std::size_t id_key_size = 8;
inline constexpr std::size_t chunk_key_size = 12;

using id_key = std::array<unsigned char, id_key_size>;
using chunk_key = std::array<unsigned char, chunk_key_size>;

inline constexpr std::size_t delivery_key_size = 16;
using delivery_key = std::array<unsigned char, delivery_key_size>;

inline id_key make_id_key(base::queue_id id) { return id.key(); }

inline id_key make_hop_key(uint64_t hop_id) {
  id_key k{};
  for (int i = 0; i < 8; ++i) k[i] = static_cast<unsigned char>(hop_id >> (56 - 8 * i));
  return k;
}

inline uint64_t hop_id_of(const unsigned char* key) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | key[i];
  return v;
}

inline delivery_key make_delivery_key(uint64_t hop_id, base::queue_id id) {
  delivery_key k{};
  auto h = make_hop_key(hop_id);
  auto q = id.key();
  for (std::size_t i = 0; i < 8; ++i) {
    k[i] = h[i];
    k[8 + i] = q[i];
  }
  return k;
}

inline chunk_key make_chunk_key(base::queue_id id, uint32_t index) {
  chunk_key k{};
  auto idk = id.key();
  for (std::size_t i = 0; i < id_key_size; ++i) k[i] = idk[i];
  for (int i = 0; i < 4; ++i) k[8 + i] = static_cast<unsigned char>(index >> (24 - 8 * i));
  return k;
}

// The fragmentation defence (DESIGN.md, "The store"). LMDB keeps a key/value pair on
// its leaf page only while the node fits in me_nodemax; a larger value goes to a run of
// *contiguous* overflow pages. In a FIFO queue freed page runs are scattered, so large
// bodies would keep needing fresh pages at the end of the file and the file would
// grow without bound. Chunking every body below the inline limit means every page we
// allocate is a single page, which any freed page can satisfy.
//
// From mdb.c (0.9.x): me_nodemax = (((page_size - PAGEHDRSZ) / MDB_MINKEYS) & -2)
// - sizeof(indx_t), with PAGEHDRSZ = 16, MDB_MINKEYS = 2, sizeof(indx_t) = 2; a leaf
// node is NODESIZE (8) + key + value and goes to overflow when it exceeds me_nodemax.
// For 4096-byte pages: nodemax = 2038, so a chunk holds 2038 - 8 - 12 = 2018 bytes
// and two chunks fill a leaf page. mdb_env_get_maxkeysize() (511 in Debian's build)
// only bounds keys; env.cc checks our 12-byte keys against it at open.
inline constexpr std::size_t lmdb_page_header = 16;
inline constexpr std::size_t lmdb_node_header = 8;

constexpr std::size_t chunk_size_for_page(std::size_t page_size) {
  const std::size_t nodemax = (((page_size - lmdb_page_header) / 2) & ~std::size_t{1}) - 2;
  return nodemax - lmdb_node_header - chunk_key_size;
}
static_assert(chunk_size_for_page(4096) == 2018);

}  // namespace sluice::store::schema
