// sink_faults_test.cc: the built blaster sink's fault injection, against real clients:
// greeting codes, stalled and dropped replies (all or a fraction), recipient globs, a recovering destination (and SIGUSR1),
// ESMTP extensions and SIZE, DSN records, the session limit and counts, and the connection log.
// Untrusted input: none (the tests' own input; what the sink sends back is checked, not trusted).
#include <criterion/criterion.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "harness.h"

using namespace blaster_test;

namespace {

using clock_type = std::chrono::steady_clock;

long long ms_since(clock_type::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(clock_type::now() - t).count();
}

bool starts(const std::string& reply, const char* code) { return reply.rfind(code, 0) == 0; }

// Greets and opens a transaction for one recipient; asserts each step.
void open_transaction(smtp_peer& c, const std::string& rcpt = "user@example.test") {
  std::string r = c.reply();
  cr_assert(starts(r, "220 "), "greeting: %s", r.c_str());
  r = c.command("EHLO client.test");
  cr_assert(starts(r, "250"), "EHLO: %s", r.c_str());
  r = c.command("MAIL FROM:<sender@client.test>");
  cr_assert(starts(r, "250 "), "MAIL: %s", r.c_str());
  r = c.command("RCPT TO:<" + rcpt + ">");
  cr_assert(starts(r, "250 "), "RCPT: %s", r.c_str());
}

const char* message = "Subject: test\r\n\r\nhello\r\n.\r\n";

}  // namespace

Test(blaster_sink_faults, greeting_code_then_close, .timeout = 60) {
  for (const char* code : {"421", "554"}) {
    scratch d;
    int port = free_port();
    auto sink = start_sink(d.path, port, {"--threads", "1", "--greeting", code});
    smtp_peer c(port);
    std::string r = c.reply();
    cr_assert(starts(r, (std::string(code) + " ").c_str()), "greeting: %s", r.c_str());
    cr_assert(c.wait_closed(), "the sink closes after its %s", code);
    sink.stop();
  }
}

Test(blaster_sink_faults, stalled_replies_are_held_for_the_time_given, .timeout = 60) {
  scratch d;
  int port = free_port();
  auto sink = start_sink(d.path, port, {"--threads", "1", "--stall-at", "mail", "--stall-ms", "400"});
  smtp_peer c(port);
  cr_assert(starts(c.reply(), "220 "));
  auto t = clock_type::now();
  std::string r = c.command("EHLO client.test");
  cr_assert(starts(r, "250"), "%s", r.c_str());
  long long ehlo_ms = ms_since(t);
  t = clock_type::now();
  c.send("MAIL FROM:<a@client.test>\r\n");
  cr_assert_eq(c.reply(200), "", "the MAIL reply is held");
  r = c.reply();
  cr_assert(starts(r, "250 "), "%s", r.c_str());
  cr_assert_geq(ms_since(t), 390, "held %lld ms (EHLO took %lld)", ms_since(t), ehlo_ms);
  // Every MAIL is held, not only the first.
  cr_assert(starts(c.command("RSET"), "250 "));
  t = clock_type::now();
  r = c.command("MAIL FROM:<b@client.test>");
  cr_assert(starts(r, "250 ") && ms_since(t) >= 390, "%s after %lld ms", r.c_str(), ms_since(t));
  sink.stop();
}

Test(blaster_sink_faults, stall_without_a_time_holds_forever, .timeout = 60) {
  for (const char* point : {"greeting", "ehlo", "rcpt", "data", "dot"}) {
    scratch d;
    int port = free_port();
    auto sink = start_sink(d.path, port, {"--threads", "1", "--stall-at", point});
    smtp_peer c(port);
    std::string p = point;
    std::string r = c.reply(p == "greeting" ? 700 : 5000);
    if (p == "greeting") {
      cr_assert_eq(r, "", "greeting held: %s", r.c_str());
    } else {
      cr_assert(starts(r, "220 "));
      r = c.command("EHLO client.test", p == "ehlo" ? 700 : 5000);
      if (p == "ehlo") {
        cr_assert_eq(r, "", "EHLO reply held: %s", r.c_str());
      } else {
        cr_assert(starts(c.command("MAIL FROM:<a@client.test>"), "250 "));
        r = c.command("RCPT TO:<u@example.test>", p == "rcpt" ? 700 : 5000);
        if (p == "rcpt") {
          cr_assert_eq(r, "", "RCPT reply held: %s", r.c_str());
        } else {
          cr_assert(starts(r, "250 "));
          r = c.command("DATA", p == "data" ? 700 : 5000);
          if (p == "data") {
            cr_assert_eq(r, "", "354 held: %s", r.c_str());
          } else {
            cr_assert(starts(r, "354 "));
            c.send(message);
            r = c.reply(700);
            cr_assert_eq(r, "", "end-of-data reply held: %s", r.c_str());
          }
        }
      }
    }
    cr_assert(!c.closed(), "%s: a stall keeps the connection open", point);
    sink.stop();
  }
}

Test(blaster_sink_faults, stall_at_dot_then_the_reply_comes, .timeout = 60) {
  scratch d;
  int port = free_port();
  auto sink = start_sink(d.path, port, {"--threads", "1", "--stall-at", "dot", "--stall-ms", "300"});
  smtp_peer c(port);
  open_transaction(c);
  cr_assert(starts(c.command("DATA"), "354 "));
  auto t = clock_type::now();
  c.send(message);
  std::string r = c.reply();
  cr_assert(starts(r, "250 ") && ms_since(t) >= 290, "%s after %lld ms", r.c_str(), ms_since(t));
  cr_assert(starts(c.command("QUIT"), "221 "));
  std::string got = sink.stop();
  cr_assert_eq(json_num(got, "accepted"), 1);
}

Test(blaster_sink_faults, drop_closes_without_the_reply, .timeout = 60) {
  for (const char* point : {"mail", "rcpt", "data"}) {
    scratch d;
    int port = free_port();
    auto sink = start_sink(d.path, port, {"--threads", "1", "--drop-at", point});
    smtp_peer c(port);
    std::string p = point;
    cr_assert(starts(c.reply(), "220 "));
    cr_assert(starts(c.command("EHLO client.test"), "250"));
    std::string r;
    if (p == "mail") {
      c.send("MAIL FROM:<a@client.test>\r\n");
    } else {
      cr_assert(starts(c.command("MAIL FROM:<a@client.test>"), "250 "));
      if (p == "rcpt") {
        c.send("RCPT TO:<u@example.test>\r\n");
      } else {
        cr_assert(starts(c.command("RCPT TO:<u@example.test>"), "250 "));
        c.send("DATA\r\n");
      }
    }
    std::string rest;
    cr_assert(c.wait_closed(5000, &rest), "%s: closed", point);
    cr_assert_eq(rest, "", "%s: no reply before the close: %s", point, rest.c_str());
    std::string got = sink.stop();
    cr_assert_eq(json_num(got, "dropped"), 1, "%s", got.c_str());
  }
  // Pipelined: the replies before the dropped one still go out.
  scratch d;
  int port = free_port();
  auto sink = start_sink(d.path, port, {"--threads", "1", "--drop-at", "rcpt"});
  smtp_peer c(port);
  cr_assert(starts(c.reply(), "220 "));
  cr_assert(starts(c.command("EHLO client.test"), "250"));
  c.send("MAIL FROM:<a@client.test>\r\nRCPT TO:<u@example.test>\r\nDATA\r\n");
  std::string rest;
  cr_assert(c.wait_closed(5000, &rest));
  cr_assert(starts(rest, "250 2.1.0") && rest.find("\r\n") + 2 == rest.size(), "only MAIL's reply: %s", rest.c_str());
  sink.stop();
}

Test(blaster_sink_faults, drop_at_dot_records_nothing_after_dot_records_the_message, .timeout = 60) {
  for (std::string point : {"dot", "after-dot"}) {
    scratch d;
    int port = free_port();
    auto sink = start_sink(d.path, port, {"--threads", "1", "--drop-at", point, "--record", d.path + "/recv.log"});
    smtp_peer c(port);
    open_transaction(c, "u@example.test");
    cr_assert(starts(c.command("DATA"), "354 "));
    c.send(message);
    std::string rest;
    cr_assert(c.wait_closed(5000, &rest), "%s: closed", point.c_str());
    cr_assert_eq(rest, "", "%s: no reply to the message: %s", point.c_str(), rest.c_str());
    std::string got = sink.stop();
    std::string log = slurp(d.path + "/recv.log");
    if (point == "dot") {
      cr_assert_eq(json_num(got, "accepted"), 0);
      cr_assert_eq(log, "", "nothing recorded: %s", log.c_str());
    } else {
      cr_assert_eq(json_num(got, "accepted"), 1);
      cr_assert(log.find("\tsender@client.test\tu@example.test\n") != std::string::npos, "recorded: %s", log.c_str());
    }
    cr_assert_eq(json_num(got, "dropped"), 1);
  }
}

Test(blaster_sink_faults, recipient_globs_reject_and_defer, .timeout = 60) {
  scratch d;
  int port = free_port();
  auto sink = start_sink(d.path, port, {"--threads", "1", "--reject-rcpt", "nobody*@*", "--reject-rcpt", "*@gone.test",
                                        "--defer-rcpt", "full?@example.test"});
  smtp_peer c(port);
  cr_assert(starts(c.reply(), "220 "));
  cr_assert(starts(c.command("EHLO client.test"), "250"));
  cr_assert(starts(c.command("MAIL FROM:<a@client.test>"), "250 "));
  std::string r = c.command("RCPT TO:<NoBody.else@example.test>");
  cr_assert(starts(r, "550 5.1.1 "), "%s", r.c_str());
  r = c.command("RCPT TO:<anyone@gone.test>");
  cr_assert(starts(r, "550 5.1.1 "), "%s", r.c_str());
  r = c.command("RCPT TO:<full1@example.test>");
  cr_assert(starts(r, "451 4.2.1 "), "%s", r.c_str());
  r = c.command("RCPT TO:<full12@example.test>");
  cr_assert(starts(r, "250 "), "'?' is one character: %s", r.c_str());
  r = c.command("RCPT TO:<user@example.test>");
  cr_assert(starts(r, "250 "), "%s", r.c_str());
  cr_assert(starts(c.command("DATA"), "354 "));
  c.send(message);
  cr_assert(starts(c.reply(), "250 "));
  std::string got = sink.stop();
  cr_assert_eq(json_num(got, "rejected_rcpt"), 2);
  cr_assert_eq(json_num(got, "deferred_rcpt"), 1);
  cr_assert_eq(json_num(got, "rcpts"), 2);
}

Test(blaster_sink_faults, fail_for_ms_defers_mail_then_recovers, .timeout = 60) {
  scratch d;
  int port = free_port();
  auto started = clock_type::now();
  auto sink = start_sink(d.path, port, {"--threads", "1", "--fail-for-ms", "1500"});
  smtp_peer c(port);
  cr_assert(starts(c.reply(), "220 "));
  cr_assert(starts(c.command("EHLO client.test"), "250"));
  std::string r = c.command("MAIL FROM:<a@client.test>");
  cr_assert(starts(r, "451 4.3.2 "), "%s", r.c_str());
  std::this_thread::sleep_for(std::chrono::milliseconds(1700) - (clock_type::now() - started));
  r = c.command("MAIL FROM:<a@client.test>");
  cr_assert(starts(r, "250 "), "recovered: %s", r.c_str());
  std::string got = sink.stop();
  cr_assert_eq(json_num(got, "deferred_mail"), 1);
}

Test(blaster_sink_faults, extensions_can_be_withheld, .timeout = 60) {
  scratch d;
  int port = free_port();
  auto plain = start_sink(d.path, port, {"--threads", "1"});
  {
    smtp_peer c(port);
    cr_assert(starts(c.reply(), "220 "));
    std::string r = c.command("EHLO client.test");
    for (const char* ext : {"\nPIPELINING", "\n8BITMIME", "\nSMTPUTF8", "\nSIZE 67108864"})
      cr_assert(r.find(std::string(ext).replace(0, 1, "250-")) != std::string::npos ||
                    r.find(std::string(ext).replace(0, 1, "250 ")) != std::string::npos,
                "default offers %s: %s", ext + 1, r.c_str());
    cr_assert(r.find("DSN") == std::string::npos, "DSN only with --dsn: %s", r.c_str());
  }
  plain.stop();
  port = free_port();
  auto sink = start_sink(d.path, port,
                         {"--threads", "1", "--no-8bitmime", "--no-smtputf8", "--no-pipelining", "--size", "1k"});
  smtp_peer c(port);
  cr_assert(starts(c.reply(), "220 "));
  std::string r = c.command("EHLO client.test");
  cr_assert(starts(r, "250"), "%s", r.c_str());
  for (const char* ext : {"PIPELINING", "8BITMIME", "SMTPUTF8"})
    cr_assert(r.find(ext) == std::string::npos, "%s withheld: %s", ext, r.c_str());
  cr_assert(r.find("SIZE 1024\r\n") != std::string::npos, "%s", r.c_str());
  r = c.command("MAIL FROM:<a@client.test> SIZE=2000");
  cr_assert(starts(r, "552 "), "declared too large: %s", r.c_str());
  cr_assert(starts(c.command("MAIL FROM:<a@client.test>"), "250 "));
  cr_assert(starts(c.command("RCPT TO:<u@example.test>"), "250 "));
  cr_assert(starts(c.command("DATA"), "354 "));
  c.send("Subject: big\r\n\r\n" + std::string(1500, 'x') + "\r\n.\r\n");
  r = c.reply();
  cr_assert(starts(r, "552 "), "too large: %s", r.c_str());
  std::string got = sink.stop();
  cr_assert_eq(json_num(got, "accepted"), 0);
}

Test(blaster_sink_faults, dsn_parameters_are_recorded_as_a_sixth_column, .timeout = 60) {
  scratch d;
  int port = free_port();
  auto sink = start_sink(d.path, port, {"--threads", "1", "--dsn", "--record", d.path + "/recv.log"});
  smtp_peer c(port);
  cr_assert(starts(c.reply(), "220 "));
  std::string r = c.command("EHLO client.test");
  cr_assert(r.find("DSN\r\n") != std::string::npos, "%s", r.c_str());
  cr_assert(starts(c.command("MAIL FROM:<a@client.test> RET=HDRS ENVID=QQ123"), "250 "));
  cr_assert(starts(c.command("RCPT TO:<u@example.test> NOTIFY=SUCCESS,DELAY ORCPT=rfc822;u+2B@example.test"), "250 "));
  cr_assert(starts(c.command("RCPT TO:<v@example.test>"), "250 "));
  cr_assert(starts(c.command("DATA"), "354 "));
  c.send(message);
  cr_assert(starts(c.reply(), "250 "));
  cr_assert(starts(c.command("MAIL FROM:<>"), "250 "));
  cr_assert(starts(c.command("RCPT TO:<w@example.test> NOTIFY=NEVER"), "250 "));
  cr_assert(starts(c.command("DATA"), "354 "));
  c.send(message);
  cr_assert(starts(c.reply(), "250 "));
  sink.stop();
  std::string log = slurp(d.path + "/recv.log");
  std::string first = log.substr(0, log.find('\n') + 1);
  cr_assert(first.find("\ta@client.test\tu@example.test,v@example.test\t"
                       "RET=HDRS ENVID=QQ123|NOTIFY=SUCCESS,DELAY ORCPT=rfc822;u+@example.test|\n") != std::string::npos,
            "%s", log.c_str());
  cr_assert(log.find("\t-\tw@example.test\t|NOTIFY=NEVER\n") != std::string::npos, "%s", log.c_str());
}

Test(blaster_sink_faults, max_sessions_refuses_the_excess_and_counts, .timeout = 60) {
  scratch d;
  int port = free_port();
  auto sink = start_sink(d.path, port, {"--threads", "2", "--max-sessions", "2"});
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // the readiness probe has gone
  {
    smtp_peer a(port), b(port);
    cr_assert(starts(a.reply(), "220 "));
    cr_assert(starts(b.reply(), "220 "));
    smtp_peer c(port);
    std::string r = c.reply();
    cr_assert(starts(r, "421 "), "third at once: %s", r.c_str());
    cr_assert(c.wait_closed());
    cr_assert(starts(a.command("QUIT"), "221 "));
    cr_assert(a.wait_closed());
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  smtp_peer e(port);
  cr_assert(starts(e.reply(), "220 "), "room again once the others left");
  std::string got = sink.stop();
  cr_assert_eq(json_num(got, "peak_sessions"), 2, "%s", got.c_str());
  cr_assert_eq(json_num(got, "refused_sessions"), 1, "%s", got.c_str());
  cr_assert_eq(json_num(got, "sessions_total"), 4, "probe, a, b and e: %s", got.c_str());
}

Test(blaster_sink_faults, peak_sessions_counts_over_all_loops, .timeout = 60) {
  scratch d;
  int port = free_port();
  auto sink = start_sink(d.path, port, {"--threads", "2"});
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  {
    std::vector<std::unique_ptr<smtp_peer>> peers;
    for (int i = 0; i < 5; ++i) peers.push_back(std::make_unique<smtp_peer>(port));
    for (auto& p : peers) cr_assert(starts(p->reply(), "220 "));
  }
  std::string got = sink.stop();
  cr_assert_eq(json_num(got, "peak_sessions"), 5, "%s", got.c_str());
  cr_assert_eq(json_num(got, "sessions_total"), 6, "%s", got.c_str());
}

Test(blaster_sink_faults, drop_fraction_drops_only_some_of_the_times, .timeout = 60) {
  scratch d;
  int port = free_port();
  auto sink = start_sink(d.path, port, {"--threads", "1", "--drop-at", "mail", "--drop-fraction", "0.5"});
  int dropped = 0, answered = 0;
  for (int i = 0; i < 40; ++i) {
    smtp_peer c(port);
    cr_assert(starts(c.reply(), "220 "));
    cr_assert(starts(c.command("EHLO client.test"), "250"));
    const std::string r = c.command("MAIL FROM:<a@client.test>");
    if (starts(r, "250 ")) {
      ++answered;
    } else {
      cr_assert_eq(r, "", "dropped, not answered: %s", r.c_str());
      cr_assert(c.wait_closed());
      ++dropped;
    }
  }
  std::string got = sink.stop();
  cr_assert(dropped > 0 && answered > 0, "%d dropped, %d answered", dropped, answered);
  cr_assert_eq(json_num(got, "dropped"), dropped, "%s", got.c_str());
}

Test(blaster_sink_faults, sigusr1_ends_the_faults_and_the_connection_log_records_each, .timeout = 60) {
  scratch d;
  int port = free_port();
  const std::string log = d.path + "/connections.log";
  auto sink = start_sink(d.path, port,
                         {"--threads", "1", "--greeting", "421", "--max-sessions", "1", "--connection-log", log});
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // the readiness probe has gone
  {
    smtp_peer c(port);
    cr_assert(starts(c.reply(), "421 "));
    cr_assert(c.wait_closed());
  }
  kill(sink.pid, SIGUSR1);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  {
    smtp_peer c(port);
    open_transaction(c);  // recovered: greets with 220 and takes the message
    smtp_peer busy(port);
    cr_assert(starts(busy.reply(), "421 4.7.0"), "the session limit is no fault: it stays");
    cr_assert(starts(c.command("DATA"), "354 "));
    c.send(message);
    cr_assert(starts(c.reply(), "250 "));
  }
  std::string got = sink.stop();
  cr_assert_eq(json_num(got, "accepted"), 1, "%s", got.c_str());
  // probe, the 421, the recovered session, the one over the limit: one line each, in order.
  const std::string lines = slurp(log);
  std::vector<std::string> kinds;
  std::istringstream in(lines);
  for (std::string line; std::getline(in, line);) {
    const auto tab = line.find('\t');
    cr_assert(tab != std::string::npos && tab >= 13, "unix ms, tab: %s", line.c_str());
    kinds.push_back(line.substr(tab + 1));
  }
  cr_assert_eq(kinds.size(), 4u, "%s", lines.c_str());
  cr_assert(kinds[0] == "session" && kinds[1] == "session" && kinds[2] == "session" && kinds[3] == "refused", "%s",
            lines.c_str());
}
