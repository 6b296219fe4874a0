// tracking_batch.cc: gathers a loop's tracking lines per file until the worker writes them.
// Untrusted input: addresses and texts inside the records (CSV-quoted by the formatter).
#include "log/tracking_batch.h"

namespace sluice::log {

void tracking_batch::set_file(std::shared_ptr<const append_file> file) {
  if (file == file_) return;
  if (!current_.empty()) sealed_.push_back({std::move(file_), std::move(current_)});
  current_.clear();
  file_ = std::move(file);
}

void tracking_batch::add(const tracking_record& record) {
  if (file_) append_tracking_event(current_, record);
}

void tracking_batch::add(std::string_view time, const tracking_record& record) {
  if (file_) append_tracking_event(current_, time, record);
}

std::vector<tracking_batch::lines_for_file> tracking_batch::take() {
  std::vector<lines_for_file> out = std::move(sealed_);
  sealed_.clear();
  if (!current_.empty()) out.push_back({file_, std::move(current_)});
  current_.clear();
  return out;
}

}  // namespace sluice::log
