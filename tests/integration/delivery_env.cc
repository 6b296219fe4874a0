// delivery_env.cc: sluiced + dnsmasq + blaster sinks for the delivery tests.
#include "delivery_env.h"

#include <algorithm>
#include <fstream>
#include <sstream>

namespace sluice::testing {

delivery_env::delivery_env(const std::string& zone) : dns("local=/test/\n" + zone), sink_port(free_port()) {}

void delivery_env::configure(const std::string& connectors, const std::string& delivery_keys, const std::string& extra) {
  std::ostringstream c;
  c << R"([server]
hostname = "mx.sluice.test"
workers = 2
queue_dir = "@DIR@/queue"
log_dir = "@DIR@/log"
map_size = "256M"

[[accepted_domain]]
name = "sluice.test"
type = "authoritative"

[[receive_connector]]
name = "Relay"
type = "enterprise"
bindings = ["127.0.0.1:@PORT@"]
remote_ranges = ["127.0.0.0/8"]
permissions = { anonymous = true, relay = true }
)" << relay_keys << R"(
[dns]
servers = [")" << dns.server() << R"("]
timeout_ms = 500
tries = 1
negative_ttl = 1

)";
  if (connectors.empty())
    c << "[[send_connector]]\nname = \"Internet\"\naddress_spaces = [\"*\"]\ntls = \"none\"\nport = " << sink_port << "\n\n";
  else
    c << connectors << "\n";
  c << "[delivery]\nretry_first = 1\nretry_max = 2\nidle_timeout = 1\n" << delivery_keys << "\n"
    << "[delivery.timeouts]\nconnect = 2\ngreeting = 2\nhelo = 2\nmail = 2\nrcpt = 2\ndata = 2\n"
       "data_block = 5\nfinal_dot = 5\n\n"
    << extra;
  daemon.write_config(c.str());
}

bool delivery_env::start() { return daemon.start(); }

sink_process& delivery_env::sink(const std::string& address, std::vector<std::string> extra) {
  auto& slot = sinks[address];
  slot = std::make_unique<sink_process>(daemon.dir(), "sink-" + address, address, sink_port, std::move(extra));
  return *slot;
}

send_result delivery_env::send(const std::string& name, int messages, std::vector<std::string> extra) {
  std::vector<std::string> args{"--messages", std::to_string(messages)};
  args.insert(args.end(), extra.begin(), extra.end());
  // Defaults for what the test did not choose (blaster takes each option once).
  auto has = [&](const char* opt) { return std::find(extra.begin(), extra.end(), opt) != extra.end(); };
  if (!has("--sessions")) args.insert(args.end(), {"--sessions", "4"});
  if (!has("--size")) args.insert(args.end(), {"--size", "2k"});
  return blaster_send(daemon.dir(), name, daemon.port(), args);
}

std::vector<std::string> delivery_env::received_logs() const {
  std::vector<std::string> out;
  for (const auto& [address, s] : sinks) out.push_back(s->record_file());
  return out;
}

verify_result delivery_env::verify(const send_result& sent) {
  for (auto& [address, s] : sinks) s->stop();
  return blaster_verify({sent.record}, received_logs());
}

namespace {

// date,event,"id","sender",...: whether the sender field is the null sender's.
bool from_null_sender(const std::string& line) {
  std::size_t pos = 0;
  for (int f = 0; f < 3 && pos != std::string::npos; ++f) {
    if (line[pos] == '"') pos = line.find('"', pos + 1);
    pos = line.find(',', pos);
    if (pos != std::string::npos) ++pos;
  }
  return pos != std::string::npos && line.compare(pos, 5, "\"<>\",") == 0;
}

std::vector<std::string> lines_of(const std::string& file, const std::string& event, bool reports) {
  std::ifstream in(file);
  std::vector<std::string> out;
  std::string line;
  const std::string field = "," + event + ",";
  while (std::getline(in, line))
    if (line.find(field) != std::string::npos && from_null_sender(line) == reports) out.push_back(line);
  return out;
}

}  // namespace

std::vector<std::string> delivery_env::tracking(const std::string& event) const {
  return lines_of(daemon.dir() + "/log/tracking.csv", event, false);
}

std::vector<std::string> delivery_env::report_tracking(const std::string& event) const {
  return lines_of(daemon.dir() + "/log/tracking.csv", event, true);
}

std::size_t delivery_env::tracked_recipients(const std::string& event) const {
  std::size_t n = 0;
  for (const auto& line : tracking(event)) {
    // date,event,id,sender,recipients,...: the fifth field, quoted or not.
    std::size_t pos = 0;
    for (int f = 0; f < 4; ++f) {
      if (line[pos] == '"') pos = line.find('"', pos + 1);
      pos = line.find(',', pos) + 1;
    }
    std::size_t end = line[pos] == '"' ? line.find('"', pos + 1) : line.find(',', pos);
    const std::string field = line.substr(pos, end - pos);
    n += 1;
    for (char ch : field)
      if (ch == ';') ++n;
  }
  return n;
}

long long delivery_env::queued_items() const {
  // Accepted but not yet categorized counts too: those become delivery items.
  const auto r = daemon.ctl("queue list --json");
  const long long items = json_number(r.output, "delivery_items"), waiting = json_number(r.output, "submission_queued");
  return items < 0 || waiting < 0 ? -1 : items + waiting;
}

}  // namespace sluice::testing
