// delivery_bdat_test.cc: sluiced relays with BDAT (RFC 3030) to a next hop offering CHUNKING: BINARYMIME byte for byte, chunk refusals, a hop lost after LAST, BDAT turned off.
// Untrusted input: none (the test is both the sending client and, through clients/next_hop.py, the next hop).
#include <criterion/criterion.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "assertions.h"
#include "delivery_env.h"
#include "next_hop.h"

using namespace sluice::testing;
using namespace std::literals;

namespace {

const char* dest_zone = "mx-host=dest.test,mx.dest.test,10\nhost-record=mx.dest.test,127.0.0.21\n";

// Control bytes made visible, for assertion messages (the first 300 bytes).
std::string visible(std::string_view s) {
  std::string out;
  for (char c : s.substr(0, 300)) {
    if (c == '\r') out += "\\r";
    else if (c == '\n') out += "\\n";
    else if (c == '\0') out += "\\0";
    else out += c;
  }
  return out;
}

// Binary content: every octet value, NUL, bare LF and CR, lone dots and forged ends of data
// (which BDAT does not care about and DATA could never carry), repeated to `size` octets.
std::string binary_content(std::size_t size) {
  std::string head = "Subject: binary\r\nContent-Transfer-Encoding: binary\r\n\r\n";
  std::string pattern;
  for (int i = 0; i < 256; ++i) pattern += char(i);
  pattern += "\n.\n\r.\r\r\n.\r\n\0.\0"s;
  std::string out = head;
  while (out.size() < size) out += pattern;
  out.resize(size);
  return out;
}

// Sends `content` to sluiced over BDAT in chunks of `chunk` octets; returns the last reply.
std::string submit_bdat(uint16_t port, const std::string& mail_args, const std::vector<std::string>& rcpts,
                        const std::string& content, std::size_t chunk) {
  smtp_client c(port);
  EXPECT_CODE(c.reply(), 220);
  EXPECT_CODE(c.cmd("EHLO client.example"), 250);
  EXPECT_CODE(c.cmd("MAIL FROM:<sender@client.test>" + mail_args), 250);
  for (const auto& r : rcpts) EXPECT_CODE(c.cmd("RCPT TO:<" + r + ">"), 250);
  std::string r;
  std::size_t at = 0;
  do {
    const std::size_t n = std::min(chunk, content.size() - at);
    const bool last = at + n == content.size();
    c.send_raw("BDAT " + std::to_string(n) + (last ? " LAST" : "") + "\r\n" + content.substr(at, n));
    r = c.reply(10'000);
    at += n;
    if (last || code_of(r) != 250) break;
  } while (true);
  c.cmd("QUIT");
  return r;
}

// The next hop's copy of a message sluiced stored as its Received: line plus `content`:
// that content, octet for octet, behind the header sluiced added.
void expect_relayed_exactly(const next_hop::message& m, const std::string& content, const char* what) {
  cr_assert(m.data.size() > content.size() && m.data.ends_with(content),
            "%s: %zu octets at the next hop for %zu sent, starting %s", what, m.data.size(), content.size(),
            visible(m.data).c_str());
  const std::string added = m.data.substr(0, m.data.size() - content.size());
  cr_assert(added.starts_with("Received: ") && added.ends_with("\r\n") && added.find('\0') == std::string::npos,
            "%s: before the content: %s", what, visible(added).c_str());
}

void await_settled(delivery_env& env, const next_hop& hop) {
  cr_assert(eventually([&] { return env.queued_items() == 0; }, 30'000), "queue: %s\nsessions:\n%s\n%s",
            env.daemon.ctl("queue list").output.c_str(), hop.sessions().c_str(), env.daemon.log().c_str());
}

std::size_t count(const std::string& haystack, const std::string& needle) {
  std::size_t n = 0;
  for (std::size_t at = haystack.find(needle); at != std::string::npos; at = haystack.find(needle, at + 1)) ++n;
  return n;
}

}  // namespace

// BINARYMIME over BDAT in, BDAT out: the stored octets as they are (NUL, bare LF and CR, forged
// endings) in 1 MiB chunks, MAIL with BODY=BINARYMIME; a small message as one BDAT LAST. Text
// mail goes with BDAT too: a dot-stuffed DATA line arrives unstuffed, and a line that starts with
// a dot over BDAT arrives as it was sent (text over BDAT with a bare CR or LF is refused inbound
// with DATA's 550 5.6.11: protocol_attack_test.cc).
Test(delivery_bdat, binarymime_and_text_relayed_with_bdat_byte_for_byte, .timeout = 90) {
  delivery_env env(dest_zone);
  next_hop hop(env.daemon.dir(), "127.0.0.21", env.sink_port, {"--chunking"});
  cr_assert(hop.started(), "next hop: %s", hop.output().c_str());
  env.configure();
  START(env.daemon);

  const std::string big = binary_content(2'500'000);
  const std::string small = binary_content(3000);
  EXPECT_CODE(submit_bdat(env.daemon.port(), " BODY=BINARYMIME", {"big1@dest.test", "big2@dest.test"}, big, 300'000),
              250);
  EXPECT_CODE(submit_bdat(env.daemon.port(), " BODY=BINARYMIME", {"small@dest.test"}, small, 1000), 250);
  const std::string text_in = "Subject: text\r\n\r\nline\r\n.hidden dot line\r\nend\r\n";
  EXPECT_CODE(submit_bdat(env.daemon.port(), " BODY=8BITMIME", {"text@dest.test"}, text_in, 10), 250);
  smtp_client c(env.daemon.port());
  EXPECT_CODE(c.start_transaction("sender@client.test"), 250);
  EXPECT_CODE(c.cmd("RCPT TO:<data@dest.test>"), 250);
  EXPECT_CODE(c.cmd("DATA"), 354);
  c.send_raw("Subject: data\r\n\r\n..leading dot\r\n.\r\n");
  EXPECT_CODE(c.reply(), 250);
  c.cmd("QUIT");

  await_settled(env, hop);
  const auto got = hop.messages();
  cr_assert_eq(got.size(), 4u, "sessions:\n%s", hop.sessions().c_str());
  cr_assert(eventually([&] { return env.tracked_recipients("DELIVER") == 5; }, 5000), "DELIVER: %zu",
            env.tracked_recipients("DELIVER"));
  bool seen[4] = {};
  for (const auto& m : got) {
    if (m.rcpts == "<big1@dest.test>,<big2@dest.test>") {
      seen[0] = true;
      cr_assert(m.from.find("BODY=BINARYMIME") != std::string::npos, "MAIL FROM:%s", m.from.c_str());
      expect_relayed_exactly(m, big, "2.5 MB binary");
    } else if (m.rcpts == "<small@dest.test>") {
      seen[1] = true;
      cr_assert(m.from.find("BODY=BINARYMIME") != std::string::npos, "MAIL FROM:%s", m.from.c_str());
      expect_relayed_exactly(m, small, "3 KB binary");
    } else if (m.rcpts == "<text@dest.test>") {
      seen[2] = true;
      cr_assert(m.from.find("BODY=8BITMIME") != std::string::npos, "MAIL FROM:%s", m.from.c_str());
      expect_relayed_exactly(m, "Subject: text\r\n\r\nline\r\n.hidden dot line\r\nend\r\n", "text over BDAT");
    } else if (m.rcpts == "<data@dest.test>") {
      seen[3] = true;
      expect_relayed_exactly(m, "Subject: data\r\n\r\n.leading dot\r\n", "text from DATA");
    }
  }
  cr_assert(seen[0] && seen[1] && seen[2] && seen[3], "messages.log does not hold the four messages");
  // 2.5 MB with its Received: line: two full 1 MiB chunks and a LAST; the others one LAST each.
  const std::string sessions = hop.sessions();
  cr_assert_eq(count(sessions, "\tbdat 1048576\n"), 2u, "%s", sessions.c_str());
  cr_assert_eq(count(sessions, " last\n"), 4u, "%s", sessions.c_str());
  cr_assert_eq(count(sessions, "\tbdat "), 6u, "%s", sessions.c_str());
}

// A 554 to the middle chunk of three is the outcome of every accepted recipient (the third,
// already pipelined, gets 503 and is ignored); the transaction is RSET. The failure is
// permanent: nothing reaches the hop and both recipients fail with the hop's 5.6.0.
Test(delivery_bdat, refused_middle_chunk_fails_every_recipient_and_rsets, .timeout = 60) {
  delivery_env env(dest_zone);
  next_hop hop(env.daemon.dir(), "127.0.0.21", env.sink_port, {"--chunking", "--bdat-refuse", "2"});
  cr_assert(hop.started(), "next hop: %s", hop.output().c_str());
  env.configure();
  START(env.daemon);
  EXPECT_CODE(submit_bdat(env.daemon.port(), " BODY=BINARYMIME", {"a@dest.test", "b@dest.test"},
                          binary_content(2'500'000), 1'000'000),
              250);
  await_settled(env, hop);
  cr_assert(hop.messages().empty());
  cr_assert(eventually([&] { return env.tracked_recipients("FAIL") == 2; }, 5000), "FAIL lines: %zu",
            env.tracked_recipients("FAIL"));
  for (const auto& line : env.tracking("FAIL"))
    cr_assert(line.find("5.6.0") != std::string::npos && line.find("chunk 2 refused") != std::string::npos, "%s",
              line.c_str());
  const std::string sessions = hop.sessions();
  const auto third = sessions.find("\tbdat ", sessions.find("\tbdat ", sessions.find("\tbdat ") + 1) + 1);
  cr_assert(third != std::string::npos && sessions.find("\trset\n", third) != std::string::npos,
            "want three chunks, then RSET:\n%s", sessions.c_str());
}

// The hop hangs up once BDAT LAST is in, before its reply: the message is not known to be
// delivered, so both recipients are deferred (451 4.4.2) and the retry delivers it once.
Test(delivery_bdat, connection_lost_after_last_defers_then_delivers, .timeout = 60) {
  delivery_env env(dest_zone);
  next_hop hop(env.daemon.dir(), "127.0.0.21", env.sink_port, {"--chunking", "--bdat-drop-at-last", "--attacks", "1"});
  cr_assert(hop.started(), "next hop: %s", hop.output().c_str());
  env.configure();
  START(env.daemon);
  const std::string content = binary_content(5000);
  EXPECT_CODE(submit_bdat(env.daemon.port(), " BODY=BINARYMIME", {"a@dest.test", "b@dest.test"}, content, 5000), 250);
  await_settled(env, hop);
  const auto got = hop.messages();
  cr_assert_eq(got.size(), 1u, "sessions:\n%s", hop.sessions().c_str());
  expect_relayed_exactly(got[0], content, "after the retry");
  cr_assert(hop.sessions().find("dropped at last") != std::string::npos, "%s", hop.sessions().c_str());
  const auto defers = env.tracking("DEFER");
  cr_assert(!defers.empty());
  cr_assert(defers[0].find("4.4.2") != std::string::npos, "%s", defers[0].c_str());
  cr_assert(eventually([&] { return env.tracked_recipients("DELIVER") == 2; }, 5000));
}

// chunking = false (here on the send connector, for a peer whose CHUNKING is broken): text goes
// with DATA although the hop offers CHUNKING, and BINARYMIME, which DATA cannot carry, fails 5.6.3.
Test(delivery_bdat, chunking_off_sends_data_and_refuses_binary, .timeout = 60) {
  delivery_env env(dest_zone);
  next_hop hop(env.daemon.dir(), "127.0.0.21", env.sink_port, {"--chunking"});
  cr_assert(hop.started(), "next hop: %s", hop.output().c_str());
  env.configure("[[send_connector]]\nname = \"Internet\"\naddress_spaces = [\"*\"]\ntls = \"none\"\nchunking = false\n"
                "port = " +
                std::to_string(env.sink_port) + "\n");
  START(env.daemon);
  EXPECT_CODE(submit_bdat(env.daemon.port(), " BODY=BINARYMIME", {"bin@dest.test"}, binary_content(2000), 2000), 250);
  EXPECT_CODE(submit_bdat(env.daemon.port(), "", {"text@dest.test"}, "Subject: t\r\n\r\n.dot\r\n", 100), 250);
  await_settled(env, hop);
  const auto got = hop.messages();
  cr_assert_eq(got.size(), 1u, "sessions:\n%s", hop.sessions().c_str());
  cr_assert(got[0].data.ends_with("Subject: t\r\n\r\n..dot\r\n.\r\n"), "DATA, dot-stuffed: %s",
            visible(got[0].data).c_str());
  cr_assert(hop.sessions().find("\tbdat ") == std::string::npos, "%s", hop.sessions().c_str());
  cr_assert(eventually([&] { return env.tracked_recipients("FAIL") == 1; }, 5000));
  const auto fails = env.tracking("FAIL");
  cr_assert(fails[0].find("bin@dest.test") != std::string::npos && fails[0].find("5.6.3") != std::string::npos, "%s",
            fails[0].c_str());
}

// A blaster load through sluiced to a blaster sink offering CHUNKING: 300 messages of 2 KB to
// 300 KB over reused connections, all with BDAT, none lost, duplicated or corrupted (the
// sink checks every body's digest).
Test(delivery_bdat, blaster_load_over_bdat_loses_nothing, .timeout = 90) {
  delivery_env env("mx-host=bdat.test,mx.bdat.test,10\nhost-record=mx.bdat.test,127.0.0.2\n");
  env.sink("127.0.0.2", {"--chunking"});
  env.configure();
  START(env.daemon);
  const auto sent = env.send("b", 300, {"--domain", "bdat.test", "--size", "2048-300000"});
  cr_assert_eq(sent.status, 0, "blaster send: %s", sent.json.c_str());
  cr_assert_eq(json_number(sent.json, "accepted"), 300, "%s", sent.json.c_str());
  cr_assert(eventually([&] { return env.queued_items() == 0; }, 60'000), "%s",
            env.daemon.ctl("queue list").output.c_str());
  const auto v = env.verify(sent);
  cr_assert_eq(v.lost, 0, "verify: %s", v.json.c_str());
  cr_assert_eq(v.duplicated, 0, "verify: %s", v.json.c_str());
  cr_assert_eq(v.corrupted, 0, "verify: %s", v.json.c_str());
  cr_assert_eq(v.delivered, 300, "verify: %s", v.json.c_str());
  // Every message went with BDAT: at least one chunk each (all under 1 MiB: exactly one).
  const std::string summary = env.sinks.at("127.0.0.2")->stop();
  cr_assert_eq(json_number(summary, "bdat_chunks"), 300, "%s", summary.c_str());
  cr_assert_eq(json_number(summary, "digest_ok"), 300, "%s", summary.c_str());
}
