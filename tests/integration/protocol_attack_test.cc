// protocol_attack_test.cc: SMTP smuggling, STARTTLS injection both ways and open-relay address tricks against the built sluiced, end to end through delivery (issue 13).
// Untrusted input: none (the test plays the attacker: the client, and the next hop in clients/next_hop.py).
#include <criterion/criterion.h>
#include <signal.h>
#include <sys/wait.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "assertions.h"
#include "child.h"
#include "delivery_env.h"
#include "next_hop.h"
#include "pki.h"

using namespace sluice::testing;
using namespace std::literals;

namespace {

// Control bytes made visible, for assertion messages.
std::string visible(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == '\r') out += "\\r";
    else if (c == '\n') out += "\\n";
    else if (c == '\0') out += "\\0";
    else out += c;
  }
  return out;
}

// What is wrong with DATA bytes on the wire for a receiver that reads them leniently: a
// NUL, a CR or LF that is not part of a CRLF, a line holding a lone dot before the last,
// or a missing CRLF.CRLF at the end. "" when none of these.
std::string wire_problem(const std::string& d) {
  if (!d.ends_with("\r\n.\r\n")) return "no CRLF.CRLF at the end";
  for (std::size_t i = 0; i < d.size(); ++i) {
    if (d[i] == '\0') return "NUL at byte " + std::to_string(i);
    if (d[i] == '\r' && (i + 1 == d.size() || d[i + 1] != '\n')) return "bare CR at byte " + std::to_string(i);
    if (d[i] == '\n' && (i == 0 || d[i - 1] != '\r')) return "bare LF at byte " + std::to_string(i);
  }
  if (d.starts_with(".\r\n") || d.find("\r\n.\r\n") + 5 != d.size()) return "a lone dot before the end";
  return {};
}

// Line ends that some receiver somewhere has taken for the end of data (SEC Consult 2023
// and its variants), each followed in the payload by a whole smuggled transaction.
struct ending {
  const char* name;
  std::string bytes;
};
const std::vector<ending>& endings() {
  static const std::vector<ending> all = {
      {"LF.LF", "\n.\n"},         {"CR.CR", "\r.\r"},           {"CRLF.CR", "\r\n.\r"},
      {"LF.CRLF", "\n.\r\n"},     {"CR.CRLF", "\r.\r\n"},       {"CRLF.LF", "\r\n.\n"},
      {"LF.CR", "\n.\r"},         {"CR.LF", "\r.\n"},           {"CRLF.CR CRLF", "\r\n.\r\r\n"},
      {"CRLF NUL.CRLF", "\r\n\0.\r\n"s}, {"CRLF.NUL CRLF", "\r\n.\0\r\n"s}, {"NUL.NUL", "\0.\0"s},
      {"LF NUL.LF", "\n\0.\n"s},  {"CRLF LF.LF", "\r\n\n.\n"},  {"CRLF.CRLF as text", "\r\n..\r\n"},
  };
  return all;
}

const std::string smuggled_sender = "evil@smuggler.test";
const std::string smuggled_transaction =
    "MAIL FROM:<" + smuggled_sender + ">\r\nRCPT TO:<victim@dest.test>\r\nDATA\r\nSubject: smuggled\r\n\r\nsmuggled\r\n";

// Content whose real end (CRLF.CRLF) comes only after the smuggled transaction.
std::string smuggling_content(const ending& e, int i) {
  return "Subject: smuggling " + std::to_string(i) + " " + e.name + "\r\n\r\nhello" + e.bytes + smuggled_transaction +
         ".\r\n";
}

const char* dest_zone = "mx-host=dest.test,mx.dest.test,10\nhost-record=mx.dest.test,127.0.0.21\n";

// Waits until sluiced holds nothing, and the next hop has at least `at_least` messages.
void await_delivery(delivery_env& env, const next_hop& hop, std::size_t at_least) {
  cr_assert(eventually([&] { return env.queued_items() == 0 && hop.messages().size() >= at_least; }, 30'000),
            "queue: %s\nhop: %zu messages, sessions:\n%s\n%s", env.daemon.ctl("queue list").output.c_str(),
            hop.messages().size(), hop.sessions().c_str(), env.daemon.log().c_str());
  // A second message split off a first would be recorded right behind it.
  std::this_thread::sleep_for(300ms);
}

// The smuggled sender is nobody's envelope sender: not at the next hop, not in the tracking
// log; and everything the next hop took is clean on the wire and from the real sender.
void expect_nothing_smuggled(const delivery_env& env, const next_hop& hop) {
  for (const auto& m : hop.messages()) {
    cr_assert(m.from.starts_with("<sender@client.test>"), "next hop got MAIL FROM:%s", m.from.c_str());
    cr_assert(m.rcpts.find("victim@") == std::string::npos, "next hop got RCPT TO:%s", m.rcpts.c_str());
    const std::string problem = wire_problem(m.data);
    cr_assert(problem.empty(), "%s on the wire: %s", problem.c_str(), visible(m.data).c_str());
  }
  const std::string tracking = slurp_file(env.daemon.dir() + "/log/tracking.csv");
  cr_assert(tracking.find(smuggled_sender) == std::string::npos && tracking.find("victim@") == std::string::npos,
            "the smuggled transaction is in the tracking log:\n%s", tracking.c_str());
}

// delivery_env's daemon with a pickup directory scanned every 100 ms.
void with_pickup(delivery_env& env) {
  const std::string path = env.daemon.dir() + "/sluice.toml";
  std::string cfg = slurp_file(path);
  const std::string anchor = "map_size = \"256M\"\n";
  cfg.replace(cfg.find(anchor), anchor.size(),
              anchor + "pickup_dir = \"" + env.daemon.dir() + "/pickup\"\npickup_interval_ms = 100\n");
  env.daemon.write_file("sluice.toml", cfg);
  std::filesystem::create_directories(env.daemon.dir() + "/pickup");
}

// The reply `r` to smuggling content is the only one: a refusal that says why (as the bare
// LF/CR and NUL refusals do) or one message accepted, never replies to the smuggled
// commands; then the session ends. True when the message was accepted.
bool took_one_message(smtp_client& c, const std::string& r, const char* name) {
  if (code_of(r) != 250)
    cr_assert(r.starts_with("550 5.6.") || r.starts_with("554 5.6."), "%s: refused without a clear reply: %s", name,
              r.c_str());
  const std::string more = c.reply(300);
  cr_assert(more.empty(), "%s: the smuggled commands were run: %s", name, more.c_str());
  EXPECT_CODE(c.cmd("QUIT"), 221);
  return code_of(r) == 250;
}

}  // namespace

// DATA with each forged ending: one reply for the whole payload (a refusal naming the
// fault, or one message accepted), never replies to the smuggled commands; what reaches
// the lenient next hop is one message per acceptance, and nothing of the smuggled one.
Test(protocol_attack, smuggled_endings_in_data_never_split_a_message, .timeout = 60) {
  delivery_env env(dest_zone);
  next_hop hop(env.daemon.dir(), "127.0.0.21", env.sink_port);
  cr_assert(hop.started(), "next hop: %s", hop.output().c_str());
  env.configure();
  with_pickup(env);
  START(env.daemon);
  std::size_t accepted = 0;
  int i = 0;
  for (const auto& e : endings()) {
    smtp_client c(env.daemon.port());
    EXPECT_CODE(c.start_transaction("sender@client.test"), 250);
    EXPECT_CODE(c.cmd("RCPT TO:<rcpt" + std::to_string(i) + "@dest.test>"), 250);
    EXPECT_CODE(c.cmd("DATA"), 354);
    c.send_raw(smuggling_content(e, i++));
    accepted += took_one_message(c, c.reply(), e.name);
  }
  // The one ending that is plain text (a dot-stuffed line) is a message like any other.
  cr_assert_eq(accepted, 1u);
  // The pickup directory takes files as they are (bare LF, a NUL): no SMTP framing there,
  // but what it queues goes out with DATA like the rest.
  for (const auto& [name, ending] : {std::pair{"lf", "\n.\n"s}, {"nul", "\r\n\0.\r\n"s}}) {
    const std::string file = "X-Sender: sender@client.test\nX-Receiver: pickup-"s + name +
                             "@dest.test\nSubject: pickup\n\nhello" + ending + smuggled_transaction + ".\n";
    env.daemon.write_file("pickup/"s + name + ".part", file);
    std::filesystem::rename(env.daemon.dir() + "/pickup/" + name + ".part", env.daemon.dir() + "/pickup/" + name + ".eml");
    ++accepted;
  }
  await_delivery(env, hop, accepted);
  cr_assert_eq(hop.messages().size(), accepted, "sessions:\n%s", hop.sessions().c_str());
  expect_nothing_smuggled(env, hop);
  cr_assert(eventually([&] { return env.tracked_recipients("DELIVER") == accepted; }, 5000));
}

// BDAT carries octets, not lines: the same payloads arrive as content (whole, or split
// inside the forged ending between two chunks) and sluiced relays them with DATA. It may
// refuse them or take them, but what it writes to the next hop must have no line end other
// than CRLF, no NUL and no lone dot before its own: a lenient hop then sees one message.
// BINARYMIME content (where RFC 3030 allows NUL) cannot go out with DATA at all.
Test(protocol_attack, smuggled_endings_in_bdat_are_relayed_harmless, .timeout = 90) {
  delivery_env env(dest_zone);
  next_hop hop(env.daemon.dir(), "127.0.0.21", env.sink_port);
  cr_assert(hop.started(), "next hop: %s", hop.output().c_str());
  env.configure();
  START(env.daemon);
  std::size_t accepted = 0;
  int i = 0;
  for (const char* body : {"", " BODY=BINARYMIME"}) {
    for (const auto& e : endings()) {
      for (bool split : {false, true}) {
        const std::string content = smuggling_content(e, i);
        smtp_client c(env.daemon.port());
        EXPECT_CODE(c.reply(), 220);
        EXPECT_CODE(c.cmd("EHLO client.example"), 250);
        EXPECT_CODE(c.cmd("MAIL FROM:<sender@client.test>"s + body), 250);
        EXPECT_CODE(c.cmd("RCPT TO:<rcpt" + std::to_string(i++) + "@dest.test>"), 250);
        std::string r;
        if (split) {
          // The chunk boundary falls inside the forged ending.
          const std::size_t cut = content.find(e.bytes) + 1;
          c.send_raw("BDAT " + std::to_string(cut) + "\r\n" + content.substr(0, cut));
          r = c.reply();
          if (code_of(r) == 250) {
            c.send_raw("BDAT " + std::to_string(content.size() - cut) + " LAST\r\n" + content.substr(cut));
            r = c.reply();
          }
        } else {
          c.send_raw("BDAT " + std::to_string(content.size()) + " LAST\r\n" + content);
          r = c.reply();
        }
        accepted += took_one_message(c, r, e.name);
      }
    }
  }
  cr_assert_gt(accepted, 0u);
  // Every accepted message is delivered or (binary content the next hop cannot take) fails.
  cr_assert(eventually([&] { return env.queued_items() == 0; }, 30'000), "%s", env.daemon.ctl("queue list").output.c_str());
  await_delivery(env, hop, 0);
  const auto taken = hop.messages();
  cr_assert(eventually([&] { return env.tracked_recipients("DELIVER") == taken.size(); }, 5000),
            "%zu DELIVER, the next hop took %zu", env.tracked_recipients("DELIVER"), taken.size());
  cr_assert_leq(taken.size(), accepted);
  cr_assert_eq(taken.size() + env.tracked_recipients("FAIL"), accepted, "accepted %zu, delivered %zu, failed %zu",
               accepted, taken.size(), env.tracked_recipients("FAIL"));
  expect_nothing_smuggled(env, hop);
  for (const auto& line : env.tracking("FAIL"))
    cr_assert(line.find("5.6.3") != std::string::npos, "only binary content may fail: %s", line.c_str());
}

// BDAT content that is not BODY=BINARYMIME is text, held to DATA's rule (issue 13): every
// forged ending with a bare CR or LF, sent in one chunk or split inside the ending, gets
// DATA's 550 5.6.11 after BDAT LAST (a chunk before it gets its 250 as usual), nothing of
// it is queued, and the session stays in step: the next transaction on it is taken and
// delivered.
Test(protocol_attack, bare_line_ends_in_bdat_get_the_refusal_data_gets, .timeout = 90) {
  delivery_env env(dest_zone);
  auto& sink = env.sink("127.0.0.21");
  env.configure();
  START(env.daemon);
  auto bare_line_end = [](const std::string& b) {
    for (std::size_t i = 0; i < b.size(); ++i) {
      if (b[i] == '\r' && (i + 1 == b.size() || b[i + 1] != '\n')) return true;
      if (b[i] == '\n' && (i == 0 || b[i - 1] != '\r')) return true;
    }
    return false;
  };
  std::size_t refused = 0, taken = 0;
  int i = 0;
  for (const char* body : {"", " BODY=7BIT", " BODY=8BITMIME"}) {
    for (const auto& e : endings()) {
      if (!bare_line_end(e.bytes) || e.bytes.find('\0') != std::string::npos) continue;
      for (bool split : {false, true}) {
        const std::string content = smuggling_content(e, i);
        smtp_client c(env.daemon.port());
        EXPECT_CODE(c.reply(), 220);
        EXPECT_CODE(c.cmd("EHLO client.example"), 250);
        EXPECT_CODE(c.cmd("MAIL FROM:<sender@client.test>"s + body), 250);
        EXPECT_CODE(c.cmd("RCPT TO:<bare" + std::to_string(i) + "@dest.test>"), 250);
        if (split) {
          const std::size_t cut = content.find(e.bytes) + 1;
          c.send_raw("BDAT " + std::to_string(cut) + "\r\n" + content.substr(0, cut));
          const std::string first = c.reply();
          cr_assert_eq(first, "250 2.0.0 " + std::to_string(cut) + " octets received\r\n", "%s%s, split: %s", e.name,
                       body, first.c_str());
          c.send_raw("BDAT " + std::to_string(content.size() - cut) + " LAST\r\n" + content.substr(cut));
        } else {
          c.send_raw("BDAT " + std::to_string(content.size()) + " LAST\r\n" + content);
        }
        const std::string r = c.reply();
        cr_assert_eq(r, "550 5.6.11 Bare LF or CR in message not allowed\r\n"s, "%s%s%s: %s", e.name, body,
                     split ? ", split" : "", r.c_str());
        ++refused;
        // In step: the smuggled commands were data, and the next transaction is understood.
        EXPECT_CODE(c.cmd("MAIL FROM:<sender@client.test>"s + body), 250);
        EXPECT_CODE(c.cmd("RCPT TO:<clean" + std::to_string(i++) + "@dest.test>"), 250);
        const std::string clean = "Subject: clean\r\n\r\nclean\r\n";
        c.send_raw("BDAT " + std::to_string(clean.size()) + " LAST\r\n" + clean);
        EXPECT_CODE(c.reply(), 250);
        ++taken;
        EXPECT_CODE(c.cmd("QUIT"), 221);
      }
    }
  }
  cr_assert_geq(refused, 30u, "%zu refused", refused);
  cr_assert(eventually([&] { return env.queued_items() == 0 && sink.received() == taken; }, 30'000),
            "%zu of %zu delivered; queue: %s", sink.received(), taken, env.daemon.ctl("queue list").output.c_str());
  // The tracking log is written in batches: its DELIVER lines may follow the sink's count.
  cr_assert(eventually([&] { return env.tracked_recipients("DELIVER") == taken; }, 5000), "%zu DELIVER of %zu",
            env.tracked_recipients("DELIVER"), taken);
  const std::string tracking = slurp_file(env.daemon.dir() + "/log/tracking.csv");
  cr_assert(tracking.find("bare") == std::string::npos && tracking.find(smuggled_sender) == std::string::npos,
            "a refused message was queued:\n%s", tracking.c_str());
}

// The same payloads to a next hop offering CHUNKING and BINARYMIME: sluiced relays them with
// BDAT, where the length ends a chunk. Binary content arrives exactly as it was taken (its
// forged endings are data, and the hop sees one message); text content arrives with its line
// ends repaired (no bare CR or LF, no NUL), so a hop relaying it on with DATA finds no other end.
Test(protocol_attack, smuggled_endings_in_bdat_relayed_with_bdat, .timeout = 90) {
  delivery_env env(dest_zone);
  next_hop hop(env.daemon.dir(), "127.0.0.21", env.sink_port, {"--chunking"});
  cr_assert(hop.started(), "next hop: %s", hop.output().c_str());
  env.configure();
  START(env.daemon);
  std::map<std::string, std::string> binary_sent;  // recipient -> content
  std::size_t accepted = 0;
  int i = 0;
  for (const char* body : {"", " BODY=BINARYMIME"}) {
    for (const auto& e : endings()) {
      const std::string content = smuggling_content(e, i);
      const std::string rcpt = "rcpt" + std::to_string(i++) + "@dest.test";
      smtp_client c(env.daemon.port());
      EXPECT_CODE(c.reply(), 220);
      EXPECT_CODE(c.cmd("EHLO client.example"), 250);
      EXPECT_CODE(c.cmd("MAIL FROM:<sender@client.test>"s + body), 250);
      EXPECT_CODE(c.cmd("RCPT TO:<" + rcpt + ">"), 250);
      c.send_raw("BDAT " + std::to_string(content.size()) + " LAST\r\n" + content);
      if (took_one_message(c, c.reply(), e.name)) {
        ++accepted;
        if (*body) binary_sent["<" + rcpt + ">"] = content;
      }
    }
  }
  cr_assert_eq(binary_sent.size(), endings().size(), "every binary payload is taken");
  await_delivery(env, hop, accepted);
  const auto taken = hop.messages();
  cr_assert_eq(taken.size(), accepted, "one message at the hop per message taken; sessions:\n%s",
               hop.sessions().c_str());
  cr_assert_eq(env.tracked_recipients("FAIL"), 0u);
  for (const auto& m : taken) {
    cr_assert(m.from.starts_with("<sender@client.test>"), "next hop got MAIL FROM:%s", m.from.c_str());
    auto sent = binary_sent.find(m.rcpts);
    if (sent != binary_sent.end()) {
      cr_assert(m.data.ends_with(sent->second), "binary content changed on the way: %s", visible(m.data).c_str());
      continue;
    }
    for (std::size_t k = 0; k < m.data.size(); ++k) {
      const char ch = m.data[k];
      cr_assert(ch != '\0', "NUL at %zu: %s", k, visible(m.data).c_str());
      cr_assert(ch != '\r' || (k + 1 < m.data.size() && m.data[k + 1] == '\n'), "bare CR at %zu: %s", k,
                visible(m.data).c_str());
      cr_assert(ch != '\n' || (k > 0 && m.data[k - 1] == '\r'), "bare LF at %zu: %s", k, visible(m.data).c_str());
    }
  }
}

namespace {

// The default test daemon with STARTTLS offered on its Internet connector.
void configure_inbound_tls(sluiced_process& d) {
  std::string cfg = sluiced_process::default_config();
  const std::string anchor = "protocol_log = true\ntimeouts";
  cfg.replace(cfg.find(anchor), anchor.size(),
              "protocol_log = true\ntls = { certificate = \"auto\", key = \"auto\", starttls = \"offered\" }\ntimeouts");
  d.write_config(cfg);
}

command_result inject(const sluiced_process& d, const std::string& injected, const char* timing, const char* rcpt) {
  return run("python3 " + source_root() + "/tests/integration/clients/starttls_injection.py " +
             std::to_string(d.port()) + " '" + injected + "' " + timing + " " + rcpt);
}

// A whole transaction, escaped for starttls_injection.py.
const std::string injected_transaction =
    "RSET\\r\\nMAIL FROM:<injected@evil.test>\\r\\nRCPT TO:<bob@sluice.test>\\r\\nDATA\\r\\n"
    "Subject: injected\\r\\n\\r\\ninjected\\r\\n.\\r\\n";

}  // namespace

// CVE-2011-0411 inbound: RSET and a whole transaction in the same write as STARTTLS, or in
// a write of their own between the 220 and the ClientHello (a man in the middle's timing).
// Over real TLS nothing of it is answered or run: the session starts afresh, the client's
// own transaction is the only one queued, and the injected sender is nowhere.
Test(protocol_attack, plaintext_injected_around_starttls_is_never_run, .timeout = 60) {
  sluiced_process d;
  configure_inbound_tls(d);
  START(d);
  auto with = inject(d, injected_transaction, "with", "alice@sluice.test");
  cr_assert_eq(with.status, 0, "%s", with.output.c_str());
  for (const char* step : {"STARTTLS 220", "HANDSHAKE TLSv1.", "UNSOLICITED none", "EHLO-TLS 250", "MAIL-TLS 250",
                           "RCPT-TLS 250", "DATA-TLS 354", "DOT-TLS 250 2.6.0", "QUIT 221"})
    cr_assert(with.output.find(step) != std::string::npos, "want '%s' in:\n%s", step, with.output.c_str());

  auto after = inject(d, injected_transaction, "after", "alice@sluice.test");
  cr_assert_eq(after.status, 0, "%s", after.output.c_str());
  cr_assert(after.output.find("STARTTLS 220") != std::string::npos, "%s", after.output.c_str());
  // The plaintext lands where the ClientHello belongs: the handshake fails, or (had the
  // server not read it yet) it is discarded; either way nothing answers it.
  if (after.output.find("HANDSHAKE failed") == std::string::npos)
    for (const char* step : {"UNSOLICITED none", "MAIL-TLS 250", "DOT-TLS 250 2.6.0"})
      cr_assert(after.output.find(step) != std::string::npos, "want '%s' in:\n%s", step, after.output.c_str());

  const std::size_t real = after.output.find("DOT-TLS 250") == std::string::npos ? 1 : 2;
  cr_assert(eventually([&] { return count_lines(d.dir() + "/log/tracking.csv") > 0; }, 5000));
  cr_assert(eventually(
                [&] {
                  const std::string list = d.ctl("queue list").output;
                  return list.starts_with(std::to_string(real) + (real == 1 ? " message queued" : " messages queued"));
                },
                5000),
            "%s", d.ctl("queue list").output.c_str());
  std::this_thread::sleep_for(300ms);
  const std::string tracking = slurp_file(d.dir() + "/log/tracking.csv");
  cr_assert(tracking.find("injected@evil.test") == std::string::npos, "%s", tracking.c_str());
  cr_assert(tracking.find("real@example.org") != std::string::npos, "%s", tracking.c_str());
}

namespace {

std::string tls_connector(const delivery_env& env, const char* policy) {
  return "[[send_connector]]\nname = \"Internet\"\naddress_spaces = [\"*\"]\ntls = \"" + std::string(policy) +
         "\"\nport = " + std::to_string(env.sink_port) + "\n";
}

// One message relayed to dest.test, whose next hop forges replies on its first `attacks`
// connections (next_hop.py --mode) and behaves afterwards. Nothing read in plaintext after
// (or in place of) a reply sluiced waits for is believed: the attacked attempts defer
// (their DEFER lines naming `defer_text`; an attempt may try the host twice), and the
// message is delivered once, by the honest connection, over TLS, with its real reply.
void expect_forgery_not_believed(const char* mode, const char* policy, const char* defer_text) {
  pki ca;
  delivery_env env(dest_zone);
  next_hop hop(env.daemon.dir(), "127.0.0.21", env.sink_port,
               {"--cert", ca.dir + "/good.pem", "--key", ca.dir + "/good.key", "--mode", mode, "--attacks", "2"});
  cr_assert(hop.started(), "next hop: %s", hop.output().c_str());
  env.configure(tls_connector(env, policy));
  START(env.daemon);
  {
    smtp_client c(env.daemon.port());
    EXPECT_CODE(c.start_transaction("sender@client.test"), 250);
    EXPECT_CODE(c.cmd("RCPT TO:<rcpt@dest.test>"), 250);
    EXPECT_CODE(c.cmd("DATA"), 354);
    EXPECT_CODE(c.cmd("Subject: forged replies\r\n\r\nbody\r\n."), 250);
    EXPECT_CODE(c.cmd("QUIT"), 221);
  }
  await_delivery(env, hop, 1);
  const auto taken = hop.messages();
  cr_assert_eq(taken.size(), 1u, "sessions:\n%s", hop.sessions().c_str());
  cr_assert(taken[0].tls, "delivered in plaintext after the attack; sessions:\n%s", hop.sessions().c_str());
  expect_nothing_smuggled(env, hop);
  const std::string sessions = hop.sessions();
  std::size_t attacked = 0;
  for (std::size_t at = 0; (at = sessions.find("attack="s + mode, at)) != std::string::npos; ++at) ++attacked;
  cr_assert_eq(attacked, 2u, "%s", sessions.c_str());
  const auto defers = env.tracking("DEFER");
  cr_assert_geq(defers.size(), 1u, "the attacked attempt is deferred:\n%s",
                slurp_file(env.daemon.dir() + "/log/tracking.csv").c_str());
  for (const auto& line : defers) cr_assert(line.find(defer_text) != std::string::npos, "%s", line.c_str());
  cr_assert(eventually([&] { return env.tracking("DELIVER").size() == 1; }, 5000));
  const std::string delivered = env.tracking("DELIVER")[0];
  cr_assert(delivered.find("forged") == std::string::npos && delivered.find("FORGED") == std::string::npos &&
                delivered.find("queued as 1") != std::string::npos,
            "%s", delivered.c_str());
}

}  // namespace

// CVE-2011-0411 outbound: the 220 to STARTTLS and forged replies to EHLO, MAIL, RCPT, DATA
// and the dot in one write, then a session that takes no mail over TLS.
Test(protocol_attack, replies_forged_behind_the_starttls_220_are_not_believed, .timeout = 60) {
  expect_forgery_not_believed("starttls-inject", "opportunistic", "STARTTLS");
}

// A forged 250 in place of the 220 to STARTTLS, the 220 right behind it: mandatory TLS does
// not go on in plaintext, and nothing is sent before TLS is up.
Test(protocol_attack, a_forged_reply_to_starttls_under_mandatory_tls_defers, .timeout = 60) {
  expect_forgery_not_believed("forged-starttls", "mandatory", "4.7.4");
}

// The same under opportunistic TLS: the 220 read after the forged 250 is not taken as the
// reply to anything sent later.
Test(protocol_attack, a_forged_reply_to_starttls_under_opportunistic_tls_defers, .timeout = 60) {
  expect_forgery_not_believed("forged-starttls", "opportunistic", "unexpected reply 220");
}

// A forged 250 before the greeting: the session ends there, the message waits.
Test(protocol_attack, a_reply_forged_before_the_greeting_is_not_a_greeting, .timeout = 60) {
  expect_forgery_not_believed("forged-greeting", "opportunistic", "forged before the greeting");
}

namespace {

// relay.test (an external relay domain) has its MX on 127.0.0.31; every outside name a
// trick could route to has a destination of its own, so a relayed message would land
// somewhere the test looks.
const char* relay_zone =
    "mx-host=relay.test,mx.relay.test,10\nhost-record=mx.relay.test,127.0.0.31\n"
    "mx-host=other.example,mx.other.example,10\nhost-record=mx.other.example,127.0.0.40\n"
    "host-record=other.example,127.0.0.40\n"
    "mx-host=a.example,mx.a.example,10\nhost-record=mx.a.example,127.0.0.41\n"
    "host-record=other,127.0.0.42\n";
const std::vector<const char*> outside = {"127.0.0.40", "127.0.0.41", "127.0.0.42", "127.0.0.9"};

// Where a recipient may go: refused at RCPT, into accepted.test's Maildir, or to relay.test's MX.
enum class verdict : char { refused, mailbox, relay_domain };
struct trick {
  const char* rcpt;
  verdict expect;
};
const std::vector<trick> tricks = {
    {"user%other.example@accepted.test", verdict::refused},
    {"user%other.example@relay.test", verdict::relay_domain},
    {"user%other.example%accepted.test@accepted.test", verdict::refused},
    {"\"user%other.example\"@accepted.test", verdict::refused},
    {"user%accepted.test@other.example", verdict::refused},
    {"user%relay.test@other.example", verdict::refused},
    {"other.example!user@accepted.test", verdict::refused},
    {"other.example!user@relay.test", verdict::relay_domain},
    {"other!user", verdict::refused},
    {"other.example!user", verdict::refused},
    {"\"user@other.example\"@accepted.test", verdict::refused},
    {"\"user@other.example\"@relay.test", verdict::relay_domain},
    {"\"user@other.example\"", verdict::refused},
    {"user@other.example@accepted.test", verdict::refused},
    {"user@accepted.test@other.example", verdict::refused},
    {"@a.example:user@other.example", verdict::refused},
    {"@a.example,@accepted.test:user@other.example", verdict::refused},
    {"@a.example:user@accepted.test", verdict::mailbox},
    {"@other.example:user@relay.test", verdict::relay_domain},
    {"user", verdict::refused},
    {"user@[127.0.0.9]", verdict::refused},
    {"user@[IPv6:::1]", verdict::refused},
    {"user@[127.0.0.1]", verdict::refused},
    {"user%[127.0.0.9]@accepted.test", verdict::refused},
    {"user@accepted.test.", verdict::refused},
    {"user@other.example.", verdict::refused},
    {"user@accepted.test.other.example", verdict::refused},
    {"user@other.example.accepted.test", verdict::refused},
    {"user@OTHER.EXAMPLE", verdict::refused},
    {"USER@ACCEPTED.TEST", verdict::mailbox},
    {"user@Accepted.Test", verdict::mailbox},
    {"user@accepted.test", verdict::mailbox},
    {"user@relay.test", verdict::relay_domain},
};

std::size_t files_under(const std::string& root, const std::string& part) {
  std::size_t n = 0;
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(root, ec); !ec && it != decltype(it){}; it.increment(ec))
    if (it->is_regular_file() && it->path().string().find(part) != std::string::npos) ++n;
  return n;
}

}  // namespace

// An internet connector without relay rights, each trick in a session of its own (a
// refusal counts towards the session's error limit): a recipient is refused (550 relay,
// 550 unknown mailbox, 501 syntax), or taken only for an accepted domain and then delivered
// there. Nothing reaches an outside destination, nothing even asks DNS about one.
Test(protocol_attack, relay_tricks_from_a_non_relay_source_stay_inside, .timeout = 60) {
  delivery_env env(relay_zone);
  auto& relay_mx = env.sink("127.0.0.31");
  for (const char* a : outside) env.sink(a);
  env.configure("", "", R"(
[[accepted_domain]]
name = "accepted.test"
type = "authoritative"
recipients = "accepted.txt"
mailbox = "maildir"
maildir_root = "@DIR@/mail"

[[accepted_domain]]
name = "relay.test"
type = "external_relay"

[[receive_connector]]
name = "Internet"
type = "internet"
bindings = ["127.0.0.1:@PORT@"]
remote_ranges = ["127.0.0.66"]
)");
  env.daemon.write_file("accepted.txt", "user@accepted.test\n");
  std::filesystem::create_directories(env.daemon.dir() + "/mail");
  START(env.daemon);
  std::size_t to_mailbox = 0, to_relay_domain = 0;
  for (const auto& t : tricks) {
    smtp_client c(env.daemon.port(), "127.0.0.66");
    EXPECT_CODE(c.start_transaction("sender@client.test"), 250);
    const std::string r = c.cmd("RCPT TO:<"s + t.rcpt + ">");
    if (t.expect == verdict::refused) {
      cr_assert(r.starts_with("550 5.7.") || r.starts_with("550 5.1.") || r.starts_with("501 5.1.3"),
                "RCPT TO:<%s> must be refused: %s", t.rcpt, r.c_str());
    } else {
      EXPECT_CODE(r, 250);
      EXPECT_CODE(c.cmd("DATA"), 354);
      EXPECT_CODE(c.cmd("Subject: relay trick\r\n\r\n"s + t.rcpt + "\r\n."), 250);
      ++(t.expect == verdict::mailbox ? to_mailbox : to_relay_domain);
    }
    EXPECT_CODE(c.cmd("QUIT"), 221);
  }
  cr_assert(eventually([&] { return env.queued_items() == 0; }, 30'000), "%s\n%s",
            env.daemon.ctl("queue list").output.c_str(), slurp_file(env.daemon.dir() + "/log/tracking.csv").c_str());
  cr_assert(eventually([&] { return env.tracked_recipients("DELIVER") == to_mailbox + to_relay_domain; }, 5000),
            "%s", slurp_file(env.daemon.dir() + "/log/tracking.csv").c_str());
  for (auto& [address, s] : env.sinks) s->stop();
  cr_assert_eq(files_under(env.daemon.dir() + "/mail/accepted.test", "/new/"), to_mailbox);
  cr_assert_eq(count_lines(relay_mx.record_file()), to_relay_domain);
  for (const char* a : outside)
    cr_assert_eq(count_lines(env.sinks[a]->record_file()), 0u, "mail relayed to %s:\n%s", a,
                 slurp_file(env.sinks[a]->record_file()).c_str());
  std::istringstream records(slurp_file(relay_mx.record_file()));
  for (std::string line; std::getline(records, line);)
    cr_assert(line.ends_with("@relay.test"), "relay.test's MX got mail for another domain: %s", line.c_str());
  const std::string tracking = slurp_file(env.daemon.dir() + "/log/tracking.csv");
  for (const char* a : {"127.0.0.40", "127.0.0.41", "127.0.0.42", "127.0.0.9]", "::1]", ",FAIL,", ",DSN,"})
    cr_assert(tracking.find(a) == std::string::npos, "'%s' in the tracking log:\n%s", a, tracking.c_str());
  const std::string dns = env.dns.log();
  for (const char* name : {"other.example", "a.example", "] other "})
    cr_assert(dns.find(name) == std::string::npos, "sluiced looked up '%s':\n%s", name, dns.c_str());
}

// RFC 5321 4.5.1: <postmaster> without a domain is taken from anyone, and it means us: the
// postmaster of the first authoritative domain, routed there, never failed for its missing
// domain nor sent anywhere else.
Test(protocol_attack, unqualified_postmaster_stays_here, .timeout = 30) {
  sluiced_process d;
  START(d);
  smtp_client c(d.port(), "127.0.0.66");
  EXPECT_CODE(c.start_transaction("sender@example.org"), 250);
  EXPECT_CODE(c.cmd("RCPT TO:<Postmaster>"), 250);
  EXPECT_CODE(c.cmd("DATA"), 354);
  EXPECT_CODE(c.cmd("Subject: to the postmaster\r\n\r\nbody\r\n."), 250);
  EXPECT_CODE(c.cmd("QUIT"), 221);
  const std::string path = d.dir() + "/log/tracking.csv";
  cr_assert(eventually([&] { return slurp_file(path).find(",ROUTE,") != std::string::npos; }, 5000), "%s",
            slurp_file(path).c_str());
  std::this_thread::sleep_for(300ms);
  const std::string tracking = slurp_file(path);
  cr_assert(tracking.find(",ROUTE,") != std::string::npos &&
                tracking.find("\"postmaster@sluice.test\",\"local:sluice.test\"") != std::string::npos,
            "%s", tracking.c_str());
  cr_assert(tracking.find(",FAIL,") == std::string::npos, "%s", tracking.c_str());
}
