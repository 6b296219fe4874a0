// crash_battery_test.cc: sluiced SIGKILLed at random moments of receive, categorization, delivery and DSN generation, 20+ times.
// Untrusted input: none (the test's own daemon, sinks, logs and Maildir).
//
// blaster sends without pause (2 recipients a message, a.test and b.test) into sluiced,
// which relays to two blaster sinks found through the test's dnsmasq. b.test's sink refuses
// some recipients (550 5.1.1), so failure DSNs are made all the time and delivered back
// into the sender's Maildir (home.test). Meanwhile the daemon is killed with SIGKILL and
// restarted on the same queue again and again. When the queue has drained, every
// (message, recipient) blaster saw acknowledged must have arrived intact, and every
// refused one must be reported by exactly one DSN. A copy beyond the first is allowed only
// when the first arrived just before a kill (delivered, its outcome not yet durable).
// SLUICE_CRASH_KILLS=N runs the long battery with N kills (crash_battery/long_run).
#include <criterion/criterion.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "child.h"
#include "delivery_env.h"

using namespace sluice::testing;
using namespace std::chrono_literals;

namespace {

const char* zone =
    "mx-host=a.test,mx.a.test,10\nhost-record=mx.a.test,127.0.0.2\n"
    "mx-host=b.test,mx.b.test,10\nhost-record=mx.b.test,127.0.0.3\n";

// Recipients are u<n>.<r>@<domain>; b.test's sink refuses those of messages whose number
// ends in 3 or 7 (a fifth of b.test's, so a DSN every few messages).
const std::vector<std::string> refusals = {"--reject-rcpt", "u*3.?@b.test", "--reject-rcpt", "u*7.?@b.test"};

bool refused(const std::string& rcpt) {
  const std::string domain = "@b.test";
  if (rcpt.size() < domain.size() + 3 || rcpt.compare(rcpt.size() - domain.size(), domain.size(), domain) != 0)
    return false;
  const std::size_t dot = rcpt.rfind('.', rcpt.size() - domain.size() - 1);
  if (dot == std::string::npos || dot == 0) return false;
  return rcpt[dot - 1] == '3' || rcpt[dot - 1] == '7';
}

// A copy beyond the first is explained by a kill that came between the two copies, when
// the earlier one arrived at most this long before it (the delivery's outcome was on its
// way to the disk; generous, for a shared disk's slow flushes) or shortly after it (the
// sink's record reaches its file five times a second, the test looks every 50 ms).
constexpr int64_t in_flight_before_ms = 3000, seen_late_ms = 600;

int64_t wall_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// "2026-12-01T19:34:33.123Z" -> ms since the epoch; -1 if it is no such stamp.
int64_t stamp_ms(const std::string& s) {
  std::tm tm{};
  int ms = 0;
  if (s.size() < 24 || std::sscanf(s.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d.%3dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                                   &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &ms) != 7)
    return -1;
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  return static_cast<int64_t>(::timegm(&tm)) * 1000 + ms;
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::string part;
  std::istringstream in(s);
  while (std::getline(in, part, sep)) out.push_back(part);
  return out;
}

// When each line of the sinks' record files was first seen: a background thread reads
// what was appended every 50 ms, so a duplicate's first copy can be placed against the kills.
class arrival_clock {
 public:
  explicit arrival_clock(std::vector<std::string> files) : files_(std::move(files)), seen_(files_.size()),
                                                           offset_(files_.size(), 0) {
    thread_ = std::thread([this] {
      while (!stop_.load()) {
        poll();
        std::this_thread::sleep_for(50ms);
      }
    });
  }
  ~arrival_clock() { finish(); }
  void finish() {
    if (!thread_.joinable()) return;
    stop_.store(true);
    thread_.join();
    poll();  // the sinks have stopped: whatever is left is in the files now
  }
  // The wall-clock time line `index` of file `file` was first seen.
  int64_t seen(std::size_t file, std::size_t index) const {
    return index < seen_[file].size() ? seen_[file][index] : wall_ms();
  }

 private:
  void poll() {
    for (std::size_t f = 0; f < files_.size(); ++f) {
      std::ifstream in(files_[f], std::ios::binary);
      if (!in) continue;
      in.seekg(static_cast<std::streamoff>(offset_[f]));
      std::string chunk((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      const std::size_t end = chunk.rfind('\n');
      if (end == std::string::npos) continue;  // only part of a line so far
      const int64_t now = wall_ms();
      for (std::size_t i = 0; i <= end; ++i)
        if (chunk[i] == '\n') seen_[f].push_back(now);
      offset_[f] += end + 1;
    }
  }

  std::vector<std::string> files_;
  std::vector<std::vector<int64_t>> seen_;
  std::vector<std::size_t> offset_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// blaster send running in the background until SIGTERM: continuous load at `rate` a second.
pid_t start_load(const delivery_env& env, const std::string& sent, const std::string& out, int rate) {
  const std::string target = "127.0.0.1:" + std::to_string(env.daemon.port());
  std::vector<std::string> args{blaster_path(), "send", "--target", target, "--json", "--no-progress", "--threads", "1",
                                "--sessions", "6", "--rate", std::to_string(rate), "--duration", "1h", "--size",
                                "1k-6k", "--rcpts", "2", "--to", "u{n}.{r}@{domain}", "--domain", "a.test:3,b.test:2",
                                "--from", "sender@home.test", "--timeout", "5s", "--record", sent};
  return sluice_test::spawn_peer(std::move(args), out);
}

// Waits for `pid` up to `limit`; false if it is still running.
bool reap_within(pid_t pid, std::chrono::milliseconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    if (::waitpid(pid, &status, WNOHANG) == pid) return true;
    std::this_thread::sleep_for(20ms);
  }
  return false;
}

struct kill_mark {
  int64_t started_ms;  // when this run of the daemon began accepting
  int64_t at_ms;       // when SIGKILL was sent
};

// Whether every copy after the first of one message (times of arrival, any order) follows
// a kill that the copy before it was in flight at.
bool explained_by_kills(const std::vector<kill_mark>& kills, std::vector<int64_t> times, int64_t late_ms) {
  std::sort(times.begin(), times.end());
  for (std::size_t i = 1; i < times.size(); ++i) {
    const bool any = std::any_of(kills.begin(), kills.end(), [&](const kill_mark& k) {
      return times[i - 1] >= k.at_ms - in_flight_before_ms && times[i - 1] <= k.at_ms + late_ms && times[i] > k.at_ms;
    });
    if (!any) return false;
  }
  return true;
}

// The tracking log's events in the second before each kill (within that run of the daemon):
// per event name, how many kills had one; and how many kills had all four.
struct kill_coverage {
  std::map<std::string, int> kills_with;
  int with_all = 0;
};

kill_coverage coverage_of(const std::string& tracking_csv, const std::vector<kill_mark>& kills) {
  static const std::vector<std::string> wanted = {"RECEIVE", "ROUTE", "DELIVER", "DSN"};
  std::vector<std::pair<int64_t, std::string>> events;
  std::ifstream in(tracking_csv);
  std::string line;
  while (std::getline(in, line)) {
    const std::size_t c1 = line.find(','), c2 = line.find(',', c1 + 1);
    if (c1 == std::string::npos || c2 == std::string::npos) continue;
    const int64_t t = stamp_ms(line.substr(0, c1));
    if (t >= 0) events.emplace_back(t, line.substr(c1 + 1, c2 - c1 - 1));
  }
  kill_coverage cov;
  for (const auto& k : kills) {
    std::set<std::string> seen;
    for (const auto& [t, e] : events)
      if (t >= std::max(k.at_ms - 1000, k.started_ms) && t < k.at_ms) seen.insert(e);
    int all = 0;
    for (const auto& w : wanted)
      if (seen.count(w)) {
        ++cov.kills_with[w];
        ++all;
      }
    if (all == static_cast<int>(wanted.size())) ++cov.with_all;
  }
  return cov;
}

// One DSN file in the sender's Maildir, from tests/integration/clients/maildir_reports.py.
struct report_file {
  std::string message_id, original;  // the report's Message-ID; the original's X-Blaster-Id
  std::vector<std::string> finals, actions, statuses;
  int64_t mtime_ms = 0;
};

std::vector<report_file> reports_in(const std::string& maildir, const std::string& work_dir) {
  // maildir_reports.py's JSON, one tab-separated line per file: Message-ID, X-Blaster-Id,
  // then the final recipients, actions and statuses (each ','-joined), and the file name.
  const std::string fields =
      "import json, sys\n"
      "for line in sys.stdin:\n"
      "  r = json.loads(line)\n"
      "  print('\\t'.join([r['message_id'], r['returned_headers'].get('x-blaster-id', ''), ','.join(r['finals']),\n"
      "                   ','.join(r['actions']), ','.join(r['statuses']), r['file']]))\n";
  const std::string script = work_dir + "/report_fields.py";
  std::ofstream(script) << fields;
  const auto r = run("python3 " + source_root() + "/tests/integration/clients/maildir_reports.py " + maildir +
                     " | python3 " + script);
  std::vector<report_file> out;
  for (const auto& line : split(r.output, '\n')) {
    const auto f = split(line, '\t');
    if (f.size() < 6) continue;
    report_file rf{f[0], f[1], split(f[2], ','), split(f[3], ','), split(f[4], ','), 0};
    struct stat st {};
    if (::stat((maildir + "/new/" + f[5]).c_str(), &st) == 0)
      rf.mtime_ms = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000 + st.st_mtim.tv_nsec / 1'000'000;
    out.push_back(std::move(rf));
  }
  return out;
}

// The end of a long text (the daemon's stderr over many restarts).
std::string tail_of(const std::string& text, std::size_t n = 4000) {
  return text.size() <= n ? text : text.substr(text.size() - n);
}

// (blaster id, recipient) -> what happened to it.
using pair_key = std::pair<std::string, std::string>;

void battery(int kills, int rate) {
  const char* seed_text = std::getenv("SLUICE_CRASH_SEED");
  const unsigned seed = seed_text ? static_cast<unsigned>(std::strtoul(seed_text, nullptr, 10))
                                  : static_cast<unsigned>(std::random_device{}());
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> uptime_ms(300, 1800);

  delivery_env env(zone);
  env.sink("127.0.0.2");
  env.sink("127.0.0.3", refusals);
  const std::string home =
      "[[accepted_domain]]\nname = \"home.test\"\ntype = \"authoritative\"\nmailbox = \"maildir\"\n"
      "maildir_root = \"@DIR@/mail\"\n\n";
  env.configure("", "failures_before_suspend = 10000\n", home);
  run("mkdir -p " + env.daemon.dir() + "/mail");
  const std::string box = env.daemon.dir() + "/mail/home.test/sender/Maildir";
  cr_assert(env.start(), "%s", env.daemon.log().c_str());
  arrival_clock arrivals(env.received_logs());

  const std::string sent = env.daemon.dir() + "/battery.sent", load_out = env.daemon.dir() + "/battery.send.json";
  const pid_t load = start_load(env, sent, load_out, rate);
  cr_assert_gt(load, 0);
  std::vector<kill_mark> marks;
  int64_t started = wall_ms();
  for (int k = 0; k < kills; ++k) {
    std::this_thread::sleep_for(std::chrono::milliseconds(uptime_ms(rng)));
    marks.push_back({started, wall_ms()});
    env.daemon.kill9();
    cr_assert(env.start(), "restart %d of %d: ...%s", k + 1, kills, tail_of(env.daemon.log()).c_str());
    started = wall_ms();
  }
  ::kill(load, SIGTERM);
  cr_assert(reap_within(load, 30s), "blaster send did not stop");
  const std::string send_json = slurp_file(load_out);
  cr_assert_gt(json_number(send_json, "accepted"), 0, "%s", send_json.c_str());

  // Drained: no message left, not even one holding pending reports; DSNs are messages too.
  auto left = [&] { return json_number(env.daemon.ctl("queue list --json").output, "messages"); };
  cr_assert(eventually([&] { return left() == 0; }, 120'000), "%lld messages left after the battery\n%s\n...%s", left(),
            env.daemon.ctl("queue list").output.c_str(), tail_of(env.daemon.log()).c_str());
  for (auto& [address, s] : env.sinks) s->stop();
  arrivals.finish();
  env.daemon.stop();  // the last tracking lines reach the file

  // Where the kills landed.
  const kill_coverage cov = coverage_of(env.daemon.dir() + "/log/tracking.csv", marks);

  // Acknowledged pairs, split into those that must arrive and those that must be reported.
  std::set<pair_key> to_arrive, to_report;
  std::size_t acknowledged = 0;
  for (const auto& line : split(slurp_file(sent), '\n')) {
    const auto f = split(line, '\t');
    if (f.size() < 5) continue;
    ++acknowledged;
    for (const auto& rcpt : split(f[4], ','))
      (refused(rcpt) ? to_report : to_arrive).insert({f[0], rcpt});
  }
  cr_assert_gt(to_report.size(), 0u, "the load made no refusals");
  // blaster verify on the pairs that must arrive (lost, corrupted, duplicated).
  const std::string arriving = env.daemon.dir() + "/battery.arriving";
  {
    std::map<std::string, std::vector<std::string>> by_id;
    for (const auto& [id, rcpt] : to_arrive) by_id[id].push_back(rcpt);
    std::ofstream out(arriving);
    for (const auto& [id, rcpts] : by_id) {
      out << id << "\t-\t-\tsender@home.test\t";
      for (std::size_t i = 0; i < rcpts.size(); ++i) out << (i ? "," : "") << rcpts[i];
      out << "\n";
    }
  }
  const verify_result v = blaster_verify({arriving}, env.received_logs());

  // Every copy beyond the first must follow a first copy that was in flight at a kill.
  std::map<pair_key, std::vector<int64_t>> copies;
  const auto logs = env.received_logs();
  for (std::size_t f = 0; f < logs.size(); ++f) {
    const auto lines = split(slurp_file(logs[f]), '\n');
    for (std::size_t i = 0; i < lines.size(); ++i) {
      const auto fields = split(lines[i], '\t');
      if (fields.size() < 5) continue;
      for (const auto& rcpt : split(fields[4], ',')) {
        cr_assert(!refused(rcpt), "a refused recipient arrived: %s", lines[i].c_str());
        copies[{fields[0], rcpt}].push_back(arrivals.seen(f, i));
      }
    }
  }
  std::size_t duplicates = 0, unexplained = 0;
  std::string first_unexplained;
  for (const auto& [key, times] : copies) {
    if (times.size() < 2) continue;
    duplicates += times.size() - 1;
    if (!explained_by_kills(marks, times, seen_late_ms) && unexplained++ == 0)
      first_unexplained = key.first + " " + key.second;
  }

  // DSNs: each refused acknowledged pair in exactly one report; copies of one report are
  // duplicates (its Maildir delivery was in flight at a kill).
  std::map<std::string, std::vector<const report_file*>> by_report;
  const auto reports = reports_in(box, env.daemon.dir());
  for (const auto& r : reports) by_report[r.message_id].push_back(&r);
  std::map<pair_key, std::set<std::string>> reported;
  std::size_t dsn_duplicates = 0, dsn_unexplained = 0;
  for (const auto& [message_id, files] : by_report) {
    const report_file& r = *files.front();
    cr_assert(!message_id.empty() && !r.original.empty(), "a report without its original's headers");
    cr_assert_eq(r.finals.size(), r.actions.size());
    for (std::size_t i = 0; i < r.finals.size(); ++i) {
      cr_assert(refused(r.finals[i]), "%s reported for %s, which was not refused", r.finals[i].c_str(), r.original.c_str());
      cr_assert(r.actions[i] == "failed" && r.statuses[i] == "5.1.1", "%s: %s %s", r.finals[i].c_str(),
                r.actions[i].c_str(), r.statuses[i].c_str());
      reported[{r.original, r.finals[i]}].insert(message_id);
    }
    if (files.size() > 1) {
      dsn_duplicates += files.size() - 1;
      std::vector<int64_t> times;
      for (const auto* c : files) times.push_back(c->mtime_ms);
      if (!explained_by_kills(marks, times, 0)) ++dsn_unexplained;
    }
  }
  std::size_t unreported = 0, reported_twice = 0;
  std::string first_unreported, first_twice;
  for (const auto& key : to_report) {
    const auto it = reported.find(key);
    const std::size_t n = it == reported.end() ? 0 : it->second.size();
    if (n == 0 && unreported++ == 0) first_unreported = key.first + " " + key.second;
    if (n > 1 && reported_twice++ == 0) first_twice = key.first + " " + key.second;
  }

  std::fprintf(stderr,
               "crash battery (seed %u): kills=%d acknowledged=%zu delivered=%lld lost=%lld corrupted=%lld "
               "duplicates=%zu extra=%lld dsns=%zu/%zu dsn_duplicates=%zu | kills after RECEIVE %d ROUTE %d DELIVER %d "
               "DSN %d all %d\n",
               seed, kills, acknowledged, v.delivered, v.lost, v.corrupted, duplicates, json_number(v.json, "extra"),
               to_report.size() - unreported, to_report.size(), dsn_duplicates, cov.kills_with.count("RECEIVE") ? cov.kills_with.at("RECEIVE") : 0,
               cov.kills_with.count("ROUTE") ? cov.kills_with.at("ROUTE") : 0,
               cov.kills_with.count("DELIVER") ? cov.kills_with.at("DELIVER") : 0,
               cov.kills_with.count("DSN") ? cov.kills_with.at("DSN") : 0, cov.with_all);

  cr_assert_eq(v.lost, 0, "acknowledged and lost: %s", v.json.c_str());
  cr_assert_eq(v.corrupted, 0, "corrupted: %s", v.json.c_str());
  cr_assert_eq(v.delivered, static_cast<long long>(to_arrive.size()), "%s", v.json.c_str());
  cr_assert_eq(unexplained, 0u, "%zu of %zu duplicates came with no kill in flight (first: %s)", unexplained, duplicates,
               first_unexplained.c_str());
  cr_assert_eq(unreported, 0u, "%zu of %zu refused recipients got no DSN (first: %s)", unreported, to_report.size(),
               first_unreported.c_str());
  cr_assert_eq(reported_twice, 0u, "%zu refused recipients got two different DSNs (first: %s)", reported_twice,
               first_twice.c_str());
  cr_assert_eq(dsn_unexplained, 0u, "a DSN delivered twice with no kill in flight");
  // The load's shape put the kills into every stage: most kills came within a second of
  // each kind of event, and so of all four.
  cr_assert_geq(cov.with_all * 4, kills * 3, "only %d of %d kills came within a second of RECEIVE, ROUTE, DELIVER and DSN",
                cov.with_all, kills);
}

}  // namespace

Test(crash_battery, twenty_kills_lose_nothing_acknowledged_and_report_each_refusal_once, .timeout = 240) {
  battery(20, 150);
}

// The long battery for the README's figures: SLUICE_CRASH_KILLS=200 build/tests/sluice-tests
// --filter 'crash_battery/long_run'.
Test(crash_battery, long_run, .timeout = 7200) {
  const char* n = std::getenv("SLUICE_CRASH_KILLS");
  if (n == nullptr) cr_skip_test("set SLUICE_CRASH_KILLS=N for the long battery");
  battery(std::max(1, std::atoi(n)), 150);
}
