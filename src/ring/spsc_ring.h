// spsc_ring.h: bounded lock-free single-producer/single-consumer ring for cross-thread handoff.
#pragma once
#include <array>
#include <atomic>
#include <cstddef>
#include <type_traits>
#include <utility>

namespace sluice::ring {

// Padding unit for the fields written by different threads. A cache line is 64 bytes
// on x86-64 and most ARM cores, but Intel's adjacent-line prefetcher pulls lines in
// pairs, so two fields 64 bytes apart can still ping-pong; 128 keeps them apart on
// both. (std::hardware_destructive_interference_size is not used because its value
// is an ABI hazard GCC warns about.)
inline constexpr std::size_t ring_line_size = 128;

// Exactly one thread may call the push* functions and exactly one (other) thread the
// pop* functions for the lifetime of the ring; which threads those are is up to the
// owner. Elements are moved in on push and moved out on pop: the ring owns an element
// only while it sits in a slot. Indexes are free-running counters (never wrapped), so
// full is `tail - head == Capacity` and empty is `tail == head` without a spare slot.
template <typename T, std::size_t Capacity>
class spsc_ring {
  static_assert(Capacity >= 2 && (Capacity & (Capacity - 1)) == 0,
                "capacity must be a power of two");
  static_assert(std::is_default_constructible_v<T> && std::is_move_assignable_v<T>);

 public:
  static constexpr std::size_t capacity = Capacity;

  spsc_ring() = default;
  spsc_ring(const spsc_ring&) = delete;
  spsc_ring& operator=(const spsc_ring&) = delete;

  // Producer side. False (and `value` untouched) when the ring is full.
  bool push(T&& value) {
    const std::size_t tail = tail_.load(std::memory_order_relaxed);
    if (tail - producer_cached_head_ == Capacity) {
      // Only reload the consumer's index when the stale copy says full: this is what
      // keeps the head's cache line from bouncing to the producer on every push.
      producer_cached_head_ = head_.load(std::memory_order_acquire);
      if (tail - producer_cached_head_ == Capacity) return false;
    }
    slots_[tail & mask] = std::move(value);
    // Release publishes the slot write before the consumer can see the new tail.
    tail_.store(tail + 1, std::memory_order_release);
    return true;
  }
  bool push(const T& value) {
    T copy(value);
    return push(std::move(copy));
  }

  // Pushes as many of items[0..n) as fit, in order, with one release store; returns
  // how many were taken. Items not taken are left untouched for the caller to retry.
  std::size_t push_batch(T* items, std::size_t n) {
    const std::size_t tail = tail_.load(std::memory_order_relaxed);
    std::size_t free_slots = Capacity - (tail - producer_cached_head_);
    if (free_slots < n) {
      producer_cached_head_ = head_.load(std::memory_order_acquire);
      free_slots = Capacity - (tail - producer_cached_head_);
    }
    const std::size_t count = n < free_slots ? n : free_slots;
    for (std::size_t i = 0; i < count; ++i) slots_[(tail + i) & mask] = std::move(items[i]);
    if (count != 0) tail_.store(tail + count, std::memory_order_release);
    return count;
  }

  // Consumer side. False when the ring is empty.
  bool pop(T& out) {
    const std::size_t head = head_.load(std::memory_order_relaxed);
    if (head == consumer_cached_tail_) {
      consumer_cached_tail_ = tail_.load(std::memory_order_acquire);
      if (head == consumer_cached_tail_) return false;
    }
    out = std::move(slots_[head & mask]);
    // Release orders the slot read before the producer may overwrite the slot.
    head_.store(head + 1, std::memory_order_release);
    return true;
  }

  // Pops up to `max` elements into out[0..) in FIFO order; returns how many.
  std::size_t pop_batch(T* out, std::size_t max) {
    const std::size_t head = head_.load(std::memory_order_relaxed);
    std::size_t available = consumer_cached_tail_ - head;
    if (available < max) {
      consumer_cached_tail_ = tail_.load(std::memory_order_acquire);
      available = consumer_cached_tail_ - head;
    }
    const std::size_t count = max < available ? max : available;
    for (std::size_t i = 0; i < count; ++i) out[i] = std::move(slots_[(head + i) & mask]);
    if (count != 0) head_.store(head + count, std::memory_order_release);
    return count;
  }

  // Approximate from any thread; exact only on the consumer when the producer is idle.
  std::size_t size_approx() const {
    const std::size_t tail = tail_.load(std::memory_order_acquire);
    const std::size_t head = head_.load(std::memory_order_acquire);
    return tail - head;
  }
  bool empty_approx() const { return size_approx() == 0; }

 private:
  static constexpr std::size_t mask = Capacity - 1;

  // Layout: consumer-written fields on one line, producer-written fields on another,
  // slots after both. If head and tail shared a line, every push would invalidate the
  // consumer core's copy and every pop the producer's (false sharing), turning each
  // operation into a cross-core cache miss even though the threads never touch the
  // same variable. Each side's cached copy of the opposite index lives on its own
  // side's line, since only that side reads or writes it.
  alignas(ring_line_size) std::atomic<std::size_t> head_{0};  // written by the consumer
  std::size_t consumer_cached_tail_ = 0;                       // consumer-private
  alignas(ring_line_size) std::atomic<std::size_t> tail_{0};  // written by the producer
  std::size_t producer_cached_head_ = 0;                       // producer-private
  alignas(ring_line_size) std::array<T, Capacity> slots_{};
};

}  // namespace sluice::ring
