// sluicectl_test.cc: `sluicectl track search`, `mailq` and `queue summary` against a daemon that delivered some mail and deferred the rest.
// Untrusted input: none.
#include <criterion/criterion.h>

#include <cstdlib>
#include <sstream>
#include <string>
#include <vector>

#include "assertions.h"
#include "actions_env.h"
#include "delivery_env.h"

using namespace sluice::testing;

namespace {

// a.test and c.test both have their MX at the one sink on 127.0.0.2.
const char* zone =
    "mx-host=a.test,mx1.a.test,10\nmx-host=c.test,mx1.a.test,10\nhost-record=mx1.a.test,127.0.0.2\n";

// One message over SMTP, 3 KB (more than one Kbyte in mailq); its queue id, or "" with the
// failing reply in `why`.
std::string submit(uint16_t port, const std::string& from, const std::vector<std::string>& rcpts, std::string& why) {
  std::string body = "Subject: ctl test\r\n\r\n";
  for (int i = 0; i < 50; ++i) body += std::string(60, 'x') + "\r\n";
  return submit_to(port, from, rcpts, body, why);
}

std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line))
    if (!line.empty()) out.push_back(line);
  return out;
}

// The world every test here looks at: one message delivered (a), one deferred with two
// recipients (b) and one deferred to another domain (c).
struct world {
  delivery_env env{zone};
  std::string a, b, c;

  world() {
    env.sink("127.0.0.2", {"--defer-rcpt", "slow*@*"});
    env.configure("", "failures_before_suspend = 10000\n");
    START(env.daemon);
    std::string why;
    a = submit(env.daemon.port(), "Alice.Sender@Home.example", {"ok@a.test"}, why);
    cr_assert(!a.empty(), "%s", why.c_str());
    b = submit(env.daemon.port(), "bob@other.example", {"slow@a.test", "slow2@a.test"}, why);
    cr_assert(!b.empty(), "%s", why.c_str());
    c = submit(env.daemon.port(), "carol@other.example", {"slow@c.test"}, why);
    cr_assert(!c.empty(), "%s", why.c_str());
    auto tracked = [&](const std::string& event, const std::string& id) {
      for (const auto& l : env.tracking(event))
        if (has(l, id)) return true;
      return false;
    };
    cr_assert(eventually([&] { return tracked("DELIVER", a) && tracked("DEFER", b) && tracked("DEFER", c); }, 20'000),
              "%s\n%s", slurp_file(log_dir() + "/tracking.csv").c_str(), env.daemon.log().c_str());
  }

  std::string log_dir() const { return env.daemon.dir() + "/log"; }
  // sluicectl with the daemon's --queue-dir: the log directory is found beside it.
  command_result ctl(const std::string& args) const {
    auto r = env.daemon.ctl(args);
    cr_assert_eq(r.status, 0, "sluicectl %s: %s", args.c_str(), r.output.c_str());
    return r;
  }
};

// Every line of `out` names `id` and none names any of `others`.
void expect_only(const command_result& out, const std::string& id, const std::vector<std::string>& others) {
  const auto ls = lines(out.output);
  cr_assert(!ls.empty(), "no output");
  for (const auto& l : ls) {
    cr_assert(has(l, id), "%s is not about %s", l.c_str(), id.c_str());
    for (const auto& o : others) cr_assert(!has(l, o), "%s is about %s", l.c_str(), o.c_str());
  }
}

}  // namespace

Test(sluicectl, track_search_by_id_sender_recipient_and_event, .timeout = 60) {
  world w;
  // A message's whole life, in order: received, routed, delivered.
  const auto life = w.ctl("track search --id " + w.a);
  expect_only(life, w.a, {w.b, w.c});
  const auto ls = lines(life.output);
  cr_assert_geq(ls.size(), 2u, "%s", life.output.c_str());
  cr_assert(has(ls.front(), "RECEIVE"), "%s", life.output.c_str());
  cr_assert(has(ls.back(), "DELIVER") && has(ls.back(), "ok@a.test"), "%s", life.output.c_str());
  // In time order though the loops log in batches: b was received, routed, then deferred.
  long long last = 0;
  for (const auto& l : lines(w.ctl("track search --json --id " + w.b).output)) {
    const long long t = json_number(l, "time_ms");
    cr_assert_geq(t, last, "out of order: %s", l.c_str());
    last = t;
  }
  // Any case, substring or glob.
  expect_only(w.ctl("track search --sender alice.SENDER"), w.a, {w.b, w.c});
  expect_only(w.ctl("track search --sender '*@HOME.EXAMPLE'"), w.a, {w.b, w.c});
  expect_only(w.ctl("track search --recipient SLOW2"), w.b, {w.a, w.c});
  expect_only(w.ctl("track search --recipient 'slow@*.test' --event receive --sender carol"), w.c, {w.a, w.b});
  // A glob must match the whole address: this one names no recipient ("slow" starts them).
  cr_assert(lines(w.ctl("track search --recipient 'low*'").output).empty());
  // Filters combine: both deferred messages, never the delivered one.
  const auto deferred = w.ctl("track search --recipient 'slow*' --event DEFER");
  cr_assert(has(deferred.output, w.b) && has(deferred.output, w.c), "%s", deferred.output.c_str());
  for (const auto& l : lines(deferred.output)) cr_assert(has(l, "DEFER") && !has(l, w.a), "%s", l.c_str());
  // JSON: one object per event, every field.
  const auto json = w.ctl("track search --event deliver --json --id " + w.a);
  cr_assert_eq(lines(json.output).size(), 1u, "%s", json.output.c_str());
  cr_assert(has(json.output, "\"event\":\"DELIVER\",\"queue_id\":\"" + w.a +
                                 "\",\"sender\":\"Alice.Sender@Home.example\",\"recipients\":[\"ok@a.test\"],"
                                 "\"connector\":\"dns:Internet:a.test\""),
            "%s", json.output.c_str());
  cr_assert(has(json.output, "\"file\":\"tracking.csv\""), "%s", json.output.c_str());
  // --log-dir names the directory itself; a wrong one is an error, not an empty answer.
  expect_only(w.ctl("track search --log-dir " + w.log_dir() + " --id " + w.b), w.b, {w.a, w.c});
  const auto missing = run(sluicectl_path() + " track search --log-dir " + w.env.daemon.dir() + "/nowhere");
  cr_assert_eq(missing.status, 1, "%s", missing.output.c_str());
}

Test(sluicectl, track_search_reads_rotated_files_in_time_order_and_csv_quoting, .timeout = 60) {
  world w;
  // A rotated file as log::append_file names it, in the log's format: a reply with a comma
  // and quotes, two recipients, and a raw escape character the log would never hold.
  // Two of them, the later one written first: the names, not the directory, give the order.
  const std::string header = "date-time,event,queue-id,sender,recipients,connector,detail\n";
  w.env.daemon.write_file("log/tracking.20200101-120000-0000.csv",
                          header + "2020-01-01T11:30:00.000Z,DEFER,\"00000000000000bb\",\"old@past.test\",\"z@old.test\","
                          "\"dns:Internet:old.test\",\"451 bad \x1b[2J here\"\n");
  w.env.daemon.write_file("log/tracking.20200101-110000-0000.csv",
                          header + "2020-01-01T10:00:00.000Z,DELIVER,\"00000000000000aa\",\"old@past.test\","
                          "\"x@old.test;y@old.test\",\"dns:Internet:old.test\",\"250 2.0.0 ok, \"\"queued\"\" as 7\"\n");
  // The time window holds only the first old event; its fields come out whole.
  const auto old = w.ctl("track search --since 2020-01-01T09:00:00Z --until 2020-01-01T11:00:00Z --json");
  const auto ls = lines(old.output);
  cr_assert_eq(ls.size(), 1u, "%s", old.output.c_str());
  cr_assert(has(ls[0], "\"queue_id\":\"00000000000000aa\",\"sender\":\"old@past.test\","
                       "\"recipients\":[\"x@old.test\",\"y@old.test\"],\"connector\":\"dns:Internet:old.test\","
                       "\"detail\":\"250 2.0.0 ok, \\\"queued\\\" as 7\""),
            "%s", ls[0].c_str());
  cr_assert(has(ls[0], "\"time_ms\":1577872800000"), "%s", ls[0].c_str());
  // A zone in the bound is honoured: 12:00+01:00 is 11:00Z, so the 11:30Z event stays out.
  cr_assert_eq(lines(w.ctl("track search --since 2020-01-01 --until 2020-01-01T12:00:00+01:00").output).size(), 1u);
  // Human output: the reply whole, the control character escaped.
  const auto text = w.ctl("track search --id 00000000000000BB");
  cr_assert(has(text.output, "451 bad \\x1B[2J here"), "%s", text.output.c_str());
  cr_assert(!has(text.output, "\x1b"), "%s", text.output.c_str());
  // Relative bounds: the last hour holds today's events only.
  const auto recent = w.ctl("track search --since 1h");
  cr_assert(has(recent.output, w.a) && !has(recent.output, "old@past.test"), "%s", recent.output.c_str());
  cr_assert(lines(w.ctl("track search --until 3d --since 2020-01-02").output).empty());
  // Everything: the rotated files' events first, oldest first, then the live file's.
  const auto all = lines(w.ctl("track search").output);
  cr_assert_geq(all.size(), 4u);
  cr_assert(has(all[0], "00000000000000aa") && has(all[1], "00000000000000bb"), "%s\n%s", all[0].c_str(),
            all[1].c_str());
  // Loops flush in batches, so one millisecond's events can be in the file out of order:
  // they come out in the order of a message's life.
  const std::string same_ms = "2020-01-01T10:00:00.000Z,";
  w.env.daemon.write_file("order/tracking.csv",
                          header + same_ms + "DSN,\"00000000000000dd\",\"a@x.test\",\"b@y.test\",\"dsn\",\"\"\n" +
                              same_ms + "DELIVER,\"00000000000000dd\",\"a@x.test\",\"b@y.test\",\"c\",\"250\"\n" +
                              same_ms + "ROUTE,\"00000000000000dd\",\"a@x.test\",\"b@y.test\",\"c\",\"\"\n" +
                              same_ms + "RULE,\"00000000000000dd\",\"a@x.test\",\"\",\"\",\"r\"\n" +
                              same_ms + "RECEIVE,\"00000000000000dd\",\"a@x.test\",\"b@y.test\",\"c\",\"\"\n");
  const auto life = lines(w.ctl("track search --log-dir " + w.env.daemon.dir() + "/order").output);
  cr_assert_eq(life.size(), 5u);
  const char* order[] = {"RECEIVE", "RULE", "ROUTE", "DELIVER", "DSN"};
  for (std::size_t i = 0; i < 5; ++i) cr_assert(has(life[i], order[i]), "%zu: %s", i, life[i].c_str());
  // A line that is not well-formed is skipped and reported, never half-parsed.
  w.env.daemon.write_file("log/tracking.20200101-130000-0000.csv",
                          "2020-01-01T13:00:00.000Z,FAIL,\"00000000000000cc\",\"a,b\n");
  const auto broken = w.ctl("track search --since 2020-01-01 --until 2020-01-02");
  cr_assert(!has(broken.output, "00000000000000cc") && has(broken.output, "1 malformed tracking log line skipped"),
            "%s", broken.output.c_str());
}

Test(sluicectl, mailq_and_queue_summary_show_the_deferred_mail, .timeout = 60) {
  world w;
  const auto q = w.ctl("mailq");
  const auto ls = lines(q.output);
  cr_assert(!has(q.output, w.a), "delivered mail is not queued: %s", q.output.c_str());
  cr_assert(ls.size() >= 7 && has(ls[0], "-Queue ID-"), "%s", q.output.c_str());
  // b: its header line (id, size, arrival, sender), the item's last error, then its recipients.
  size_t at = 0;
  while (at < ls.size() && !ls[at].starts_with(w.b)) ++at;
  cr_assert(at + 3 < ls.size(), "%s", q.output.c_str());
  cr_assert(has(ls[at], "bob@other.example"), "%s", ls[at].c_str());
  cr_assert(ls[at + 1].starts_with("(") && has(ls[at + 1], "451 4.2.1") && ls[at + 1].back() == ')', "%s", ls[at + 1].c_str());
  cr_assert(has(ls[at + 2], "slow@a.test") && has(ls[at + 3], "slow2@a.test"), "%s", q.output.c_str());
  cr_assert(has(q.output, w.c) && has(q.output, "carol@other.example") && has(q.output, "slow@c.test"), "%s",
            q.output.c_str());
  // The total is the queued messages' sizes as `queue list` counts them, in kilobytes.
  const auto list = w.ctl("queue list --json").output;
  long long bytes = 0;
  for (const auto& id : {w.b, w.c}) {
    const auto at_id = list.find("\"id\":\"" + id + "\"");
    cr_assert(at_id != std::string::npos, "%s", list.c_str());
    bytes += json_number(list.substr(at_id), "size");
  }
  cr_assert_gt(bytes, 6000);
  const std::string total = "-- " + std::to_string((bytes + 1023) / 1024) + " Kbytes in 2 Requests.";
  cr_assert_eq(ls.back(), total, "%s", q.output.c_str());

  // Summary by destination domain: one item each, all younger than five minutes.
  const auto s = w.ctl("queue summary --json").output;
  cr_assert(has(s, "\"total\":{\"total\":2,\"5\":2,\"10\":0"), "%s", s.c_str());
  cr_assert(has(s, "{\"destination\":\"a.test\",\"total\":1,\"5\":1,\"10\":0,\"20\":0,\"40\":0,\"80\":0,\"160\":0,"
                   "\"320\":0,\"640\":0,\"1280\":0,\"1280+\":0}"),
            "%s", s.c_str());
  cr_assert(has(s, "{\"destination\":\"c.test\",\"total\":1,\"5\":1,"), "%s", s.c_str());
  const auto table = lines(w.ctl("queue summary").output);
  cr_assert_eq(table.size(), 4u);
  cr_assert(has(table[0], "T") && has(table[0], "1280+"), "%s", table[0].c_str());
  std::istringstream row(table[2]);
  std::string name;
  int t = -1, young = -1, older = -1;
  row >> name >> t >> young >> older;
  cr_assert(name == "a.test" && t == 1 && young == 1 && older == 0, "%s", table[2].c_str());
}
