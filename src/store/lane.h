// lane.h: one producer's channel to the store's writer thread: write operations in, finished ones back.
#pragma once
#include <algorithm>
#include <array>
#include <bit>
#include <cstddef>
#include <memory>

#include "ring/spsc_ring.h"
#include "store/store.h"
#include "store/write_op.h"

namespace sluice::store {

// How many requests of each kind (indexed by write_kind) one producer may have in
// flight: handed to the store and not yet taken back.
inline constexpr std::array<std::size_t, write_kinds> in_flight_limits = {
    queue_store::ring_capacity,        // submit
    queue_store::categorize_capacity,  // categorize
    queue_store::deliver_capacity,     // deliver
    queue_store::reroute_capacity,     // reroute
    queue_store::report_capacity,      // report
    queue_store::control_capacity,     // control
};

constexpr std::size_t all_in_flight() {
  std::size_t n = 0;
  for (std::size_t limit : in_flight_limits) n += limit;
  return n;
}

// Both rings of a lane carry every kind. They hold every kind's limit at once, so a
// producer under its limit always finds room in to_writer, and the writer can always
// push a completion to to_producer: the writer never waits for a producer.
inline constexpr std::size_t lane_capacity = std::bit_ceil(all_in_flight());

// Ownership: a request posted with post() belongs to the store until take() returns it;
// in between the writer thread reads it and writes its result, and nobody else may
// touch it. The lane never allocates, frees or copies a request, only its pointer.
//
// Threads: post() and take() only on the producer's thread (they also own the in-flight
// counts and the held completions, which are therefore plain fields); collect() and
// complete() only on the writer thread. The rings are the only state both touch.
class lane {
 public:
  lane() {
    for (std::size_t k = 0; k < write_kinds; ++k) held_[k].reserve(in_flight_limits[k]);
  }
  lane(const lane&) = delete;
  lane& operator=(const lane&) = delete;

  // Producer. Whether post() would take a request of kind `k` now.
  bool has_room(write_kind k) const { return in_flight_[index_of(k)] < in_flight_limits[index_of(k)]; }

  // Producer. False when the producer already has its kind's limit in flight; `op` then
  // stays the caller's.
  bool post(write_op* op) {
    const std::size_t k = index_of(op->kind());
    if (!has_room(op->kind())) return false;
    if (!to_writer_.push(op)) return false;  // cannot happen: lane_capacity covers every limit
    ++in_flight_[k];
    return true;
  }

  // Producer. Moves up to `max` finished requests of Request's kind into out[0..), in the
  // order they were posted, and returns how many; they are the caller's again.
  // Completions of other kinds met on the way are held for their own take(), so one
  // kind never hides or reorders another's.
  template <typename Request>
  std::size_t take(Request** out, std::size_t max) {
    constexpr std::size_t k = index_of(Request::kind_tag);
    std::size_t n = 0;
    while (n < max && !held_[k].empty()) out[n++] = static_cast<Request*>(held_[k].pop());
    write_op* got[64];
    while (n < max) {
      const std::size_t m = to_producer_.pop_batch(got, std::min<std::size_t>(64, max - n));
      if (m == 0) break;
      for (std::size_t i = 0; i < m; ++i) {
        if (got[i]->kind() == Request::kind_tag) out[n++] = static_cast<Request*>(got[i]);
        else held_[index_of(got[i]->kind())].push(got[i]);
      }
    }
    in_flight_[k] -= n;
    return n;
  }

  // Writer. Pops up to `max` posted requests, in posting order.
  std::size_t collect(write_op** out, std::size_t max) { return to_writer_.pop_batch(out, max); }
  // Writer. Hands a finished request back; never full (see lane_capacity).
  void complete(write_op* op) { to_producer_.push(op); }

 private:
  // Completions of one kind taken off to_producer by a take() of another kind, oldest
  // first. Never holds more than the kind's in-flight limit, the room reserved for it.
  class held_fifo {
   public:
    void reserve(std::size_t capacity) {
      slots_ = std::make_unique<write_op*[]>(capacity);
      capacity_ = capacity;
    }
    bool empty() const { return count_ == 0; }
    void push(write_op* op) { slots_[(head_ + count_++) % capacity_] = op; }
    write_op* pop() {
      write_op* op = slots_[head_];
      head_ = (head_ + 1) % capacity_;
      --count_;
      return op;
    }

   private:
    std::unique_ptr<write_op*[]> slots_;
    std::size_t capacity_ = 0, head_ = 0, count_ = 0;
  };

  ring::spsc_ring<write_op*, lane_capacity> to_writer_;
  ring::spsc_ring<write_op*, lane_capacity> to_producer_;
  // Producer-only fields, on a line of their own so that the writer's ring traffic does
  // not invalidate them (ring_line_size explains the padding unit).
  alignas(ring::ring_line_size) std::array<std::size_t, write_kinds> in_flight_{};
  std::array<held_fifo, write_kinds> held_;
};

template <typename Request>
bool queue_store::hand_in(unsigned producer, Request* req) {
  if (producer >= lanes_.size() || req == nullptr || !lanes_[producer]->has_room(req->kind())) return false;
  req->result = decltype(req->result)::pending;
  req->error.clear();
  return post(producer, req);
}

template <typename Request>
std::size_t queue_store::take_back(unsigned producer, Request** out, std::size_t max) {
  if (producer >= lanes_.size()) return 0;
  return lanes_[producer]->take(out, max);
}

}  // namespace sluice::store
