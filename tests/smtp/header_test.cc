// header_test.cc: the shared header block scanner, unfolding, lookup, hop count and Received: builder.
#include <criterion/criterion.h>

#include <string>

#include "smtp/header.h"

using namespace sluice::smtp;

Test(smtp_header, cursor_walks_fields_folds_and_stops_at_the_body) {
  std::string_view block = "A: 1\r\nB:2\r\n  more\r\nC : 3\nD:\t4\n\nE: body";
  header_cursor c(block);
  cr_assert(c.next());
  cr_assert(c.name() == "A" && c.raw_value() == " 1");
  cr_assert_eq(c.begin(), 0u);
  cr_assert_eq(c.end(), 6u);
  cr_assert(c.next());
  cr_assert(c.name() == "B" && c.raw_value() == "2\r\n  more");
  cr_assert(c.next());
  cr_assert(c.name() == "C" && c.raw_value() == " 3", "bare LF and the obsolete blank before the colon");
  cr_assert(c.next());
  cr_assert(c.name() == "D");
  cr_assert_not(c.next());
  cr_assert_eq(c.body_offset(), block.find("\n\nE") + 1, "the offset of the empty line");
}

Test(smtp_header, a_line_without_colon_has_no_name) {
  header_cursor c("not a header\r\nX: y\r\n");
  cr_assert(c.next());
  cr_assert(c.name().empty());
  cr_assert(c.raw_value() == "not a header");
}

Test(smtp_header, unfold_removes_only_line_breaks_and_trims) {
  cr_assert_eq(unfold(" a@x,\r\n\tb@y \r\n  c@z  "), "a@x,\tb@y   c@z");
  cr_assert_eq(unfold("plain"), "plain");
  cr_assert_eq(unfold(" \t "), "");
}

Test(smtp_header, find_header_is_case_insensitive_and_takes_the_first) {
  std::string_view block = "Subject: one\r\nsubject: two\r\n\r\nSubject: body\r\n";
  auto v = find_header(block, "SUBJECT");
  cr_assert(v.has_value());
  cr_assert(*v == " one");
  cr_assert_not(find_header(block, "From").has_value());
  cr_assert_not(find_header("\r\nSubject: only in body\r\n", "subject").has_value());
}

Test(smtp_header, received_count_covers_the_header_block_only) {
  std::string m = "Received: a\r\nRECEIVED: b\r\n\tfolded\r\nX-Received: not one\r\nreceived : c\r\n\r\nReceived: body\r\n";
  cr_assert_eq(count_received(m), 3u);
  cr_assert(hop_limit_reached(m, 3), "ours would be the fourth");
  cr_assert_not(hop_limit_reached(m, 4));
  cr_assert_eq(count_received("Subject: none\r\n\r\n"), 0u);
  cr_assert_eq(count_received(""), 0u);
}

Test(smtp_header, received_header_for_a_tls_client_with_one_recipient) {
  received_fields f;
  f.from_helo = "client.example";
  f.from_address = "192.0.2.1";
  f.by_host = "mx.example";
  f.with = "ESMTPS";
  f.tls_summary = "version=TLSv1.3 cipher=X bits=256/256";
  f.tls_peer_subject = "CN=\"evil\"\r\nX: y";
  f.tls_peer_verified = false;
  f.id = "00000000000000AB";
  f.for_recipient = "rcpt@example.net";
  f.date = "Tue, 1 Dec 2026 10:00:00 +0000";
  std::string h = received_header(f);
  cr_assert_str_eq(h.c_str(),
                   "Received: from client.example ([192.0.2.1])\r\n\tby mx.example (sluice) with ESMTPS\r\n"
                   "\t(version=TLSv1.3 cipher=X bits=256/256)\r\n\t(client certificate \"CN=_evil___X: y\", not "
                   "verified) id 00000000000000AB\r\n\tfor <rcpt@example.net>; Tue, 1 Dec 2026 10:00:00 +0000\r\n");
  cr_assert_eq(count_received(h + "\r\n"), 1u, "one field, however folded");
}

Test(smtp_header, received_header_for_a_local_source) {
  received_fields f;
  f.from_text = "pickup directory";
  f.by_host = "mx.example";
  f.with = "pickup";
  f.id = "01";
  f.date = "D";
  cr_assert_eq(received_header(f), "Received: from pickup directory\r\n\tby mx.example (sluice) with pickup id 01; D\r\n");
}

Test(smtp_header, helo_text_cannot_inject_header_syntax) {
  cr_assert_eq(sanitize_helo("evil\r\nX-Injected: yes"), "evilX-Injected:yes", "one line, no blanks: no new field");
  cr_assert_eq(sanitize_helo("[192.0.2.1]"), "[192.0.2.1]");
  cr_assert_eq(sanitize_helo("\r\n"), "unknown");
  cr_assert_eq(sanitize_helo(std::string(300, 'a')).size(), 255u);
}
