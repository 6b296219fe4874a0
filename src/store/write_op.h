// write_op.h: what every request to the store's writer thread has in common (submit, categorize, ...).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

#include "base/queue_id.h"

namespace sluice::store {

// Every kind of write the writer thread applies in its group commit. The order of the
// enumerators is the order in which one transaction applies a batch: its submissions
// first, then its categorizations, then delivery outcomes (so an item categorized and
// delivered in one batch is found by its deliver step), then reroutes (which read the
// refs and report list the deliver step left), then reports (which consume the report
// entries the steps before added, so an outcome and its DSN may share a commit), then the
// administrator's controls (hold, suspend, remove: after every outcome of the batch, so a
// removal also takes what a deliver step of the same batch left). A new kind is appended here, gets a request struct
// in store.h deriving from write_op and a write_handler in a file of its own (write.h).
enum class write_kind : uint8_t { submit, categorize, deliver, reroute, report, control };
inline constexpr std::size_t write_kinds = 6;

inline constexpr std::size_t index_of(write_kind k) { return static_cast<std::size_t>(k); }

// The part of a request that the lane and the writer use without knowing its kind:
// `kind()` routes it to its apply step and back to the right take_*(), `id` orders a
// batch (so puts append), and `error` receives the writer's reason for a failure
// result. The derived struct adds the operation's fields and its result enum.
struct write_op {
  base::queue_id id;      // the message the operation is about
  std::string error;      // set by the writer together with a failure result, for logs
  void* user = nullptr;   // caller's cookie (the session, the job); the store ignores it

  write_kind kind() const { return kind_; }

 protected:
  explicit write_op(write_kind k) : kind_(k) {}
  // Copied and destroyed only as part of a request, never sliced off one or deleted
  // through a write_op*: the store never owns a request.
  write_op(const write_op&) = default;
  write_op(write_op&&) = default;
  write_op& operator=(const write_op&) = default;
  write_op& operator=(write_op&&) = default;
  ~write_op() = default;

 private:
  write_kind kind_;
};

}  // namespace sluice::store
