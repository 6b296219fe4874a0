// smtp_connection_test.cc: delivery::smtp_connection against a scripted SMTP server on loopback: results, timeouts, reuse.
// Untrusted input: the client's bytes, read by the test's scripted server.
#include <criterion/criterion.h>

#include <string>
#include <string_view>
#include <vector>

#include "script_server.h"
#include "smtp/dot_stuff.h"


namespace {

connection_settings plain_settings() {
  connection_settings s;
  s.helo = "out.sluice.test";
  s.tls = tls_policy::none;
  return s;
}

// The body as the store keeps it: ~2 KB chunks, dot-unstuffed, with the awkward cases
// (a dot line split across chunks, a CRLF split across chunks, a bare LF).
struct stored_body {
  std::string bytes;
  std::vector<std::string_view> chunks;
  explicit stored_body(size_t lines = 300) {
    bytes = "Subject: zero copy\r\nFrom: a@x.test\r\n\r\n";
    for (size_t i = 0; i < lines; ++i) {
      if (i % 41 == 0) bytes += ".a line that starts with a dot\r\n";
      else if (i % 53 == 0) bytes += "a bare LF line\n";
      else bytes += "line " + std::to_string(i) + " of an ordinary message body, long enough\r\n";
    }
    for (size_t at = 0; at < bytes.size(); at += 2000)
      chunks.push_back(std::string_view(bytes).substr(at, 2000));
  }
  std::string stuffed() const {
    std::string out;
    sluice::smtp::dot_stuff(bytes, out);
    return out;
  }
};


}  // namespace

Test(delivery_connection, delivered_zero_copy_and_byte_identical) {
  sluice::net::loop l;
  script_server srv(l);
  auto at = srv.listen();
  stored_body body;
  outbound_message m = message(body, {"b@y.test", "c@y.test"});
  recorder rec;
  smtp_connection conn(l, plain_settings(), rec);
  run_session(l, conn, rec, at, {&m}, true, "mx.y.test");
  cr_assert(rec.failure.why == connection_end::quit, "%s", failure_text(rec).c_str());
  cr_assert(rec.failure.was_ready);
  cr_assert_eq(rec.done.size(), 1u);
  cr_assert_eq(rec.done[0].size(), 2u);
  for (const auto& r : rec.done[0]) {
    cr_assert_eq(r.code, 250);
    cr_assert_str_eq(r.enhanced.c_str(), "2.6.0");
  }
  cr_assert_eq(srv.data.size(), 1u);
  const std::string want = body.stuffed();
  cr_assert(srv.data[0] == want, "received %zu bytes, dot_stuff gives %zu", srv.data[0].size(), want.size());
  cr_assert_eq(conn.body_bytes_borrowed(), want.size(), "every DATA byte went out from the chunks");
  cr_assert_eq(conn.stream_stats().copied, 0u, "nothing was copied on the way out");
  cr_assert_eq(conn.messages_sent(), 1u);
  const std::string mta = conn.remote_mta(), want_mta = "mx.y.test[127.0.0.1]:" + std::to_string(at.port());
  cr_assert_str_eq(mta.c_str(), want_mta.c_str());
  cr_assert(conn.tls_summary().empty());
  cr_assert(conn.caps().pipelining && conn.caps().dsn);
  cr_assert_eq(srv.count("MAIL FROM:<a@x.test> SIZE=" + std::to_string(body.bytes.size())), 1u);
  cr_assert_eq(srv.count("QUIT"), 1u);
}

Test(delivery_connection, per_recipient_results_in_one_transaction) {
  sluice::net::loop l;
  script_server srv(l);
  srv.reply = [](script_server::session&, const std::string& line, std::string& out) {
    if (line == "RCPT TO:<no@y.test>") return out = "550 5.1.1 no such user\r\n", true;
    if (line == "RCPT TO:<plain@y.test>") return out = "551 user not local\r\n", true;  // no enhanced code
    return false;
  };
  auto at = srv.listen();
  stored_body body(20);
  outbound_message m = message(body, {"b@y.test", "no@y.test", "plain@y.test", "d@y.test"});
  m.dsn_mail_params = "RET=HDRS ENVID=e1";
  m.dsn_rcpt_params = {"NOTIFY=FAILURE ORCPT=rfc822;b@y.test"};
  recorder rec;
  smtp_connection conn(l, plain_settings(), rec);
  run_session(l, conn, rec, at, {&m}, true, "mx.y.test");
  cr_assert_eq(rec.done.size(), 1u);
  const auto& r = rec.done[0];
  cr_assert_eq(r[0].code, 250);
  cr_assert_eq(r[1].code, 550);
  cr_assert_str_eq(r[1].enhanced.c_str(), "5.1.1");
  cr_assert_eq(r[2].code, 551);
  cr_assert_str_eq(r[2].enhanced.c_str(), "5.0.0", "RFC 3463 default for the class");
  cr_assert_eq(r[3].code, 250);
  cr_assert_eq(srv.count("RCPT TO:<b@y.test> NOTIFY=FAILURE ORCPT=rfc822;b@y.test"), 1u, "DSN offered: sent");
  cr_assert_eq(srv.count("MAIL FROM:<a@x.test> SIZE="), 1u);
  bool envid = false;
  for (const auto& c : srv.commands) envid |= c.find(" RET=HDRS ENVID=e1") != std::string::npos;
  cr_assert(envid);
}

Test(delivery_connection, refusal_after_data_applies_to_accepted_recipients) {
  sluice::net::loop l;
  script_server srv(l);
  srv.final_reply = "452 4.3.1 out of space\r\n";
  srv.reply = [](script_server::session&, const std::string& line, std::string& out) {
    if (line == "RCPT TO:<no@y.test>") return out = "550 5.1.1 no such user\r\n", true;
    return false;
  };
  auto at = srv.listen();
  stored_body body(10);
  outbound_message m = message(body, {"b@y.test", "no@y.test"});
  recorder rec;
  smtp_connection conn(l, plain_settings(), rec);
  run_session(l, conn, rec, at, {&m}, true, "mx");
  cr_assert_eq(rec.done.size(), 1u);
  cr_assert_eq(rec.done[0][0].code, 452);
  cr_assert_str_eq(rec.done[0][0].enhanced.c_str(), "4.3.1");
  cr_assert_eq(rec.done[0][1].code, 550, "the refused recipient keeps its own reply");
  cr_assert(rec.failure.why == connection_end::quit, "%s", failure_text(rec).c_str());
}

Test(delivery_connection, refused_mail_applies_to_all_then_rset_and_second_message) {
  sluice::net::loop l;
  script_server srv(l);
  int mails = 0;
  srv.reply = [&](script_server::session&, const std::string& line, std::string& out) {
    if (line.rfind("MAIL", 0) == 0 && ++mails == 2) return out = "451 4.3.0 sender deferred\r\n", true;
    if (line == "RCPT TO:<no@y.test>") return out = "550 5.1.1 no such user\r\n", true;
    return false;
  };
  auto at = srv.listen();
  stored_body body(10);
  outbound_message first = message(body, {"no@y.test"});  // every recipient refused: RSET follows
  outbound_message second = message(body, {"b@y.test", "c@y.test"});  // MAIL refused
  outbound_message third = message(body, {"b@y.test"});
  recorder rec;
  smtp_connection conn(l, plain_settings(), rec);
  run_session(l, conn, rec, at, {&first, &second, &third}, true, "mx");
  cr_assert(rec.failure.why == connection_end::quit, "%s", failure_text(rec).c_str());
  cr_assert_eq(rec.done.size(), 3u);
  cr_assert_eq(rec.done[0][0].code, 550);
  cr_assert_eq(rec.done[1][0].code, 451);
  cr_assert_eq(rec.done[1][1].code, 451, "a refused MAIL speaks for every recipient");
  cr_assert_str_eq(rec.done[1][1].enhanced.c_str(), "4.3.0");
  cr_assert_eq(rec.done[2][0].code, 250);
  cr_assert_eq(srv.connections, 1, "one connection for all three");
  cr_assert_eq(conn.messages_sent(), 3u);
  // The failed first transaction was reset before the next MAIL.
  size_t rset = 0, second_mail = 0, seen_mail = 0;
  for (size_t i = 0; i < srv.commands.size(); ++i) {
    if (srv.commands[i] == "RSET" && rset == 0) rset = i;
    if (srv.commands[i].rfind("MAIL", 0) == 0 && ++seen_mail == 2) second_mail = i;
  }
  cr_assert(rset > 0 && rset < second_mail, "RSET between the first and second MAIL");
  cr_assert_eq(srv.data.size(), 1u, "only the third message was transmitted");
}

Test(delivery_connection, greeting_421_is_refused) {
  sluice::net::loop l;
  script_server srv(l);
  srv.greeting = "421 4.3.2 too busy\r\n";
  auto at = srv.listen();
  recorder rec;
  smtp_connection conn(l, plain_settings(), rec);
  run_session(l, conn, rec, at, {}, true, "mx");
  cr_assert(rec.failure.why == connection_end::greeting_refused, "%s", failure_text(rec).c_str());
  cr_assert_eq(rec.failure.reply.code, 421);
  cr_assert_not(rec.failure.was_ready);
  cr_assert_eq(rec.ready, 0);
}

Test(delivery_connection, greeting_stall_times_out) {
  sluice::net::loop l;
  script_server srv(l);
  srv.greeting = "";
  auto at = srv.listen();
  recorder rec;
  connection_settings s = plain_settings();
  s.timeouts.greeting_ms = 100;
  smtp_connection conn(l, s, rec);
  run_session(l, conn, rec, at, {}, true, "mx");
  cr_assert(rec.failure.why == connection_end::timeout, "%s", failure_text(rec).c_str());
  cr_assert(rec.failure.detail.find("greeting") != std::string::npos, "%s", rec.failure.detail.c_str());
  cr_assert_eq(rec.failure.reply.code, 0);
}

Test(delivery_connection, final_dot_stall_times_out_every_recipient) {
  sluice::net::loop l;
  script_server srv(l);
  srv.final_reply = "";
  auto at = srv.listen();
  stored_body body(10);
  outbound_message m = message(body, {"b@y.test", "c@y.test"});
  recorder rec;
  connection_settings s = plain_settings();
  s.timeouts.final_dot_ms = 150;
  smtp_connection conn(l, s, rec);
  run_session(l, conn, rec, at, {&m}, false, "mx");  // no QUIT: it would follow the stalled dot
  cr_assert(rec.failure.why == connection_end::timeout, "%s", failure_text(rec).c_str());
  cr_assert(rec.failure.was_ready);
  cr_assert_eq(srv.data.size(), 1u, "the content went out; only its reply is missing");
  cr_assert_eq(rec.done.size(), 1u);
  for (const auto& r : rec.done[0]) {
    cr_assert_eq(r.code, 451);
    cr_assert_str_eq(r.enhanced.c_str(), "4.4.2");
    cr_assert(r.text.find("end of data") != std::string::npos, "the phase is named: %s", r.text.c_str());
  }
}

Test(delivery_connection, rcpt_stall_times_out_with_its_own_timeout) {
  sluice::net::loop l;
  script_server srv(l);
  srv.reply = [](script_server::session&, const std::string& line, std::string& out) {
    if (line.rfind("RCPT", 0) == 0) return out.clear(), true;  // silence
    return false;
  };
  auto at = srv.listen();
  stored_body body(10);
  outbound_message m = message(body, {"b@y.test"});
  recorder rec;
  connection_settings s = plain_settings();
  s.pipelining = false;
  s.timeouts.rcpt_ms = 120;
  smtp_connection conn(l, s, rec);
  run_session(l, conn, rec, at, {&m}, false, "mx");  // no QUIT: it would follow the stalled dot
  cr_assert(rec.failure.why == connection_end::timeout, "%s", failure_text(rec).c_str());
  cr_assert(rec.failure.detail.find("RCPT TO") != std::string::npos, "%s", rec.failure.detail.c_str());
  cr_assert_eq(rec.done.size(), 1u);
  cr_assert_eq(rec.done[0][0].code, 451);
}

Test(delivery_connection, drop_after_dot_defers_everyone) {
  sluice::net::loop l;
  script_server srv(l);
  srv.drop_after_dot = true;
  auto at = srv.listen();
  stored_body body(10);
  outbound_message m = message(body, {"b@y.test", "c@y.test"});
  recorder rec;
  smtp_connection conn(l, plain_settings(), rec);
  run_session(l, conn, rec, at, {&m}, false, "mx");  // no QUIT: it would follow the stalled dot
  cr_assert(rec.failure.why == connection_end::dropped, "%s", failure_text(rec).c_str());
  cr_assert_eq(rec.done.size(), 1u);
  for (const auto& r : rec.done[0]) {
    cr_assert_eq(r.code, 451);
    cr_assert_str_eq(r.enhanced.c_str(), "4.4.2");
  }
}

Test(delivery_connection, service_closing_421_mid_session) {
  sluice::net::loop l;
  script_server srv(l);
  srv.reply = [](script_server::session&, const std::string& line, std::string& out) {
    if (line == "DATA") return out = "421 4.3.2 shutting down\r\n", true;
    return false;
  };
  auto at = srv.listen();
  stored_body body(10);
  outbound_message m = message(body, {"b@y.test"});
  recorder rec;
  smtp_connection conn(l, plain_settings(), rec);
  run_session(l, conn, rec, at, {&m}, false, "mx");  // no QUIT: it would follow the stalled dot
  cr_assert(rec.failure.why == connection_end::service_closing, "%s", failure_text(rec).c_str());
  cr_assert_eq(rec.failure.reply.code, 421);
  cr_assert_eq(rec.done.size(), 1u);
  cr_assert_eq(rec.done[0][0].code, 421);
}

Test(delivery_connection, peer_limits_are_applied_without_a_mail_command) {
  sluice::net::loop l;
  script_server srv(l);
  srv.ehlo = "250-mx.test\r\n250-PIPELINING\r\n250 SIZE 1000\r\n";
  auto at = srv.listen();
  stored_body big(100), small(2);
  outbound_message too_big = message(big, {"b@y.test", "c@y.test"});
  outbound_message eight = message(small, {"b@y.test"});
  eight.eight_bit = true;
  outbound_message utf8 = message(small, {"b@y.test"});
  utf8.smtputf8 = true;
  recorder rec;
  smtp_connection conn(l, plain_settings(), rec);
  run_session(l, conn, rec, at, {&too_big, &eight, &utf8}, true, "mx");
  cr_assert_eq(rec.done.size(), 3u);
  cr_assert_eq(rec.done[0].size(), 2u);
  cr_assert(rec.done[0][0].code == 552 && rec.done[0][1].code == 552);
  cr_assert_str_eq(rec.done[0][1].enhanced.c_str(), "5.3.4");
  cr_assert_eq(rec.done[1][0].code, 554);
  cr_assert_str_eq(rec.done[1][0].enhanced.c_str(), "5.6.3");
  cr_assert_eq(rec.done[2][0].code, 553);
  cr_assert_str_eq(rec.done[2][0].enhanced.c_str(), "5.6.7");
  cr_assert_eq(srv.count("MAIL"), 0u);
  cr_assert(rec.failure.why == connection_end::quit);
}

Test(delivery_connection, connect_refused) {
  sluice::net::loop l;
  sluice::net::endpoint at;
  {
    script_server srv(l);
    at = srv.listen();
  }  // nothing listens there any more
  recorder rec;
  smtp_connection conn(l, plain_settings(), rec);
  run_session(l, conn, rec, at, {}, true, "mx.gone.test");
  cr_assert(rec.failure.why == connection_end::connect_failed, "%s", failure_text(rec).c_str());
  cr_assert(rec.failure.detail.rfind("connect to mx.gone.test[127.0.0.1]:", 0) == 0, "%s",
            rec.failure.detail.c_str());
}

Test(delivery_connection, auth_needs_tls_and_helo_fallback) {
  sluice::net::loop l;
  script_server srv(l);
  srv.ehlo = "250-mx.test\r\n250 AUTH PLAIN LOGIN\r\n";
  auto at = srv.listen();
  recorder rec;
  connection_settings s = plain_settings();
  s.auth_user = "u";
  s.auth_password = "secret";
  smtp_connection conn(l, s, rec);
  run_session(l, conn, rec, at, {}, true, "mx");
  cr_assert(rec.failure.why == connection_end::auth_failed, "%s", failure_text(rec).c_str());
  cr_assert_eq(srv.count("AUTH"), 0u, "no credentials over plaintext");

  // EHLO refused: HELO, and a session without extensions.
  script_server old(l);
  old.reply = [](script_server::session&, const std::string& line, std::string& out) {
    if (line.rfind("EHLO", 0) == 0) return out = "500 5.5.1 what?\r\n", true;
    return false;
  };
  auto at2 = old.listen();
  stored_body body(5);
  outbound_message m = message(body, {"b@y.test"});
  recorder rec2;
  smtp_connection conn2(l, plain_settings(), rec2);
  run_session(l, conn2, rec2, at2, {&m});
  cr_assert(rec2.failure.why == connection_end::quit, "%s", failure_text(rec2).c_str());
  cr_assert_eq(old.count("HELO out.sluice.test"), 1u);
  cr_assert_eq(rec2.done.size(), 1u);
  cr_assert_eq(rec2.done[0][0].code, 250);

  // Both refused.
  script_server none(l);
  none.reply = [](script_server::session&, const std::string& line, std::string& out) {
    if (line.rfind("EHLO", 0) == 0 || line.rfind("HELO", 0) == 0) return out = "550 5.7.1 go away\r\n", true;
    return false;
  };
  auto at3 = none.listen();
  recorder rec3;
  smtp_connection conn3(l, plain_settings(), rec3);
  run_session(l, conn3, rec3, at3, {}, true, "mx");
  cr_assert(rec3.failure.why == connection_end::helo_refused, "%s", failure_text(rec3).c_str());
  cr_assert_eq(rec3.failure.reply.code, 550);
}

Test(delivery_connection, abort_answers_messages_in_flight_synchronously) {
  sluice::net::loop l;
  script_server srv(l);
  srv.final_reply = "";
  auto at = srv.listen();
  stored_body body(10);
  outbound_message m = message(body, {"b@y.test"});
  recorder rec;
  smtp_connection conn(l, plain_settings(), rec);
  rec.when_ready = [&](smtp_connection& c) {
    if (rec.ready == 1) c.send(m);  // once: a second ready comes while the first waits
  };
  conn.start(at, "mx");
  net_test::run_until(l, [&] { return srv.data.size() == 1; });
  cr_assert_eq(srv.data.size(), 1u);
  conn.abort();
  cr_assert(rec.closed, "on_closed before abort() returns");
  cr_assert(rec.failure.why == connection_end::quit);
  cr_assert_eq(rec.done.size(), 1u);
  cr_assert_eq(rec.done[0][0].code, 451);
  conn.abort();  // nothing more happens
}

// A body far larger than the socket buffers: written as the peer takes it (back-pressure),
// still entirely from the chunks.
Test(delivery_connection, large_body_flows_with_back_pressure) {
  sluice::net::loop l;
  script_server srv(l);
  auto at = srv.listen();
  stored_body body(120000);  // ~7 MB in 2 KB chunks
  outbound_message m = message(body, {"b@y.test"});
  recorder rec;
  smtp_connection conn(l, plain_settings(), rec);
  run_session(l, conn, rec, at, {&m});
  cr_assert(rec.failure.why == connection_end::quit, "%s", failure_text(rec).c_str());
  cr_assert(rec.done.size() == 1 && rec.done[0][0].code == 250);
  const std::string want = body.stuffed();
  cr_assert(srv.data.size() == 1 && srv.data[0] == want);
  cr_assert_eq(conn.body_bytes_borrowed(), want.size());
}

Test(delivery_connection, peer_that_stops_reading_the_body_times_out) {
  sluice::net::loop l;
  script_server srv(l);
  srv.stop_reading_at_data = true;
  srv.ehlo = "250-mx.test\r\n250 PIPELINING\r\n";  // no SIZE limit in the way
  auto at = srv.listen();
  stored_body body(500000);  // ~30 MB: more than the kernel will buffer
  outbound_message m = message(body, {"b@y.test"});
  recorder rec;
  connection_settings s = plain_settings();
  s.timeouts.data_block_ms = 200;
  smtp_connection conn(l, s, rec);
  run_session(l, conn, rec, at, {&m}, false);
  cr_assert(rec.failure.why == connection_end::timeout, "%s", failure_text(rec).c_str());
  cr_assert(rec.failure.detail.find("writing the message content") != std::string::npos, "%s",
            rec.failure.detail.c_str());
  cr_assert(rec.done.size() == 1 && rec.done[0][0].code == 451);
  cr_assert_lt(conn.body_bytes_borrowed(), body.stuffed().size(), "the writer waited for the peer");
}
