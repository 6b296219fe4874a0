// lmtp_test.cc: delivery::smtp_connection in LMTP mode against a private Dovecot (TCP and Unix socket) and scripted LMTP servers.
// Untrusted input: Dovecot's replies and the Maildir files it writes; the client's bytes, read by the scripted server.
#include <criterion/criterion.h>

#include <sys/stat.h>
#include <unistd.h>

#include <csignal>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "delivery/attempt.h"
#include "dovecot.h"
#include "peers.h"
#include "script_server.h"
#include "smtp/dot_stuff.h"

namespace {

using sluice_test::dovecot;

connection_settings lmtp_settings() {
  connection_settings s;
  s.helo = "out.sluice.test";
  s.lmtp = true;
  s.tls = tls_policy::none;
  return s;
}

// A message as the store keeps it: chunks of ~700 bytes, dot-unstuffed, CRLF line ends, with
// the lines dot-stuffing exists for (a lone dot, leading dots) and a dot line split
// across two chunks.
struct lmtp_body {
  std::string bytes;
  std::vector<std::string_view> chunks;
  explicit lmtp_body(const std::string& subject, size_t lines = 120) {
    bytes = "From: a@x.test\r\nTo: alice@mail.test\r\nSubject: " + subject + "\r\nMessage-ID: <" + subject +
            "@x.test>\r\n\r\n";
    for (size_t i = 0; i < lines; ++i) {
      if (i == 3) bytes += ".\r\n";  // a lone dot: the end of data unless stuffed
      else if (i % 29 == 0) bytes += ".a line that starts with a dot\r\n";
      else if (i % 31 == 0) bytes += "..two dots\r\n";
      else bytes += "line " + std::to_string(i) + " of " + subject + ", long enough to fill the chunks\r\n";
    }
    for (size_t at = 0; at < bytes.size(); at += 700) chunks.push_back(std::string_view(bytes).substr(at, 700));
  }
  // What Dovecot stores: the same message with LF line ends.
  std::string stored() const {
    std::string out;
    for (size_t i = 0; i < bytes.size(); ++i)
      if (!(bytes[i] == '\r' && i + 1 < bytes.size() && bytes[i + 1] == '\n')) out += bytes[i];
    return out;
  }
};


// The stored message without the trace lines Dovecot puts on top (Return-Path, and
// Delivered-To where it adds one); asserts the Return-Path names our sender.
std::string without_trace(const std::string& stored) {
  cr_assert(stored.rfind("Return-Path: <a@x.test>\n", 0) == 0, "no Return-Path on top: %.80s", stored.c_str());
  std::string rest = stored.substr(stored.find('\n') + 1);
  if (rest.rfind("Delivered-To: ", 0) == 0) rest.erase(0, rest.find('\n') + 1);
  return rest;
}

void assert_delivered(const dovecot& d, const std::string& user, const std::vector<const lmtp_body*>& bodies) {
  std::vector<std::string> got = d.messages(user);
  cr_assert_eq(got.size(), bodies.size(), "%s has %zu messages, want %zu; Dovecot's log:\n%s", user.c_str(),
               got.size(), bodies.size(), d.log().c_str());
  for (size_t i = 0; i < got.size(); ++i) {
    const std::string rest = without_trace(got[i]), want = bodies[i]->stored();
    cr_assert(rest == want, "%s message %zu differs from what was sent (%zu bytes stored, %zu sent):\n%s", user.c_str(),
              i, rest.size(), want.size(), rest.c_str());
  }
}

// Dovecot's replies after the dot name their recipient ("250 2.0.0 <alice@mail.test> id Saved"):
// that is how a test sees each recipient got its own reply, not a neighbour's.
void assert_saved_for(const sluice::smtp::reply& r, const std::string& rcpt) {
  cr_assert_eq(r.code, 250, "%s: %d %s", rcpt.c_str(), r.code, r.text.c_str());
  cr_assert_str_eq(r.enhanced.c_str(), "2.0.0");
  cr_assert(r.text.find("<" + rcpt + ">") != std::string::npos && r.text.find("Saved") != std::string::npos,
            "the reply for %s is %s", rcpt.c_str(), r.text.c_str());
}

void assert_unknown(const sluice::smtp::reply& r, const std::string& rcpt) {
  cr_assert_eq(r.code, 550, "%s: %d %s", rcpt.c_str(), r.code, r.text.c_str());
  cr_assert_str_eq(r.enhanced.c_str(), "5.1.1");
  cr_assert(r.text.find(rcpt) != std::string::npos, "the refusal for %s is %s", rcpt.c_str(), r.text.c_str());
}

// The LMTP session ids of Dovecot's "saved mail" log lines, one per delivery
// ("lmtp(alice@mail.test)<pid><SESSION:T2>: Info: ...: saved mail to INBOX"), once `n` are logged
// (its log process writes them a moment after the replies).
std::vector<std::string> saving_sessions(const dovecot& d, size_t n) {
  std::vector<std::string> ids;
  sluice::testing::eventually([&] {
    ids.clear();
    const std::string log = d.log();
    for (size_t at = log.find("saved mail to INBOX"); at != std::string::npos;
         at = log.find("saved mail to INBOX", at + 1)) {
      const size_t line = log.rfind('\n', at) == std::string::npos ? 0 : log.rfind('\n', at) + 1;
      const size_t open = log.find("><", line);
      if (open == std::string::npos || open > at) continue;
      const size_t end = log.find_first_of(":>", open + 2);
      ids.push_back(log.substr(open + 2, end - open - 2));
    }
    return ids.size() >= n;
  }, 2000);
  return ids;
}

// Starts `conn` towards Dovecot (TCP or its Unix socket), sends `msgs` one per on_ready,
// QUIT at the next, and runs the loop until on_closed.
void run_lmtp(sluice::net::loop& l, smtp_connection& conn, recorder& rec, const dovecot& d, bool over_unix,
              std::vector<const outbound_message*> msgs) {
  rec.when_ready = [&rec, msgs](smtp_connection& c) {
    size_t turn = size_t(rec.ready) - 1;
    if (turn < msgs.size()) c.send(*msgs[turn]);
    else if (turn == msgs.size()) c.quit();
  };
  sluice::net::endpoint at;
  cr_assert(sluice::net::endpoint::parse("127.0.0.1:" + std::to_string(d.port()), at));
  if (over_unix) conn.start_unix(d.lmtp_socket(), "dovecot");
  else conn.start(at, "dovecot");
  delivery_test::run_until_closed(l, rec);
}

// A private Dovecot with `users`, and one connection to it whose callbacks `rec` records.
struct against_dovecot {
  dovecot d;
  sluice::net::loop l;
  recorder rec;
  std::optional<smtp_connection> conn;
  explicit against_dovecot(const std::vector<std::string>& users) : d(users) {
    cr_assert(d.ok(), "%s", d.error().c_str());
  }
  // Sends `msgs` over TCP or the Unix socket, then QUIT; asserts the session ended with it.
  void run(std::vector<const outbound_message*> msgs, bool over_unix, connection_settings s = lmtp_settings()) {
    conn.emplace(l, s, rec);
    run_lmtp(l, *conn, rec, d, over_unix, std::move(msgs));
    cr_assert(rec.failure.why == connection_end::quit, "%s\n%s", failure_text(rec).c_str(), d.log().c_str());
  }
};

std::string stuffed(const lmtp_body& b) {
  std::string out;
  sluice::smtp::dot_stuff(b.bytes, out);
  return out;
}

// A scripted server's LHLO reply: PIPELINING and `more` keywords.
bool lhlo(const std::string& line, std::string& out, const std::string& more = "") {
  if (line.rfind("LHLO ", 0) != 0) return false;
  out = "250-mx.test\r\n" + more + "250 PIPELINING\r\n";
  return true;
}

// One session against a scripted LMTP server (set up through `srv` before run()): one
// message of a few lines to `rcpts`, the outcome in `rec`. The message goes at the first
// on_ready and nothing from later ones: a QUIT pipelined behind the dot would be answered
// by the scripted server in the place of a missing reply, so QUIT follows the message's
// answer, or never (`quit` false: the session ends by a timeout).
struct scripted {
  sluice::net::loop l;
  script_server srv{l};
  recorder rec;
  lmtp_body body;
  outbound_message m;
  connection_settings settings = lmtp_settings();
  explicit scripted(const std::string& subject) : body(subject, 5) {}
  void run(std::vector<std::string> rcpts, bool quit = true) {
    const sluice::net::endpoint at = srv.listen();
    m = message(body, std::move(rcpts));
    smtp_connection conn(l, settings, rec);
    rec.when_ready = [this](smtp_connection& c) {
      if (rec.ready == 1) c.send(m);
    };
    if (quit) rec.when_done = [](smtp_connection& c) { c.quit(); };
    conn.start(at, "lmtp.y.test");
    delivery_test::run_until_closed(l, rec);
  }
};

// Three recipients, the middle one unknown to Dovecot: its RCPT refusal, and each accepted
// recipient's own reply after the dot; both mailboxes hold the message byte for byte.
void three_recipients_one_unknown(bool over_unix) {
  against_dovecot t({"alice", "bob"});
  const dovecot& d = t.d;
  lmtp_body body("three");
  outbound_message m = message(body, {"alice@mail.test", "nobody@mail.test", "bob@mail.test"});
  t.run({&m}, over_unix);
  const smtp_connection& conn = *t.conn;
  cr_assert_eq(t.rec.done.size(), 1u);
  const auto& r = t.rec.done[0];
  cr_assert_eq(r.size(), 3u);
  assert_saved_for(r[0], "alice@mail.test");
  assert_unknown(r[1], "nobody@mail.test");
  assert_saved_for(r[2], "bob@mail.test");
  assert_delivered(d, "alice", {&body});
  assert_delivered(d, "bob", {&body});
  cr_assert_eq(conn.body_bytes_borrowed(), stuffed(body).size(), "the body went out from the chunks, stuffed");
  cr_assert_eq(conn.stream_stats().copied, 0u, "no body byte was copied");
  cr_assert(conn.caps().pipelining, "Dovecot offers PIPELINING");
  const std::string mta = conn.remote_mta();
  const std::string want = over_unix ? "unix:" + d.lmtp_socket() : "dovecot[127.0.0.1]:" + std::to_string(d.port());
  cr_assert_str_eq(mta.c_str(), want.c_str());
  cr_assert(conn.tls_summary().empty());
}

}  // namespace

Test(lmtp, tcp_per_recipient_replies_and_maildir_bytes) { three_recipients_one_unknown(false); }

Test(lmtp, unix_socket_per_recipient_replies_and_maildir_bytes) { three_recipients_one_unknown(true); }

// Lock-step (no pipelining): the refused recipient comes first, so its RCPT reply and the
// replies after the dot must each land on the right index.
Test(lmtp, refused_at_rcpt_while_others_accepted_lockstep) {
  against_dovecot t({"alice", "bob"});
  const dovecot& d = t.d;
  const recorder& rec = t.rec;
  lmtp_body body("lockstep");
  outbound_message m = message(body, {"ghost@mail.test", "bob@mail.test", "alice@mail.test"});
  connection_settings s = lmtp_settings();
  s.pipelining = false;
  t.run({&m}, true, s);
  cr_assert_eq(rec.done.size(), 1u);
  assert_unknown(rec.done[0][0], "ghost@mail.test");
  assert_saved_for(rec.done[0][1], "bob@mail.test");
  assert_saved_for(rec.done[0][2], "alice@mail.test");
  assert_delivered(d, "alice", {&body});
  assert_delivered(d, "bob", {&body});
}

// A mailbox Dovecot cannot write: that recipient's own reply after the dot is a 4xx while
// the recipients around it are delivered, and each reply names its recipient.
Test(lmtp, unwritable_mailbox_gets_its_own_reply_after_the_dot) {
  against_dovecot t({"alice", "carol", "bob"});
  const dovecot& d = t.d;
  const recorder& rec = t.rec;
  // carol's home belongs to root and is read-only: the mail uid cannot create her Maildir
  // (run as another user, the mode alone keeps its owner out).
  const std::string carol_home = d.dir() + "/home/carol";
  cr_assert_eq(::chown(carol_home.c_str(), 0, 0) == 0 || ::geteuid() != 0, true);
  cr_assert_eq(::chmod(carol_home.c_str(), 0555), 0);
  lmtp_body body("unwritable");
  outbound_message m = message(body, {"alice@mail.test", "carol@mail.test", "bob@mail.test"});
  t.run({&m}, false);
  cr_assert_eq(rec.done.size(), 1u);
  assert_saved_for(rec.done[0][0], "alice@mail.test");
  const auto& carol = rec.done[0][1];
  cr_assert(carol.code >= 400 && carol.code < 500 && carol.text.find("<carol@mail.test>") != std::string::npos,
            "%d %s %s\n%s", carol.code, carol.enhanced.c_str(), carol.text.c_str(), d.log().c_str());
  assert_saved_for(rec.done[0][2], "bob@mail.test");
  assert_delivered(d, "alice", {&body});
  assert_delivered(d, "bob", {&body});
  cr_assert(d.messages("carol").empty());
}

// One connection: a message every recipient of which is refused (RSET follows), then two
// delivered ones, the last pipelined behind the previous dot.
Test(lmtp, messages_on_one_connection_with_rset) {
  against_dovecot t({"alice", "bob"});
  const dovecot& d = t.d;
  const recorder& rec = t.rec;
  lmtp_body refused("refused"), second("second"), third("third");
  outbound_message m1 = message(refused, {"ghost@mail.test", "phantom@mail.test"});
  outbound_message m2 = message(second, {"alice@mail.test"});
  outbound_message m3 = message(third, {"bob@mail.test", "alice@mail.test"});
  t.run({&m1, &m2, &m3}, false);
  cr_assert_eq(rec.done.size(), 3u);
  assert_unknown(rec.done[0][0], "ghost@mail.test");
  assert_unknown(rec.done[0][1], "phantom@mail.test");
  assert_saved_for(rec.done[1][0], "alice@mail.test");
  assert_saved_for(rec.done[2][0], "bob@mail.test");
  assert_saved_for(rec.done[2][1], "alice@mail.test");
  assert_delivered(d, "alice", {&second, &third});
  assert_delivered(d, "bob", {&third});
  const std::vector<std::string> ids = saving_sessions(d, 3);
  cr_assert(ids.size() == 3u && ids[0] == ids[1] && ids[1] == ids[2], "one connection for all three:\n%s",
            d.log().c_str());
  cr_assert_eq(t.conn->messages_sent(), 3u);
}

namespace {

// Dovecot goes away with a message in flight: every recipient of that message is deferred,
// the message delivered before keeps its 250s, and nothing more is stored. Stopped, Dovecot
// says "421 4.3.2 Shutting down" first and that is the reply; killed, the connection just ends and
// the reply is ours, 451 4.4.2.
void gone_mid_session(bool crash) {
  ::signal(SIGPIPE, SIG_IGN);  // as sluiced does: a write to the dead peer is an error, not the end
  dovecot d({"alice", "bob"});
  cr_assert(d.ok(), "%s", d.error().c_str());
  sluice::net::loop l;
  lmtp_body first("first"), second("second");
  outbound_message m1 = message(first, {"alice@mail.test", "bob@mail.test"});
  outbound_message m2 = message(second, {"bob@mail.test", "alice@mail.test"});
  recorder rec;
  smtp_connection conn(l, lmtp_settings(), rec);
  bool sent_second = false;
  // The second message goes out once the first is answered, and Dovecot goes right
  // behind it: its commands are on the wire, its replies never come.
  auto second_then_stop = [&](smtp_connection& c) {
    if (sent_second || rec.done.size() != 1 || !c.ready()) return;
    sent_second = true;
    c.send(m2);
    crash ? d.kill() : d.stop();
  };
  rec.when_ready = [&](smtp_connection& c) {
    if (rec.ready == 1) c.send(m1);
    else second_then_stop(c);
  };
  rec.when_done = second_then_stop;
  conn.start_unix(d.lmtp_socket(), "dovecot");
  delivery_test::run_until_closed(l, rec);
  cr_assert(sent_second);
  cr_assert(rec.failure.why == (crash ? connection_end::dropped : connection_end::service_closing), "%s",
            failure_text(rec).c_str());
  cr_assert_eq(rec.done.size(), 2u);
  assert_saved_for(rec.done[0][0], "alice@mail.test");
  assert_saved_for(rec.done[0][1], "bob@mail.test");
  cr_assert_eq(rec.done[1].size(), 2u);
  for (const auto& r : rec.done[1]) {
    cr_assert_eq(r.code, crash ? 451 : 421, "%d %s (%s)", r.code, r.text.c_str(), failure_text(rec).c_str());
    cr_assert_str_eq(r.enhanced.c_str(), crash ? "4.4.2" : "4.3.2");
    cr_assert(sluice::delivery::outcome_of(r) == sluice::delivery::recipient_outcome::deferred);
  }
  assert_delivered(d, "alice", {&first});
  assert_delivered(d, "bob", {&first});
}

}  // namespace

Test(lmtp, dovecot_stopped_mid_session_defers_all_in_flight) { gone_mid_session(false); }

Test(lmtp, dovecot_killed_mid_session_451_for_all_in_flight) { gone_mid_session(true); }

// The replies after the dot are matched to the accepted recipients in order, skipping the
// refused one: a scripted server gives each a different answer.
Test(lmtp, scripted_replies_after_the_dot_go_to_their_recipients) {
  scripted t("scripted");
  t.srv.final_reply = "250 2.0.0 first saved\r\n452 4.2.2 second is over quota\r\n";
  t.srv.reply = [](script_server::session&, const std::string& line, std::string& out) {
    if (lhlo(line, out, "250-ENHANCEDSTATUSCODES\r\n")) return true;
    if (line == "RCPT TO:<no@y.test>") return out = "550 5.1.1 no such user\r\n", true;
    return false;
  };
  t.run({"b@y.test", "no@y.test", "c@y.test"});
  cr_assert(t.rec.failure.why == connection_end::quit, "%s", failure_text(t.rec).c_str());
  cr_assert_eq(t.rec.done.size(), 1u);
  const auto& r = t.rec.done[0];
  cr_assert(r[0].code == 250 && r[0].text == "first saved", "%d %s", r[0].code, r[0].text.c_str());
  cr_assert_eq(r[1].code, 550);
  cr_assert(r[2].code == 452 && r[2].enhanced == "4.2.2", "%d %s %s", r[2].code, r[2].enhanced.c_str(),
            r[2].text.c_str());
  cr_assert(t.srv.data.size() == 1u && t.srv.data[0] == stuffed(t.body), "the content was sent once, stuffed");
}

// LMTP never secures or authenticates, whatever the server offers and the policy says.
Test(lmtp, lhlo_and_never_starttls_or_auth) {
  scripted t("plain");
  t.srv.final_reply = "250 2.0.0 ok\r\n";
  t.srv.reply = [](script_server::session&, const std::string& line, std::string& out) {
    return lhlo(line, out, "250-STARTTLS\r\n250-AUTH PLAIN LOGIN\r\n");
  };
  t.settings.tls = tls_policy::mandatory;
  t.settings.auth_user = "user";
  t.settings.auth_password = "secret";
  t.run({"b@y.test"});
  cr_assert(t.rec.failure.why == connection_end::quit, "%s", failure_text(t.rec).c_str());
  cr_assert(t.rec.done.size() == 1u && t.rec.done[0][0].code == 250);
  const auto& cmds = t.srv.commands;
  cr_assert(!cmds.empty() && cmds[0] == "LHLO out.sluice.test", "%s", cmds.empty() ? "" : cmds[0].c_str());
  cr_assert_eq(t.srv.count("EHLO"), 0u);
  cr_assert_eq(t.srv.count("STARTTLS"), 0u);
  cr_assert_eq(t.srv.count("AUTH"), 0u);
}

// A connection that ends between two replies after the dot: the recipient answered keeps its
// 250 (it is in the mailbox), the other is deferred.
Test(lmtp, end_between_replies_keeps_the_replies_that_came) {
  scripted t("partial");
  t.srv.final_reply = "250 2.0.0 <b@y.test> saved\r\n";  // and nothing for c@y.test
  t.srv.reply = [](script_server::session&, const std::string& line, std::string& out) { return lhlo(line, out); };
  t.settings.timeouts.final_dot_ms = 200;
  t.run({"b@y.test", "c@y.test"}, false);
  const auto& rec = t.rec;
  cr_assert(rec.failure.why == connection_end::timeout, "%s", failure_text(rec).c_str());
  cr_assert(rec.failure.detail.find("end of data") != std::string::npos, "%s", rec.failure.detail.c_str());
  cr_assert_eq(rec.done.size(), 1u);
  cr_assert_eq(rec.done[0][0].code, 250, "%d %s", rec.done[0][0].code, rec.done[0][0].text.c_str());
  cr_assert_eq(rec.done[0][1].code, 451);
  cr_assert_str_eq(rec.done[0][1].enhanced.c_str(), "4.4.2");
}

// RFC 2033: with no recipient accepted a server should refuse DATA; one that sends 354
// anyway gets the lone dot and owes no reply to it, so the session goes on at once.
Test(lmtp, no_recipient_accepted_and_354_waits_for_no_reply) {
  scripted t("nobody");
  t.srv.final_reply = "";  // one reply per accepted recipient: none
  t.srv.reply = [](script_server::session& ses, const std::string& line, std::string& out) {
    if (lhlo(line, out)) return true;
    if (line.rfind("RCPT", 0) == 0) return out = "550 5.1.1 no such user\r\n", true;
    if (line == "DATA") {
      ses.in_data = true;
      return out = "354 go ahead\r\n", true;
    }
    return false;
  };
  t.settings.timeouts.final_dot_ms = 3000;
  t.run({"x@y.test", "z@y.test"});
  cr_assert(t.rec.failure.why == connection_end::quit, "%s", failure_text(t.rec).c_str());
  cr_assert(t.rec.done.size() == 1u && t.rec.done[0][0].code == 550 && t.rec.done[0][1].code == 550);
  cr_assert(t.srv.data.size() == 1u && t.srv.data[0] == ".\r\n", "only the lone dot was sent");
  cr_assert_eq(t.srv.count("QUIT"), 1u);
}

Test(lmtp, unix_socket_missing_or_too_long_is_connect_failed) {
  sluice::net::loop l;
  const std::string missing = "/tmp/sluice-no-such-dir-for-lmtp/lmtp", too_long = "/tmp/" + std::string(200, 'x');
  for (const std::string& path : {missing, too_long}) {
    recorder rec;
    smtp_connection conn(l, lmtp_settings(), rec);
    conn.start_unix(path, "dovecot");
    cr_assert_not(rec.closed, "reported on a later turn, not inside start_unix");
    delivery_test::run_until_closed(l, rec);
    cr_assert(rec.failure.why == connection_end::connect_failed, "%s", failure_text(rec).c_str());
    cr_assert(rec.failure.detail.find("unix:" + path) != std::string::npos, "%s", rec.failure.detail.c_str());
    cr_assert_not(rec.failure.was_ready);
  }
}
