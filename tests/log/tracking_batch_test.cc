// tracking_batch_test.cc: a loop's tracking lines are gathered per file and handed over whole, once.
#include <criterion/criterion.h>

#include <string>

#include "log/tracking_batch.h"

using namespace sluice::log;

namespace {

// The batch only hands files over; /dev/null gives distinct open files without a directory.
std::shared_ptr<const append_file> open_file() {
  std::string error;
  auto f = append_file::open("/dev/null", tracking_log_header(), error);
  cr_assert(f != nullptr, "%s", error.c_str());
  return f;
}

tracking_record receive(std::string_view id) { return {tracking_event::receive, id, "s@x.test", {}, "Default", ""}; }

}  // namespace

Test(log_tracking_batch, lines_are_taken_once_with_their_file) {
  auto file = open_file();
  tracking_batch b;
  b.set_file(file);
  cr_assert(b.empty());
  b.add("T1", receive("A"));
  b.add("T2", tracking_record{tracking_event::route, "A", "s@x.test", {}, "Outbound", ""});
  cr_assert(!b.empty());
  auto taken = b.take();
  cr_assert_eq(taken.size(), 1u);
  cr_assert_eq(taken[0].file, file);
  std::string want = "T1,RECEIVE,\"A\",\"s@x.test\",\"\",\"Default\",\"\"\n"
                     "T2,ROUTE,\"A\",\"s@x.test\",\"\",\"Outbound\",\"\"\n";
  cr_assert_str_eq(taken[0].lines.c_str(), want.c_str());
  cr_assert(b.empty());
  cr_assert(b.take().empty(), "nothing is handed over twice");
  b.add(receive("B"));
  taken = b.take();
  cr_assert_eq(taken.size(), 1u);
  cr_assert(taken[0].lines.find(",RECEIVE,\"B\",") != std::string::npos, "%s", taken[0].lines.c_str());
}

Test(log_tracking_batch, a_new_file_does_not_take_earlier_lines) {
  auto old_file = open_file();
  auto new_file = open_file();
  tracking_batch b;
  b.set_file(old_file);
  b.add("T1", receive("OLD"));
  b.set_file(new_file);
  b.add("T2", receive("NEW"));
  auto taken = b.take();
  cr_assert_eq(taken.size(), 2u);
  cr_assert_eq(taken[0].file, old_file, "the older file comes first");
  cr_assert(taken[0].lines.find("OLD") != std::string::npos && taken[0].lines.find("NEW") == std::string::npos);
  cr_assert_eq(taken[1].file, new_file);
  cr_assert(taken[1].lines.find("NEW") != std::string::npos && taken[1].lines.find("OLD") == std::string::npos);
  // Setting the same file again, or a new one with nothing gathered, hands over nothing empty.
  b.set_file(new_file);
  b.set_file(old_file);
  cr_assert(b.take().empty());
}

Test(log_tracking_batch, no_file_means_tracking_is_off) {
  tracking_batch b;
  b.add(receive("A"));
  cr_assert(b.empty());
  cr_assert(b.take().empty());
}
