// local_delivery_test.cc: sluiced delivering its accepted domains into mailboxes: Maildir on disk, LMTP to a real Dovecot.
// Untrusted input: none.
#include <criterion/criterion.h>

#include <filesystem>
#include <string>
#include <vector>

#include "delivery_env.h"
#include "dovecot.h"

using namespace sluice::testing;

namespace {

// What the tests send: a dot at a line start (stuffed on the wire), 8-bit text, a long line.
const std::string content =
    "From: Sender <sender@back.test>\r\nTo: alice@home.test\r\nSubject: local delivery\r\n"
    "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
    "Line one\r\n.a line that starts with a dot\r\n..two dots\r\ncaf\xc3\xa9\r\n" +
    std::string(900, 'x') + "\r\nlast line\r\n";

std::string send_message(uint16_t port, const std::string& from, const std::vector<std::string>& rcpts,
                         std::vector<std::string>* rcpt_replies = nullptr) {
  smtp_client c(port);
  c.reply();
  c.cmd("EHLO client.test");
  std::string r = c.cmd("MAIL FROM:<" + from + "> BODY=8BITMIME");
  if (code_of(r) != 250) return r;
  for (const auto& rcpt : rcpts) {
    r = c.cmd("RCPT TO:<" + rcpt + ">");
    if (rcpt_replies) rcpt_replies->push_back(r);
  }
  if (code_of(r = c.cmd("DATA")) != 354) return r;
  std::string stuffed;
  std::size_t at = 0;
  while (at < content.size()) {
    const std::size_t end = content.find("\r\n", at) + 2;
    if (content[at] == '.') stuffed += '.';
    stuffed += content.substr(at, end - at);
    at = end;
  }
  c.send_raw(stuffed + ".\r\n");
  r = c.reply();
  c.cmd("QUIT");
  return r;
}

// Files in a Maildir's new/.
std::vector<std::string> files_in(const std::string& maildir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(maildir + "/new", ec)) out.push_back(e.path().string());
  return out;
}

std::string maildir_domain(const std::string& name) {
  return "[[accepted_domain]]\nname = \"" + name +
         "\"\ntype = \"authoritative\"\nmailbox = \"maildir\"\nmaildir_root = \"@DIR@/mail\"\n\n";
}

}  // namespace

Test(local_delivery, maildir_gets_the_message_byte_for_byte_with_return_path_and_delivered_to, .timeout = 60) {
  delivery_env env("");
  env.configure("", "", maildir_domain("home.test"));
  run("mkdir -p " + env.daemon.dir() + "/mail");
  cr_assert(env.start(), "%s", env.daemon.log().c_str());
  const std::string reply = send_message(env.daemon.port(), "sender@back.test", {"alice@home.test", "Bob@home.test"});
  cr_assert_eq(code_of(reply), 250, "%s", reply.c_str());
  const std::string root = env.daemon.dir() + "/mail/home.test/";
  cr_assert(eventually([&] { return files_in(root + "alice/Maildir").size() == 1 && files_in(root + "Bob/Maildir").size() == 1; },
                       10'000),
            "%s\n%s", env.daemon.log().c_str(), slurp_file(env.daemon.dir() + "/log/tracking.csv").c_str());
  for (const auto& [box, rcpt] : {std::pair{root + "alice/Maildir", "alice@home.test"}, {root + "Bob/Maildir", "Bob@home.test"}}) {
    const std::string file = slurp_file(files_in(box).front());
    const std::string head = "Return-Path: <sender@back.test>\r\nDelivered-To: " + std::string(rcpt) + "\r\n";
    cr_assert_eq(file.compare(0, head.size(), head), 0, "%s", file.substr(0, 200).c_str());
    // Between them and the content: only the Received: line sluice wrote at receipt.
    cr_assert_eq(file.compare(head.size(), 10, "Received: "), 0, "%s", file.substr(0, 300).c_str());
    cr_assert(file.size() > content.size() && file.compare(file.size() - content.size(), content.size(), content) == 0,
              "the content is intact:\n%s", file.c_str());
    cr_assert(files_in(box.substr(0, box.size() - 4) + "tmp").empty(), "nothing left in tmp/");
  }
  cr_assert(eventually([&] { return env.tracked_recipients("DELIVER") == 2; }, 5000));
  for (const auto& line : env.tracking("DELIVER")) cr_assert(line.find("maildir:") != std::string::npos, "%s", line.c_str());
  cr_assert(eventually([&] { return env.queued_items() == 0; }, 5000));
}

Test(local_delivery, a_hostile_local_part_stays_inside_the_maildir_root, .timeout = 60) {
  delivery_env env("");
  env.configure("", "", maildir_domain("home.test"));
  run("mkdir -p " + env.daemon.dir() + "/mail");
  cr_assert(env.start(), "%s", env.daemon.log().c_str());
  const std::string reply = send_message(env.daemon.port(), "sender@back.test", {"\"../../../escaped\"@home.test"});
  cr_assert_eq(code_of(reply), 250, "%s", reply.c_str());
  cr_assert(eventually([&] { return env.tracked_recipients("DELIVER") == 1; }, 10'000), "%s",
            slurp_file(env.daemon.dir() + "/log/tracking.csv").c_str());
  // Delivered somewhere below the root, and nothing named "escaped" anywhere above it.
  const auto inside = run("find " + env.daemon.dir() + "/mail -path '*/new/*' -type f | wc -l");
  cr_assert_eq(inside.output, "1\n", "%s", run("find " + env.daemon.dir()).output.c_str());
  const auto outside = run("find " + env.daemon.dir() + " -name '*escaped*' -not -path '" + env.daemon.dir() + "/mail/*'");
  cr_assert_eq(outside.output, "", "escaped the root: %s", outside.output.c_str());
}

Test(local_delivery, lmtp_to_dovecot_recipient_by_recipient_over_tcp_and_a_unix_socket, .timeout = 90) {
  sluice_test::dovecot dovecot({"alice", "bob"});
  cr_assert(dovecot.ok(), "%s", dovecot.error().c_str());
  delivery_env env("");
  const std::string lmtp_domains =
      "[[accepted_domain]]\nname = \"home.test\"\ntype = \"authoritative\"\nmailbox = \"lmtp\"\nlmtp = \"127.0.0.1:" +
      std::to_string(dovecot.port()) + "\"\n\n[[accepted_domain]]\nname = \"sock.test\"\ntype = \"authoritative\"\n"
      "mailbox = \"lmtp\"\nlmtp = \"" + dovecot.lmtp_socket() + "\"\n\n";
  // The sender's domain is delivered into a Maildir, where its failure report lands.
  env.configure("", "", lmtp_domains + maildir_domain("back.test"));
  run("mkdir -p " + env.daemon.dir() + "/mail");
  cr_assert(env.start(), "%s", env.daemon.log().c_str());
  std::string reply = send_message(env.daemon.port(), "sender@back.test",
                                   {"alice@home.test", "nobody@home.test", "bob@home.test"});
  cr_assert_eq(code_of(reply), 250, "%s", reply.c_str());
  reply = send_message(env.daemon.port(), "sender@back.test", {"bob@sock.test"});
  cr_assert_eq(code_of(reply), 250, "%s", reply.c_str());
  cr_assert(eventually([&] { return dovecot.messages("alice").size() == 1 && dovecot.messages("bob").size() == 2; }, 20'000),
            "%s\n%s\n%s", env.daemon.log().c_str(), slurp_file(env.daemon.dir() + "/log/tracking.csv").c_str(),
            dovecot.log().c_str());
  // Dovecot keeps its Maildir files with LF line ends.
  std::string lf;
  for (char ch : content)
    if (ch != '\r') lf += ch;
  for (const auto& m : dovecot.messages("alice"))
    cr_assert(m.size() >= lf.size() && m.compare(m.size() - lf.size(), lf.size(), lf) == 0, "the content is intact:\n%s",
              m.c_str());
  // nobody@ is unknown to Dovecot: failed for that one recipient alone, and reported.
  cr_assert(eventually([&] { return env.tracked_recipients("FAIL") == 1; }, 10'000), "%s",
            slurp_file(env.daemon.dir() + "/log/tracking.csv").c_str());
  const auto fails = env.tracking("FAIL");
  cr_assert(fails.front().find("nobody@home.test") != std::string::npos && fails.front().find("550") != std::string::npos,
            "%s", fails.front().c_str());
  cr_assert_eq(env.tracked_recipients("DELIVER"), 3u);
  bool via_socket = false;
  for (const auto& line : env.tracking("DELIVER")) via_socket = via_socket || line.find("unix:") != std::string::npos;
  cr_assert(via_socket, "bob@sock.test went over the Unix socket");
  const std::string reports = env.daemon.dir() + "/mail/back.test/sender/Maildir";
  cr_assert(eventually([&] { return files_in(reports).size() == 1; }, 10'000), "%s", env.daemon.log().c_str());
  const std::string dsn = slurp_file(files_in(reports).front());
  cr_assert(dsn.find("nobody@home.test") != std::string::npos && dsn.find("Action: failed") != std::string::npos,
            "%s", dsn.c_str());
  cr_assert(eventually([&] { return env.queued_items() == 0; }, 10'000), "%s", env.daemon.ctl("queue list").output.c_str());
}
