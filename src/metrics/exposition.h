// exposition.h: collected metrics as Prometheus text format 0.0.4 or JSON, and a reader for the text format.
// Untrusted input: label values (remote domains, MX names) are escaped on output; parse_text() reads a
// scrape from the daemon (sluicectl), which may be any bytes.
#pragma once
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "metrics/registry.h"

namespace sluice::metrics {

constexpr std::string_view text_content_type = "text/plain; version=0.0.4; charset=utf-8";
constexpr std::string_view json_content_type = "application/json";

// "# HELP", "# TYPE" and one line per series (histograms: _bucket{le=...} cumulative, ending
// with le="+Inf", then _sum and _count). Label values escape \ " and newline; bytes that
// are not UTF-8 become U+FFFD, so a remote name cannot break the format or the scraper.
std::string render_text(const std::vector<family_snapshot>& families);

// One JSON object, keyed by metric name:
//   {"sluice_messages_received_total":{"type":"counter","help":"...",
//     "samples":[{"labels":{"connector":"Default"},"value":3}]},
//    "sluice_store_commit_batch_size":{"type":"histogram","help":"...",
//     "samples":[{"labels":{},"buckets":[{"le":1,"count":2},...,{"le":"+Inf","count":9}],
//                 "sum":31,"count":9}]}}
// Non-finite gauge values are null. No newline inside, none at the end.
std::string render_json(const std::vector<family_snapshot>& families);

// Escaping pieces, shared with tests.
std::string escape_label_value(std::string_view v);
std::string escape_help(std::string_view v);
std::string json_string(std::string_view v);  // with the quotes
std::string format_value(double v);           // integers without a fraction, +Inf, -Inf, NaN

// One series line of the text format, as parse_text() reads it back.
struct parsed_sample {
  std::string name;  // with its _bucket/_sum/_count suffix
  std::vector<std::pair<std::string, std::string>> labels;
  double value = 0;
  std::string_view label(std::string_view key) const;  // "" when absent
};
struct parsed_text {
  std::vector<parsed_sample> samples;
  std::vector<std::pair<std::string, std::string>> types;  // # TYPE name type
  std::string error;                                       // "" when every line parsed
};
// Reads what render_text() writes (and the common subset of the format other exporters
// write). Stops at the first malformed line and says which.
parsed_text parse_text(std::string_view text);

}  // namespace sluice::metrics
