// smtp_connection_bdat_test.cc: delivery::smtp_connection sending BDAT (RFC 3030) to a scripted server on loopback: zero copy, chunk replies, timeouts.
// Untrusted input: the client's bytes, read by the test's scripted server.
#include <criterion/criterion.h>

#include <string>
#include <string_view>
#include <vector>

#include "script_server.h"

namespace {

connection_settings plain_settings() {
  connection_settings s;
  s.helo = "out.sluice.test";
  s.tls = tls_policy::none;
  return s;
}

// A stored body in ~2 KB chunks, as the store keeps them. Text: dot lines and bare LFs (a
// BDAT-received body may hold them); binary: every octet value, NUL and lone CR included.
struct stored_body {
  std::string bytes;
  std::vector<std::string_view> chunks;
  stored_body(size_t lines, bool binary) {
    bytes = "Subject: bdat\r\n\r\n";
    for (size_t i = 0; i < lines; ++i) {
      if (binary) {
        for (int c = 0; c < 256; ++c) bytes += char((c + i) & 0xff);
      } else if (i % 41 == 0) {
        bytes += ".a line that starts with a dot\r\n";
      } else if (i % 53 == 0) {
        bytes += "a bare LF line\n";
      } else {
        bytes += "line " + std::to_string(i) + " of an ordinary message body, long enough\r\n";
      }
    }
    for (size_t at = 0; at < bytes.size(); at += 2000) chunks.push_back(std::string_view(bytes).substr(at, 2000));
  }
  // Text over BDAT: bare LFs completed to CRLF, nothing dot-stuffed, no terminator.
  std::string repaired() const {
    std::string out;
    for (size_t i = 0; i < bytes.size(); ++i) {
      if (bytes[i] == '\n' && (i == 0 || bytes[i - 1] != '\r')) out += '\r';
      out += bytes[i];
    }
    return out;
  }
};

std::string joined(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += x + "|";
  return s;
}

}  // namespace

// 7 MB of text in 1 MiB chunks, pipelined, written from the chunks without a copy: the server
// gets the stored lines (dots not doubled) with only their bare LFs repaired.
Test(delivery_connection_bdat, text_in_pipelined_chunks_zero_copy) {
  sluice::net::loop l;
  script_server srv(l);
  srv.chunking = true;
  srv.ehlo = "250-mx.test\r\n250 PIPELINING\r\n";
  auto at = srv.listen();
  stored_body body(120000, false);
  outbound_message m = message(body, {"b@y.test", "c@y.test"});
  recorder rec;
  smtp_connection conn(l, plain_settings(), rec);
  run_session(l, conn, rec, at, {&m});
  cr_assert(rec.failure.why == connection_end::quit, "%s", failure_text(rec).c_str());
  cr_assert(rec.done.size() == 1 && rec.done[0][0].code == 250 && rec.done[0][1].code == 250);
  const std::string want = body.repaired();
  cr_assert_eq(srv.bdat.size(), 1u);
  cr_assert(srv.data.empty(), "no DATA");
  cr_assert(srv.bdat[0] == want, "received %zu octets, want %zu", srv.bdat[0].size(), want.size());
  cr_assert_eq(conn.body_bytes_borrowed(), want.size(), "every octet went out from the chunks");
  cr_assert_eq(conn.stream_stats().copied, 0u);
  const size_t full = want.size() / (1024 * 1024);
  cr_assert_eq(srv.count("BDAT 1048576"), full, "%s", joined(srv.commands).c_str());
  cr_assert_eq(srv.count("BDAT " + std::to_string(want.size() - full * 1024 * 1024) + " LAST"), 1u, "%s",
               joined(srv.commands).c_str());
}

// BINARYMIME: BODY=BINARYMIME, the octets as stored (NUL, lone CR and LF).
Test(delivery_connection_bdat, binarymime_goes_as_stored) {
  sluice::net::loop l;
  script_server srv(l);
  srv.chunking = true;
  auto at = srv.listen();
  stored_body body(5000, true);  // 1.3 MB
  outbound_message m = message(body, {"b@y.test"});
  m.binary = m.eight_bit = true;
  recorder rec;
  smtp_connection conn(l, plain_settings(), rec);
  run_session(l, conn, rec, at, {&m});
  cr_assert(rec.done.size() == 1 && rec.done[0][0].code == 250, "%s", failure_text(rec).c_str());
  cr_assert(srv.bdat.size() == 1 && srv.bdat[0] == body.bytes);
  cr_assert_eq(conn.body_bytes_borrowed(), body.bytes.size());
  cr_assert(srv.count("MAIL FROM:<a@x.test>") == 1 && srv.commands.size() > 1 &&
                joined(srv.commands).find(" BODY=BINARYMIME|") != std::string::npos,
            "%s", joined(srv.commands).c_str());

  // Without CHUNKING offered it never leaves: 554 5.6.3 at once.
  script_server plain(l);
  auto at2 = plain.listen();
  recorder rec2;
  smtp_connection conn2(l, plain_settings(), rec2);
  run_session(l, conn2, rec2, at2, {&m});
  cr_assert(rec2.done.size() == 1 && rec2.done[0][0].code == 554);
  cr_assert_str_eq(rec2.done[0][0].enhanced.c_str(), "5.6.3");
  cr_assert_eq(plain.count("MAIL"), 0u);
}

// A 5xx to the second chunk: every recipient gets it, then RSET, and the next message on the
// same connection goes through.
Test(delivery_connection_bdat, refused_chunk_fails_all_then_rset_and_next_message) {
  sluice::net::loop l;
  script_server srv(l);
  srv.chunking = true;
  int refusals = 0;
  srv.chunk_reply = [&](size_t chunk, bool) -> std::string {
    if (chunk == 1 && refusals++ == 0) return "554 5.6.0 chunk refused\r\n";
    return "-";
  };
  auto at = srv.listen();
  stored_body big(60000, false), small(10, false);  // 3 MB: the refused chunk is a middle one
  outbound_message m1 = message(big, {"b@y.test", "c@y.test"}), m2 = message(small, {"d@y.test"});
  recorder rec;
  smtp_connection conn(l, plain_settings(), rec);
  run_session(l, conn, rec, at, {&m1, &m2});
  cr_assert_eq(rec.done.size(), 2u, "%s", failure_text(rec).c_str());
  for (const auto& r : rec.done[0]) {
    cr_assert_eq(r.code, 554);
    cr_assert_str_eq(r.enhanced.c_str(), "5.6.0");
  }
  cr_assert_eq(rec.done[1][0].code, 250);
  cr_assert_eq(srv.count("RSET"), 1u, "%s", joined(srv.commands).c_str());
  cr_assert_eq(srv.bdat.size(), 1u);
  cr_assert(srv.bdat[0] == small.repaired());
}

// Each chunk's reply waits data_block_ms: a stalled middle chunk times out on it (the final-dot
// timeout is long here); the LAST one waits final_dot_ms.
Test(delivery_connection_bdat, chunk_replies_have_the_data_block_timeout_last_the_final_dot) {
  for (bool stall_last : {false, true}) {
    sluice::net::loop l;
    script_server srv(l);
    srv.chunking = true;
    srv.chunk_reply = [stall_last](size_t chunk, bool last) -> std::string {
      if (stall_last ? last : chunk == 0) return "";
      return "-";
    };
    auto at = srv.listen();
    stored_body body(40000, false);  // 2 MB: a full chunk and the LAST
    outbound_message m = message(body, {"b@y.test"});
    recorder rec;
    connection_settings s = plain_settings();
    s.pipelining = false;
    s.timeouts.data_block_ms = stall_last ? 60'000 : 150;
    s.timeouts.final_dot_ms = stall_last ? 150 : 60'000;
    smtp_connection conn(l, s, rec);
    run_session(l, conn, rec, at, {&m}, false);
    cr_assert(rec.failure.why == connection_end::timeout, "%s", failure_text(rec).c_str());
    const char* phase = stall_last ? "end of data" : "BDAT chunk";
    cr_assert(rec.failure.detail.find(phase) != std::string::npos, "%s", rec.failure.detail.c_str());
    cr_assert(rec.done.size() == 1 && rec.done[0][0].code == 451);
    cr_assert_str_eq(rec.done[0][0].enhanced.c_str(), "4.4.2");
    cr_assert_eq(srv.count("BDAT"), stall_last ? 2u : 1u, "%s", joined(srv.commands).c_str());
  }
}

// The connection lost right after LAST: 451 4.4.2 for every recipient.
Test(delivery_connection_bdat, lost_after_last_defers_everyone) {
  sluice::net::loop l;
  script_server srv(l);
  srv.chunking = true;
  srv.drop_after_dot = true;
  auto at = srv.listen();
  stored_body body(10, false);
  outbound_message m = message(body, {"b@y.test", "c@y.test"});
  recorder rec;
  smtp_connection conn(l, plain_settings(), rec);
  run_session(l, conn, rec, at, {&m}, false);
  cr_assert(rec.failure.why == connection_end::dropped, "%s", failure_text(rec).c_str());
  cr_assert_eq(rec.done.size(), 1u);
  for (const auto& r : rec.done[0]) {
    cr_assert_eq(r.code, 451);
    cr_assert_str_eq(r.enhanced.c_str(), "4.4.2");
  }
  cr_assert_eq(srv.bdat.size(), 1u, "the content went out; only its reply is missing");
}

// chunking = false: DATA even though CHUNKING is offered.
Test(delivery_connection_bdat, chunking_off_uses_data) {
  sluice::net::loop l;
  script_server srv(l);
  srv.chunking = true;
  auto at = srv.listen();
  stored_body body(10, false);
  outbound_message m = message(body, {"b@y.test"});
  recorder rec;
  connection_settings s = plain_settings();
  s.chunking = false;
  smtp_connection conn(l, s, rec);
  run_session(l, conn, rec, at, {&m});
  cr_assert(rec.done.size() == 1 && rec.done[0][0].code == 250);
  cr_assert_eq(srv.data.size(), 1u);
  cr_assert_eq(srv.count("BDAT"), 0u);
}
