// receive_test.cc: the receive path end to end: the built sluiced driven by real SMTP clients.
#include <criterion/criterion.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>

#include "assertions.h"
#include "harness.h"

using namespace sluice::testing;
namespace fs = std::filesystem;

namespace {

// Messages the store holds, from `sluicectl queue list --json`.
size_t queued_count(const sluiced_process& d) {
  auto r = d.ctl("queue list --json");
  std::smatch m;
  static const std::regex count_re("\"messages\"\\s*:\\s*(\\d+)");
  if (!std::regex_search(r.output, m, count_re)) return static_cast<size_t>(-1);
  return std::stoul(m[1]);
}

std::string send_one(uint16_t port, const std::string& rcpt, const std::string& body) {
  smtp_client c(port);
  c.start_transaction();
  c.cmd("RCPT TO:<" + rcpt + ">");
  c.cmd("DATA");
  std::string r = c.cmd(body + "\r\n.");
  c.cmd("QUIT");
  return r;
}

// Bodies of different sizes, in lines of at most 300 octets.
std::string filler(int i) {
  std::string out;
  for (int line = 0; line < i % 7; ++line) out += std::string(300, static_cast<char>('a' + line)) + "\r\n";
  return out;
}

}  // namespace

Test(integration_receive, banner_names_host_and_date) {
  sluiced_process d;
  START(d);
  smtp_client c(d.port());
  std::string banner = c.reply();
  static const std::regex re(
      "^220 mx\\.sluice\\.test ESMTP sluice ready at (Mon|Tue|Wed|Thu|Fri|Sat|Sun), \\d{1,2} [A-Z][a-z]{2} \\d{4} "
      "\\d{2}:\\d{2}:\\d{2} [+-]\\d{4}\r\n$");
  cr_assert(std::regex_match(banner, re), "banner: %s", banner.c_str());
  EXPECT_CODE(c.cmd("QUIT"), 221);
}

Test(integration_receive, seed_telnet_session_exactly_as_typed) {
  sluiced_process d;
  START(d);
  for (bool lower : {false, true}) {
    smtp_client c(d.port());
    EXPECT_CODE(c.reply(), 220);
    // No HELO, no angle brackets, a NOTIFY parameter: as the seed's telnet session types it.
    EXPECT_CODE(c.cmd(lower ? "mail from:guy@yourplace.com" : "MAIL FROM:guy@yourplace.com"), 250);
    EXPECT_CODE(c.cmd(lower ? "rcpt to:alice@sluice.test NOTIFY=success,failure"
                            : "RCPT TO:alice@sluice.test NOTIFY=success,failure"), 250);
    EXPECT_CODE(c.cmd(lower ? "data" : "DATA"), 354);
    c.send("Subject: Test from Guy");
    c.send("");
    c.send("This is Guy's message");
    c.send("");
    std::string r = c.cmd(".");
    static const std::regex re("^250 2\\.6\\.0 <[0-9A-F]{16}> Queued mail for delivery\r\n$");
    cr_assert(std::regex_match(r, re), "end of data reply: %s", r.c_str());
    EXPECT_CODE(c.cmd(lower ? "quit" : "QUIT"), 221);
  }
  cr_assert_eq(queued_count(d), 2u);
}

Test(integration_receive, python_smtplib_sees_every_extension_and_sends) {
  sluiced_process d;
  START(d);
  auto r = run("python3 " + source_root() + "/tests/integration/clients/smtplib_send.py " + std::to_string(d.port()) +
               " sender@example.org alice@sluice.test,bob@sluice.test 5 --features");
  cr_assert_eq(r.status, 0, "%s", r.output.c_str());
  for (const char* ext : {"pipelining", "size", "8bitmime", "enhancedstatuscodes", "dsn", "chunking", "smtputf8"})
    cr_assert(r.output.find(ext) != std::string::npos, "EHLO lacks %s: %s", ext, r.output.c_str());
  size_t sent = 0;
  for (size_t pos = 0; (pos = r.output.find("SENT ", pos)) != std::string::npos; ++pos) ++sent;
  cr_assert_eq(sent, 5u, "%s", r.output.c_str());
  cr_assert_eq(queued_count(d), 5u);
}

Test(integration_receive, swaks_plain_and_pipelined) {
  sluiced_process d;
  START(d);
  std::string base = "swaks --server 127.0.0.1:" + std::to_string(d.port()) +
                     " --from sender@example.org --to bob@sluice.test --helo client.example --timeout 20";
  auto plain = run(base);
  cr_assert_eq(plain.status, 0, "%s", plain.output.c_str());
  cr_assert(plain.output.find("250 2.6.0 <") != std::string::npos, "%s", plain.output.c_str());
  auto piped = run(base + " --pipeline");
  cr_assert_eq(piped.status, 0, "%s", piped.output.c_str());
  cr_assert(piped.output.find("250 2.6.0 <") != std::string::npos, "%s", piped.output.c_str());
  cr_assert_eq(queued_count(d), 2u);
}

Test(integration_receive, pipelined_transactions_in_one_write) {
  sluiced_process d;
  START(d);
  smtp_client c(d.port());
  c.reply();
  c.cmd("EHLO client.example");
  std::string batch;
  for (int i = 0; i < 20; ++i) {
    batch += "MAIL FROM:<s" + std::to_string(i) + "@example.org>\r\nRCPT TO:<alice@sluice.test>\r\nDATA\r\n";
    batch += "Subject: pipelined " + std::to_string(i) + "\r\n\r\nbody\r\n.\r\n";
  }
  batch += "QUIT\r\n";
  c.send_raw(batch);
  std::set<std::string> ids;
  for (int i = 0; i < 20; ++i) {
    EXPECT_CODE(c.reply(), 250);
    EXPECT_CODE(c.reply(), 250);
    EXPECT_CODE(c.reply(), 354);
    std::string r = c.reply();
    EXPECT_CODE(r, 250);
    ids.insert(queue_id_of(r));
  }
  EXPECT_CODE(c.reply(), 221);
  cr_assert_eq(ids.size(), 20u, "every message gets its own queue id");
  cr_assert_eq(queued_count(d), 20u);
}

Test(integration_receive, bdat_chunks) {
  sluiced_process d;
  START(d);
  smtp_client c(d.port());
  c.reply();
  c.cmd("EHLO client.example");
  EXPECT_CODE(c.cmd("MAIL FROM:<sender@example.org> BODY=BINARYMIME"), 250);
  EXPECT_CODE(c.cmd("RCPT TO:<alice@sluice.test>"), 250);
  std::string part1 = "Subject: bdat\r\n\r\nfirst chunk\r\n.\r\n";  // a dot line is data in BDAT
  std::string part2 = "second chunk\r\n";
  c.send_raw("BDAT " + std::to_string(part1.size()) + "\r\n" + part1);
  EXPECT_CODE(c.reply(), 250);
  c.send_raw("BDAT " + std::to_string(part2.size()) + " LAST\r\n" + part2);
  std::string r = c.reply();
  EXPECT_CODE(r, 250);
  std::string id = queue_id_of(r);
  cr_assert(!id.empty(), "%s", r.c_str());
  auto shown = d.ctl("queue show " + id);
  cr_assert(shown.output.find("first chunk\r\n.\r\nsecond chunk") != std::string::npos ||
                shown.output.find("first chunk\n.\nsecond chunk") != std::string::npos,
            "body kept verbatim: %s", shown.output.c_str());
}

Test(integration_receive, relay_refused_for_internet_allowed_for_relay_range) {
  sluiced_process d;
  START(d);
  smtp_client outside(d.port(), "127.0.0.1");
  outside.start_transaction();
  std::string r = outside.cmd("RCPT TO:<someone@elsewhere.example>");
  EXPECT_CODE(r, 550);
  cr_assert(r.find("5.7.54") != std::string::npos, "%s", r.c_str());
  // Accepted external-relay domains are not relaying.
  EXPECT_CODE(outside.cmd("RCPT TO:<anyone@relay.test>"), 250);

  smtp_client inside(d.port(), "127.0.0.2");
  cr_assert(inside.connected());
  inside.reply();
  inside.cmd("EHLO relay-client.example");
  inside.cmd("MAIL FROM:<sender@example.org>");
  EXPECT_CODE(inside.cmd("RCPT TO:<someone@elsewhere.example>"), 250);
}

Test(integration_receive, unknown_recipient_of_authoritative_domain) {
  sluiced_process d;
  START(d);
  smtp_client c(d.port());
  c.start_transaction();
  std::string r = c.cmd("RCPT TO:<nobody@sluice.test>");
  EXPECT_CODE(r, 550);
  cr_assert(r.find("5.1.10") != std::string::npos, "%s", r.c_str());
  EXPECT_CODE(c.cmd("RCPT TO:<Alice@SLUICE.test>"), 250);
}

Test(integration_receive, too_many_recipients) {
  sluiced_process d;
  START(d);
  smtp_client c(d.port());
  c.start_transaction();
  for (int i = 0; i < 5; ++i) EXPECT_CODE(c.cmd("RCPT TO:<alice@sluice.test>"), 250);
  std::string r = c.cmd("RCPT TO:<bob@sluice.test>");
  EXPECT_CODE(r, 452);
  cr_assert(r.find("4.5.3") != std::string::npos, "%s", r.c_str());
}

Test(integration_receive, size_limits_refuse_without_storing) {
  sluiced_process d;
  START(d);
  smtp_client c(d.port());
  c.reply();
  c.cmd("EHLO client.example");
  std::string r = c.cmd("MAIL FROM:<sender@example.org> SIZE=2000000");
  EXPECT_CODE(r, 552);
  cr_assert(r.find("5.3.4") != std::string::npos, "%s", r.c_str());
  EXPECT_CODE(c.cmd("MAIL FROM:<sender@example.org>"), 250);
  EXPECT_CODE(c.cmd("RCPT TO:<alice@sluice.test>"), 250);
  EXPECT_CODE(c.cmd("DATA"), 354);
  std::string line(998, 'x');
  std::string big;
  for (int i = 0; i < 1200; ++i) big += line + "\r\n";  // ~1.2 MB > 1M limit
  c.send_raw(big);
  r = c.cmd(".");
  EXPECT_CODE(r, 552);
  EXPECT_CODE(c.cmd("QUIT"), 221);
  cr_assert_eq(queued_count(d), 0u);
}

Test(integration_receive, bare_lf_in_data_is_refused_and_not_queued) {
  sluiced_process d;
  START(d);
  smtp_client c(d.port());
  c.start_transaction();
  c.cmd("RCPT TO:<alice@sluice.test>");
  EXPECT_CODE(c.cmd("DATA"), 354);
  // The smuggling payload: a bare-LF "end of data" followed by a second transaction.
  c.send_raw("Subject: x\r\n\r\nhello\n.\nMAIL FROM:<evil@example.org>\r\nRCPT TO:<bob@sluice.test>\r\nDATA\r\nsmuggled\r\n.\r\n");
  std::string r = c.reply();
  cr_assert_eq(code_of(r) / 100, 5, "bare LF must get a 5xx: %s", r.c_str());
  EXPECT_CODE(c.cmd("QUIT"), 221);
  cr_assert_eq(queued_count(d), 0u);
}

Test(integration_receive, no_matching_connector_gets_554) {
  sluiced_process d;
  std::string cfg = sluiced_process::default_config();
  // Only 127.0.0.2 is covered.
  cfg.replace(cfg.find("type = \"internet\"\n"), 18, "type = \"internet\"\nremote_ranges = [\"127.0.0.5\"]\n");
  d.write_config(cfg);
  START(d);
  smtp_client c(d.port(), "127.0.0.3");
  std::string r = c.reply();
  EXPECT_CODE(r, 554);
  cr_assert(c.closed_by_peer(), "the session is closed after 554");
}

Test(integration_receive, protocol_log_records_the_session) {
  sluiced_process d;
  START(d);
  std::string r = send_one(d.port(), "alice@sluice.test", "Subject: logged\r\n\r\nbody");
  EXPECT_CODE(r, 250);
  std::string text;
  for (int i = 0; i < 50 && text.find(",\"-\"") == std::string::npos && text.find(",-,") == std::string::npos; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    std::ifstream in(d.dir() + "/log/protocol/Internet.csv");
    std::stringstream ss;
    ss << in.rdbuf();
    text = ss.str();
  }
  cr_assert(text.rfind("date-time,connector-id,session-id,sequence-number,local-endpoint,remote-endpoint,event,data", 0) == 0,
            "header line: %s", text.c_str());
  for (const char* needle : {",+,", ",<,\"EHLO client.example\"", ",>,\"250", ",<,\"MAIL FROM:<sender@example.org>\"", ",-,"})
    cr_assert(text.find(needle) != std::string::npos, "log lacks %s:\n%s", needle, text.c_str());
}

Test(integration_receive, crash_after_acknowledgement_loses_nothing) {
  sluiced_process d;
  START(d);
  const int n = 300;
  std::vector<std::string> ids;
  {
    smtp_client c(d.port());
    c.reply();
    c.cmd("EHLO client.example");
    for (int i = 0; i < n; ++i) {
      c.cmd("MAIL FROM:<sender@example.org>");
      c.cmd("RCPT TO:<alice@sluice.test>");
      c.cmd("DATA");
      std::string r = c.cmd("Subject: crash " + std::to_string(i) + "\r\n\r\nbody number " + std::to_string(i) +
                            " " + filler(i) + "\r\n.");
      cr_assert_eq(code_of(r), 250, "%s", r.c_str());
      ids.push_back(queue_id_of(r));
    }
  }
  d.kill9();
  START(d);
  d.stop();
  cr_assert_eq(queued_count(d), static_cast<size_t>(n));
  auto list = d.ctl("queue list");
  for (const auto& id : ids) cr_assert(list.output.find(id) != std::string::npos, "lost %s", id.c_str());
  for (int i : {0, 1, n / 2, n - 1}) {
    auto shown = d.ctl("queue show " + ids[i]);
    std::string expect = "body number " + std::to_string(i) + " " + filler(i);
    cr_assert(shown.output.find(expect) != std::string::npos, "body of %s damaged:\n%s", ids[i].c_str(),
              shown.output.c_str());
  }
}

Test(integration_receive, config_errors_name_file_line_and_key) {
  sluiced_process d;
  std::string cfg = sluiced_process::default_config();
  cfg.replace(cfg.find("max_recipients = 5"), 18, "max_recipients = \"many\"");
  d.write_config(cfg);
  auto r = run(sluiced_path() + " --config " + d.dir() + "/sluice.toml --check-config");
  cr_assert_eq(r.status, 78, "%s", r.output.c_str());
  cr_assert(r.output.find(d.dir() + "/sluice.toml:") != std::string::npos, "%s", r.output.c_str());
  cr_assert(r.output.find("max_recipients") != std::string::npos, "%s", r.output.c_str());
}

Test(integration_receive, full_store_gives_452_and_daemon_survives) {
  sluiced_process d;
  std::string cfg = sluiced_process::default_config();
  cfg.replace(cfg.find("map_size = \"256M\""), 17, "map_size = \"1M\"");
  d.write_config(cfg);
  START(d);
  // 100 KB messages: a 1 MiB map keeps half of itself in reserve for the work that frees space,
  // and refuses for good (552 5.3.4) a message that could not be categorized in what is left.
  std::string body = "Subject: fill\r\n\r\n";
  for (int i = 0; i < 100; ++i) body += std::string(998, 'f') + "\r\n";
  bool saw_452 = false;
  for (int i = 0; i < 40 && !saw_452; ++i) {
    std::string r = send_one(d.port(), "alice@sluice.test", body);
    if (code_of(r) == 452) {
      saw_452 = r.find("4.3.1") != std::string::npos;
    } else {
      cr_assert_eq(code_of(r), 250, "%s", r.c_str());
    }
  }
  cr_assert(saw_452, "a full map must give 452 4.3.1");
  EXPECT_CODE(send_one(d.port(), "alice@sluice.test", "Subject: small\r\n\r\nsmall"), 250);
}

Test(integration_receive, misbehaving_session_is_closed) {
  sluiced_process d;
  START(d);
  smtp_client c(d.port());
  c.reply();
  std::string last;
  for (int i = 0; i < 12 && !c.closed_by_peer(50); ++i) last = c.cmd("BOGUS command " + std::to_string(i));
  cr_assert(c.closed_by_peer(), "the session must be closed after too many errors");
}

Test(integration_receive, received_header_added) {
  sluiced_process d;
  START(d);
  std::string r = send_one(d.port(), "bob@sluice.test", "Subject: trace\r\n\r\nbody");
  std::string id = queue_id_of(r);
  cr_assert(!id.empty(), "%s", r.c_str());
  auto shown = d.ctl("queue show " + id);
  cr_assert(shown.output.find("Received: from client.example ([127.0.0.1])") != std::string::npos, "%s",
            shown.output.c_str());
  cr_assert(shown.output.find("by mx.sluice.test (sluice) with ESMTP id " + id) != std::string::npos, "%s",
            shown.output.c_str());
}

Test(integration_receive, ipv6_binding) {
  if (run("python3 -c 'import socket; s=socket.socket(socket.AF_INET6); s.bind((\"::1\", 0))'").status != 0) {
    cr_skip_test("no IPv6 loopback on this machine");
  }
  sluiced_process d;
  std::string cfg = sluiced_process::default_config();
  const std::string v4_only = "bindings = [\"127.0.0.1:@PORT@\"]\nmax_recipients";
  cfg.replace(cfg.find(v4_only), v4_only.size(), "bindings = [\"127.0.0.1:@PORT@\", \"[::1]:@PORT@\"]\nmax_recipients");
  d.write_config(cfg);
  START(d);
  auto r = run("swaks --server ::1 --port " + std::to_string(d.port()) +
               " -6 --from sender@example.org --to alice@sluice.test --helo v6.example --timeout 20");
  cr_assert_eq(r.status, 0, "%s", r.output.c_str());
  cr_assert(r.output.find("250 2.6.0 <") != std::string::npos, "%s", r.output.c_str());
}

Test(integration_receive, idle_and_data_timeouts_close_with_421) {
  sluiced_process d;
  std::string cfg = sluiced_process::default_config();
  const std::string t = "timeouts = { command_s = 30, data_s = 30, connection_s = 60 }";
  cfg.replace(cfg.find(t), t.size(), "timeouts = { command_s = 1, data_s = 2, connection_s = 60 }");
  d.write_config(cfg);
  START(d);
  smtp_client idle(d.port());
  idle.reply();
  std::string r = idle.reply(3000);
  EXPECT_CODE(r, 421);
  cr_assert(r.find("4.4.2") != std::string::npos, "%s", r.c_str());
  cr_assert(idle.closed_by_peer());

  // Inside DATA the (longer) data timeout applies: 1.5 s of silence is allowed there.
  smtp_client slow(d.port());
  slow.start_transaction();
  slow.cmd("RCPT TO:<alice@sluice.test>");
  EXPECT_CODE(slow.cmd("DATA"), 354);
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  slow.send("Subject: slow");
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  EXPECT_CODE(slow.cmd("\r\nbody\r\n."), 250);
}

Test(integration_receive, connections_per_ip_are_limited) {
  sluiced_process d;
  std::string cfg = sluiced_process::default_config();
  cfg.replace(cfg.find("max_recipients = 5"), 18, "max_recipients = 5\nmax_connections_per_ip = 2");
  d.write_config(cfg);
  START(d);
  // The start-up probe's connection counts until the daemon has seen it close.
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  smtp_client a(d.port()), b(d.port());
  EXPECT_CODE(a.reply(), 220);
  EXPECT_CODE(b.reply(), 220);
  smtp_client c(d.port());
  std::string r = c.reply();
  EXPECT_CODE(r, 421);
  cr_assert(r.find("4.7.0") != std::string::npos, "%s", r.c_str());
  // Another source address has its own allowance.
  smtp_client other(d.port(), "127.0.0.9");
  EXPECT_CODE(other.reply(), 220);
  a.cmd("QUIT");
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  smtp_client again(d.port());
  EXPECT_CODE(again.reply(), 220);
}

Test(integration_receive, client_that_never_reads_replies_cannot_grow_memory) {
  sluiced_process d;
  START(d);
  long before = d.rss_kib();
  smtp_client c(d.port());
  c.reply();
  std::string noops;
  for (int i = 0; i < 100000; ++i) noops += "NOOP\r\n";
  size_t sent = 0;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(4);
  while (std::chrono::steady_clock::now() < deadline) {
    size_t n = c.send_nonblocking(noops);
    sent += n;
    if (n == 0) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  long after = d.rss_kib();
  // Each NOOP owes a 250 reply; without back-pressure the replies to everything sent
  // would pile up in the daemon. The kernel buffers bound what we could send.
  cr_assert_lt(after - before, 64 * 1024, "daemon grew from %ld to %ld KiB after %zu bytes", before, after, sent);
  EXPECT_CODE(c.reply(), 250);
}

Test(integration_receive, mail_loop_is_refused_by_hop_count) {
  sluiced_process d;
  START(d);
  std::string headers;
  for (int i = 0; i < 100; ++i) headers += "Received: from hop" + std::to_string(i) + ".example by relay.example; x\r\n";
  std::string r = send_one(d.port(), "alice@sluice.test", headers + "Subject: loop\r\n\r\nbody");
  EXPECT_CODE(r, 554);
  cr_assert(r.find("5.4.6") != std::string::npos, "%s", r.c_str());
  // 99 earlier hops plus ours is still within the limit.
  headers.erase(headers.rfind("Received:"));
  EXPECT_CODE(send_one(d.port(), "alice@sluice.test", headers + "Subject: long path\r\n\r\nbody"), 250);
  cr_assert_eq(queued_count(d), 1u);
}

Test(integration_receive, tracking_log_records_receive) {
  sluiced_process d;
  START(d);
  std::string r = send_one(d.port(), "alice@sluice.test", "Subject: tracked\r\n\r\nbody");
  std::string id = queue_id_of(r);
  cr_assert(!id.empty(), "%s", r.c_str());
  std::string text;
  for (int i = 0; i < 50 && text.find(id) == std::string::npos; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    text = run("cat " + d.dir() + "/log/tracking.csv").output;
  }
  cr_assert(text.rfind("date-time,event,queue-id,sender,recipients,connector,detail", 0) == 0, "%s", text.c_str());
  cr_assert(text.find(",RECEIVE,\"" + id + "\",\"sender@example.org\",\"alice@sluice.test\",\"Internet\",\"client=127.0.0.1 helo=client.example") !=
                std::string::npos,
            "%s", text.c_str());
}

Test(integration_receive, rcpt_checks_the_route_size_limit) {
  sluiced_process d;
  d.write_config(sluiced_process::default_config() + R"(
[[send_connector]]
name = "Fabrikam"
address_spaces = ["*.fabrikam.test;5"]
routing = "smarthost"
smart_hosts = ["relay.fabrikam.test:2525"]
max_message_size = "64K"
)");
  START(d);
  smtp_client c(d.port(), "127.0.0.2");  // the relay connector
  c.reply();
  c.cmd("EHLO client.example");
  EXPECT_CODE(c.cmd("MAIL FROM:<sender@example.org> SIZE=100000"), 250);
  std::string r = c.cmd("RCPT TO:<x@mx.fabrikam.test>");
  EXPECT_CODE(r, 552);
  cr_assert(r.find("5.3.4") != std::string::npos, "%s", r.c_str());
  EXPECT_CODE(c.cmd("RCPT TO:<alice@sluice.test>"), 250);  // within the server's own limit
  EXPECT_CODE(c.cmd("RSET"), 250);
  EXPECT_CODE(c.cmd("MAIL FROM:<sender@example.org> SIZE=1000"), 250);
  EXPECT_CODE(c.cmd("RCPT TO:<x@mx.fabrikam.test>"), 250);
}
