// store_test.cc: the LMDB queue store: chunked bodies, group commit, MAP_FULL, reopen, read-only, FIFO growth.
#include <criterion/criterion.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "store/store.h"
#include "store_fixture.h"

using namespace sluice;
using store::queue_store;
using store::submit_request;
using store::submit_status;
using store_test::make_request;
using store_test::submit_all;
using store_test::temp_dir;

namespace {

bool open_store(queue_store& s, const std::string& dir, unsigned producers = 1,
                std::size_t map_size = std::size_t{1} << 30, bool read_only = false) {
  store::store_options o;
  o.dir = dir;
  o.producers = producers;
  o.map_size = map_size;
  o.read_only = read_only;
  std::string error;
  bool ok = s.open(std::move(o), error);
  if (!ok) cr_log_error("open failed: %s", error.c_str());
  return ok;
}

}  // namespace

Test(store_body, chunked_bodies_round_trip_without_overflow_pages, .timeout = 60) {
  temp_dir tmp;
  queue_store s;
  cr_assert(open_store(s, tmp.sub("q")));
  const std::size_t cs = s.chunk_size();
  cr_assert_gt(cs, 1000u);
  std::vector<std::size_t> sizes = {0, 1, cs - 1, cs, cs + 1, 10 * cs + 7, 5 * 1024 * 1024 + 3};
  base::queue_id_generator gen(1);
  std::vector<submit_request> reqs;
  for (std::size_t size : sizes) reqs.push_back(make_request(gen.next(), size));
  cr_assert(submit_all(s, 0, reqs));
  std::string error;
  for (std::size_t i = 0; i < reqs.size(); ++i) {
    cr_assert(reqs[i].result == submit_status::ok, "size %zu: %s", sizes[i], reqs[i].error.c_str());
    auto m = s.read_message(reqs[i].id, error);
    cr_assert(m.has_value(), "size %zu not readable: %s", sizes[i], error.c_str());
    cr_assert_eq(m->body.size(), sizes[i]);
    cr_assert(m->body == reqs[i].body, "body of size %zu differs", sizes[i]);
    cr_assert_eq(m->meta.body_chunks, (sizes[i] + cs - 1) / cs);
    cr_assert(m->envelope.mail_from == "sender@example.org");
    cr_assert(m->meta.connector == "default");
  }
  auto st = s.stats(error);
  cr_assert(st.has_value(), "%s", error.c_str());
  cr_assert_eq(st->messages, sizes.size());
  cr_assert_eq(st->pages.overflow_pages, 0u, "chunks must stay on leaf pages");
  cr_assert_gt(st->pages.tree_pages, 5u * 1024 * 1024 / st->pages.page_size);
}

Test(store_commit, concurrent_producers_all_durable_after_reopen, .timeout = 180) {
  temp_dir tmp;
  constexpr unsigned producers = 4;
  constexpr std::size_t per_producer = 3000;
  std::atomic<uint64_t> notifies{0};
  std::vector<std::vector<submit_request>> reqs(producers);
  {
    queue_store s;
    store::store_options o;
    o.dir = tmp.sub("q");
    o.producers = producers;
    o.map_size = std::size_t{1} << 30;
    o.notify = [&](unsigned) { notifies.fetch_add(1); };
    std::string error;
    cr_assert(s.open(std::move(o), error), "%s", error.c_str());
    std::vector<std::thread> threads;
    std::atomic<int> failures{0};
    for (unsigned p = 0; p < producers; ++p) {
      threads.emplace_back([&, p] {
        base::queue_id_generator gen(p);
        for (std::size_t i = 0; i < per_producer; ++i)
          reqs[p].push_back(make_request(gen.next(), 2000 + i % 500, 1 + i % 3));
        if (!submit_all(s, p, reqs[p])) failures.fetch_add(1);
      });
    }
    for (auto& t : threads) t.join();
    cr_assert_eq(failures.load(), 0, "a producer timed out");
    for (auto& v : reqs)
      for (auto& r : v) cr_assert(r.result == submit_status::ok, "%s", r.error.c_str());
    // Group commit: the writer notifies each producer once per commit that held any of
    // its requests, so one transaction per message would mean a notification per
    // message. Producers keep up to ring_capacity requests in flight while each commit
    // waits for its fsync, so commits carry many messages: demand at least 4 per
    // notification on average (a loose bound; typical runs see hundreds).
    const uint64_t total = producers * per_producer;
    cr_assert_gt(notifies.load(), 0u);
    cr_assert_leq(notifies.load() * 4, total, "%lu notifications for %lu messages: commits are not batched",
                  (unsigned long)notifies.load(), (unsigned long)total);
    cr_log_info("%lu notifications for %lu messages", (unsigned long)notifies.load(), (unsigned long)total);
    s.close();
  }
  queue_store s;
  cr_assert(open_store(s, tmp.sub("q"), producers));
  std::string error;
  auto st = s.stats(error);
  cr_assert(st.has_value(), "%s", error.c_str());
  uint64_t expected_rcpts = 0;
  for (auto& v : reqs)
    for (auto& r : v) expected_rcpts += r.envelope.recipients.size();
  cr_assert_eq(st->messages, producers * per_producer);
  cr_assert_eq(st->submission_queued, producers * per_producer);
  cr_assert_eq(st->recipients, expected_rcpts);
  cr_assert(st->oldest_received_at_ms.has_value());
  std::size_t seen = 0;
  base::queue_id prev{0};
  bool ordered = true;
  cr_assert(s.for_each_message(
      [&](base::queue_id id, const smtp::envelope&, const store::message_metadata&) {
        if (seen > 0 && !(prev < id)) ordered = false;
        prev = id;
        ++seen;
        return true;
      },
      error));
  cr_assert_eq(seen, producers * per_producer);
  cr_assert(ordered, "for_each_message must visit in queue order");
  for (unsigned p = 0; p < producers; ++p)
    for (std::size_t i = 0; i < per_producer; i += 97) {
      auto m = s.read_message(reqs[p][i].id, error);
      cr_assert(m.has_value(), "%s", error.c_str());
      cr_assert(m->body == reqs[p][i].body);
      cr_assert_eq(m->envelope.recipients.size(), reqs[p][i].envelope.recipients.size());
    }
}

Test(store_commit, submit_refuses_beyond_lane_capacity_and_bad_producer) {
  temp_dir tmp;
  queue_store s;
  cr_assert(open_store(s, tmp.sub("q"), 1));
  submit_request r = make_request(base::queue_id{1}, 10);
  cr_assert_not(s.submit(1, &r), "producer index out of range");
  std::vector<submit_request> many;
  for (std::size_t i = 0; i < queue_store::ring_capacity + 1; ++i)
    many.push_back(make_request(base::queue_id{100 + i}, 10));
  std::size_t accepted = 0;
  for (auto& m : many)
    if (s.submit(0, &m)) ++accepted;
  // Nothing was taken back, so exactly ring_capacity may be in flight.
  cr_assert_eq(accepted, queue_store::ring_capacity);
  submit_request* out[64];
  std::size_t done = 0;
  while (done < accepted) {
    std::size_t n = s.take_completed(0, out, 64);
    for (std::size_t i = 0; i < n; ++i) cr_assert(out[i]->result == submit_status::ok);
    done += n;
    if (n == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  cr_assert(s.submit(0, &many.back()), "room again after completions were taken");
  // The writer borrows the request until it is taken back: `many` must outlive that.
  while (s.take_completed(0, out, 64) == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
}

Test(store_full, map_full_gives_storage_full_and_store_stays_usable, .timeout = 60) {
  temp_dir tmp;
  queue_store s;
  cr_assert(open_store(s, tmp.sub("q"), 1, std::size_t{1} << 20));  // 1 MiB map
  base::queue_id_generator gen(2);
  std::vector<submit_request> reqs;
  reqs.push_back(make_request(gen.next(), 3 * 1024 * 1024));  // cannot fit at all
  for (int i = 0; i < 5; ++i) reqs.push_back(make_request(gen.next(), 1000));
  cr_assert(submit_all(s, 0, reqs));
  // Larger than the map could hold even empty: permanent (552), not "full, try later".
  cr_assert(reqs[0].result == submit_status::too_large, "got %d: %s",
            static_cast<int>(reqs[0].result), reqs[0].error.c_str());
  cr_assert_not(reqs[0].error.empty());
  for (int i = 1; i < 6; ++i) cr_assert(reqs[i].result == submit_status::ok, "%s", reqs[i].error.c_str());

  // Fill the map with small messages until it refuses; then the store still works
  // after space is freed.
  std::vector<base::queue_id> stored;
  for (auto& r : reqs)
    if (r.result == submit_status::ok) stored.push_back(r.id);
  bool saw_full = false;
  for (int round = 0; round < 200 && !saw_full; ++round) {
    std::vector<submit_request> batch;
    for (int i = 0; i < 20; ++i) batch.push_back(make_request(gen.next(), 4000));
    cr_assert(submit_all(s, 0, batch));
    for (auto& r : batch) {
      if (r.result == submit_status::ok) stored.push_back(r.id);
      else if (r.result == submit_status::storage_full) saw_full = true;
      else cr_assert_fail("unexpected result %d: %s", static_cast<int>(r.result), r.error.c_str());
    }
  }
  cr_assert(saw_full, "a 1 MiB map must fill up");
  std::string error;
  auto removed = s.remove(std::span<const base::queue_id>(stored.data(), stored.size() / 2), error);
  cr_assert(removed.has_value(), "%s", error.c_str());
  std::vector<submit_request> after;
  for (int i = 0; i < 5; ++i) after.push_back(make_request(gen.next(), 1500));
  cr_assert(submit_all(s, 0, after));
  for (auto& r : after) cr_assert(r.result == submit_status::ok, "%s", r.error.c_str());
  auto m = s.read_message(after.back().id, error);
  cr_assert(m.has_value() && m->body == after.back().body);
}

Test(store_reopen, close_and_reopen_keeps_every_message) {
  temp_dir tmp;
  std::vector<submit_request> reqs;
  base::queue_id_generator gen(3);
  for (int i = 0; i < 50; ++i) reqs.push_back(make_request(gen.next(), 100 * i, 2));
  {
    queue_store s;
    cr_assert(open_store(s, tmp.sub("q")));
    cr_assert(submit_all(s, 0, reqs));
  }  // destructor closes
  queue_store s;
  cr_assert(open_store(s, tmp.sub("q")));
  std::string error;
  for (auto& r : reqs) {
    auto m = s.read_message(r.id, error);
    cr_assert(m.has_value(), "%s lost: %s", r.id.text().c_str(), error.c_str());
    cr_assert(m->body == r.body);
  }
  auto st = s.stats(error);
  cr_assert_eq(st->messages, 50u);
  cr_assert_eq(st->recipients, 100u);
  cr_assert(s.remove(reqs[0].id, error));
  cr_assert_not(s.remove(reqs[0].id, error), "second remove finds nothing");
  auto gone = s.read_message(reqs[0].id, error);
  cr_assert_not(gone.has_value());
  cr_assert(error.empty(), "missing is not an error");
  st = s.stats(error);
  cr_assert_eq(st->messages, 49u);
  cr_assert_eq(st->recipients, 98u);
  cr_assert_eq(st->submission_queued, 49u);
}

Test(store_readonly, sees_committed_messages_while_writer_is_open, .timeout = 60) {
  temp_dir tmp;
  queue_store s;
  cr_assert(open_store(s, tmp.sub("q")));
  std::vector<submit_request> reqs;
  base::queue_id_generator gen(4);
  for (int i = 0; i < 20; ++i) reqs.push_back(make_request(gen.next(), 3000));
  cr_assert(submit_all(s, 0, reqs));
  // LMDB must not be opened twice in one process (closing the second handle drops the
  // first one's fcntl locks), so the read-only reader runs in a child, like sluicectl.
  pid_t pid = fork();
  cr_assert_neq(pid, -1);
  if (pid == 0) {
    queue_store ro;
    store::store_options o;
    o.dir = tmp.sub("q");
    o.read_only = true;
    std::string error;
    if (!ro.open(std::move(o), error)) _exit(2);
    auto st = ro.stats(error);
    if (!st || st->messages != 20) _exit(3);
    auto m = ro.read_message(reqs[7].id, error);
    if (!m || m->body != reqs[7].body) _exit(4);
    submit_request r = make_request(gen.next(), 10);
    if (ro.submit(0, &r)) _exit(5);  // a read-only store has no writer
    _exit(0);
  }
  int status = 0;
  cr_assert_eq(waitpid(pid, &status, 0), pid);
  cr_assert(WIFEXITED(status));
  cr_assert_eq(WEXITSTATUS(status), 0, "read-only child failed at step %d", WEXITSTATUS(status));
}

Test(store_readonly, missing_directory_is_a_clear_error) {
  temp_dir tmp;
  queue_store s;
  store::store_options o;
  o.dir = tmp.sub("does-not-exist");
  o.read_only = true;
  std::string error;
  cr_assert_not(s.open(std::move(o), error));
  cr_assert(error.find("no queue directory") != std::string::npos, "got: %s", error.c_str());
  cr_assert_not(std::filesystem::exists(tmp.sub("does-not-exist")), "read-only must not create");
}

// The fragmentation defence: a FIFO stream of 2-20 KB messages through a small map
// must keep reusing freed pages, so the data file stops growing after warm-up.
Test(store_fifo, file_size_stays_bounded, .timeout = 600) {
  temp_dir tmp;
  queue_store s;
  constexpr std::size_t map = std::size_t{48} << 20;
  cr_assert(open_store(s, tmp.sub("q"), 1, map));
  base::queue_id_generator gen(5);
  constexpr std::size_t total = 20000, batch = 100, window = 400;
  uint32_t seed = 7;
  std::vector<base::queue_id> live;
  std::size_t head = 0;
  uint64_t warm_size = 0, max_size = 0;
  std::string error;
  for (std::size_t sent = 0; sent < total; sent += batch) {
    std::vector<submit_request> reqs;
    for (std::size_t i = 0; i < batch; ++i) {
      seed = seed * 1664525u + 1013904223u;
      reqs.push_back(make_request(gen.next(), 2048 + (seed >> 8) % (18 * 1024)));
    }
    cr_assert(submit_all(s, 0, reqs));
    for (auto& r : reqs) {
      cr_assert(r.result == submit_status::ok, "message %zu: %s", sent, r.error.c_str());
      live.push_back(r.id);
    }
    if (live.size() - head > window) {
      std::size_t n = live.size() - head - window;
      auto removed = s.remove(std::span<const base::queue_id>(live.data() + head, n), error);
      cr_assert(removed.has_value() && *removed == n, "%s", error.c_str());
      head += n;
    }
    auto st = s.stats(error);
    cr_assert(st.has_value());
    if (sent + batch == 2000) warm_size = st->file_size;
    if (sent + batch > 2000 && st->file_size > max_size) max_size = st->file_size;
  }
  auto st = s.stats(error);
  cr_log_info("warm-up file %lu bytes, max after %lu, end %lu, free pages %lu",
              (unsigned long)warm_size, (unsigned long)max_size, (unsigned long)st->file_size,
              (unsigned long)st->pages.free_pages);
  cr_assert_eq(st->messages, window);
  cr_assert_eq(st->pages.overflow_pages, 0u);
  // ~220 MB went through a 48 MiB map; the file may settle a little above its warm-up
  // size (freelist pages, B-tree rebalancing) but must not keep growing.
  cr_assert_leq(max_size, warm_size + warm_size / 4, "file grew from %lu to %lu",
                (unsigned long)warm_size, (unsigned long)max_size);
}

Test(store_ids, highest_id_ever_committed_survives_its_message_and_a_reopen) {
  temp_dir tmp;
  base::queue_id_generator gen(5);
  std::vector<submit_request> reqs;
  for (int i = 0; i < 3; ++i) reqs.push_back(make_request(gen.next(), 100));
  const base::queue_id highest = reqs.back().id;
  {
    queue_store s;
    cr_assert(open_store(s, tmp.sub("q")));
    cr_assert_eq(s.id_floor().value, 0u, "a new store has no floor");
    cr_assert(submit_all(s, 0, reqs));
    std::string error;
    std::vector<base::queue_id> all{reqs[0].id, reqs[1].id, reqs[2].id};
    cr_assert(s.remove(std::span<const base::queue_id>(all.data(), all.size()), error).has_value(), "%s",
              error.c_str());
  }
  queue_store s;
  cr_assert(open_store(s, tmp.sub("q")));
  cr_assert(s.id_floor() == highest, "floor %s, highest issued %s", s.id_floor().text().c_str(),
            highest.text().c_str());
}

// A batch can fail for want of room although its estimate fitted: the estimate counts
// body pages, not a huge envelope. Its requests are then retried one by one, and those
// retries must keep the free-page reserve for deletions too, or they fill the map to its
// last page.
Test(store_full, retries_after_a_failed_batch_keep_the_free_page_reserve, .timeout = 60) {
  temp_dir tmp;
  queue_store s;
  cr_assert(open_store(s, tmp.sub("q"), 1, std::size_t{4} << 20));  // 4 MiB map, 32 reserved pages
  base::queue_id_generator gen(2);
  bool saw_full = false;
  for (int round = 0; round < 100 && !saw_full; ++round) {
    std::vector<submit_request> batch;
    // 1,600 recipients: a ~35 KB envelope record (about 9 pages) behind a 100-byte body.
    for (int i = 0; i < 20; ++i) batch.push_back(make_request(gen.next(), 100, 1600));
    cr_assert(submit_all(s, 0, batch));
    for (auto& r : batch) saw_full |= r.result == submit_status::storage_full;
  }
  cr_assert(saw_full, "a 4 MiB map must fill up");
  std::string error;
  auto st = s.stats(error);
  cr_assert(st.has_value(), "%s", error.c_str());
  const uint64_t map_pages = st->map_size / st->pages.page_size;
  const uint64_t left = map_pages - (st->pages.pages_used - st->pages.free_pages);
  cr_assert_geq(left, 24u, "only %llu of %llu pages left: the retries used up the reserve",
                static_cast<unsigned long long>(left), static_cast<unsigned long long>(map_pages));
}
