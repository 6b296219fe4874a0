// metrics_commands.cc: `metrics [--json]`: the numbers the Prometheus endpoint serves, over the admin socket.
// Untrusted input: none beyond the checked flag (label values in the answer are escaped by exposition).
#include "admin/commands.h"
#include "metrics/daemon.h"
#include "metrics/exposition.h"

namespace sluice::admin {

void add_metrics_commands(command_table& t) {
  command c;
  c.path = {"metrics"};
  c.args_usage = "[--json]";
  c.summary = "every metric, in the Prometheus text format or as one line of JSON";
  c.options = {{"json", false}};
  c.apply = [](const arguments& a, const context&, response& r) {
    // Collected here, on the admin loop: the same numbers a scrape would get now.
    const auto families = metrics::daemon().reg.collect();
    if (a.has("json")) {
      r.add(metrics::render_json(families));
      return;
    }
    const std::string text = metrics::render_text(families);
    size_t start = 0;
    while (start < text.size()) {
      size_t nl = text.find('\n', start);
      if (nl == std::string::npos) nl = text.size();
      r.add(text.substr(start, nl - start));
      start = nl + 1;
    }
  };
  t.add(std::move(c));
}

}  // namespace sluice::admin
