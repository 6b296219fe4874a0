// record_test.cc: envelope records round-trip every field; corrupt records are rejected, never crash.
#include <criterion/criterion.h>

#include <string>

#include "store/codec.h"
#include "store/record.h"

using namespace sluice;
using store::message_metadata;

namespace {

smtp::envelope full_envelope() {
  smtp::envelope e;
  e.helo = "mx.client.example";
  e.esmtp = true;
  e.mail_from = "bounce+x@sender.example";
  e.body = smtp::body_type::eight_bit_mime;
  e.smtputf8 = true;
  e.declared_size = 123456789012ull;
  e.ret = smtp::dsn_ret::headers;
  e.envid = "env-42";
  e.auth_submitter = "<>";
  e.recipients.push_back({"a@example.com", smtp::notify_success | smtp::notify_failure, "rfc822;a@example.com"});
  e.recipients.push_back({"b@example.net", smtp::notify_never, ""});
  e.recipients.push_back({"δοκιμή@παράδειγμα.δοκιμή", smtp::notify_delay, "utf-8;x"});
  return e;
}

message_metadata full_meta() {
  message_metadata m;
  m.received_at_ms = 1795000000123;
  m.connector = "Default Frontend";
  m.client_address = "2001:db8::1";
  m.client_helo = "[192.0.2.1]";
  m.auth_user = "alice";
  m.body_size = 9999;
  m.body_chunks = 5;
  return m;
}

}  // namespace

Test(store_record, round_trip_every_field) {
  auto env = full_envelope();
  auto meta = full_meta();
  std::string bytes = store::encode_record(env, meta);
  cr_assert_eq(static_cast<uint8_t>(bytes[0]), store::record_version);
  smtp::envelope e2;
  message_metadata m2;
  std::string error;
  cr_assert(store::decode_record(bytes, e2, m2, error), "decode failed: %s", error.c_str());
  cr_assert(e2.helo == env.helo);
  cr_assert(e2.esmtp);
  cr_assert(e2.mail_from == env.mail_from);
  cr_assert(e2.body == smtp::body_type::eight_bit_mime);
  cr_assert(e2.smtputf8);
  cr_assert(e2.declared_size.has_value());
  cr_assert_eq(*e2.declared_size, 123456789012ull);
  cr_assert(e2.ret == smtp::dsn_ret::headers);
  cr_assert(e2.envid == "env-42");
  cr_assert(e2.auth_submitter == "<>");
  cr_assert_eq(e2.recipients.size(), 3u);
  for (std::size_t i = 0; i < 3; ++i) {
    cr_assert(e2.recipients[i].address == env.recipients[i].address);
    cr_assert_eq(e2.recipients[i].notify, env.recipients[i].notify);
    cr_assert(e2.recipients[i].orcpt == env.recipients[i].orcpt);
  }
  cr_assert_eq(m2.received_at_ms, meta.received_at_ms);
  cr_assert(m2.connector == meta.connector);
  cr_assert(m2.client_address == meta.client_address);
  cr_assert(m2.client_helo == meta.client_helo);
  cr_assert(m2.auth_user == meta.auth_user);
  cr_assert_eq(m2.body_size, 9999u);
  cr_assert_eq(m2.body_chunks, 5u);
}

Test(store_record, round_trip_defaults_and_null_sender) {
  smtp::envelope env;  // null sender, no SIZE, no recipients
  message_metadata meta;
  std::string bytes = store::encode_record(env, meta);
  smtp::envelope e2;
  e2.declared_size = 5;
  message_metadata m2;
  std::string error;
  cr_assert(store::decode_record(bytes, e2, m2, error));
  cr_assert(e2.mail_from.empty());
  cr_assert_not(e2.declared_size.has_value());
  cr_assert_not(e2.esmtp);
  cr_assert(e2.body == smtp::body_type::unspecified);
  cr_assert(e2.recipients.empty());
}

Test(store_record, rejects_every_truncation) {
  std::string bytes = store::encode_record(full_envelope(), full_meta());
  for (std::size_t len = 0; len < bytes.size(); ++len) {
    smtp::envelope e;
    message_metadata m;
    std::string error;
    cr_assert_not(store::decode_record(std::string_view(bytes).substr(0, len), e, m, error),
                  "truncation to %zu bytes accepted", len);
    cr_assert_not(error.empty());
  }
}

Test(store_record, rejects_trailing_bytes_bad_version_and_bad_values) {
  std::string good = store::encode_record(full_envelope(), full_meta());
  smtp::envelope e;
  message_metadata m;
  std::string error;

  std::string trailing = good + "x";
  cr_assert_not(store::decode_record(trailing, e, m, error));

  std::string version = good;
  version[0] = 2;
  cr_assert_not(store::decode_record(version, e, m, error));
  cr_assert(error.find("version") != std::string::npos);

  std::string flags = good;
  flags[1] = static_cast<char>(0x80);
  cr_assert_not(store::decode_record(flags, e, m, error));

  // body type sits after version, flags and the two length-prefixed strings.
  std::size_t body_at = 2 + 4 + full_envelope().helo.size() + 4 + full_envelope().mail_from.size();
  std::string body = good;
  body[body_at] = 9;
  cr_assert_not(store::decode_record(body, e, m, error));
}

Test(store_record, rejects_lengths_larger_than_the_record) {
  // A string length of 4 GiB must fail cleanly, not allocate or read past the end.
  std::string bytes = store::encode_record(full_envelope(), full_meta());
  std::string huge = bytes;
  huge[2] = huge[3] = huge[4] = huge[5] = static_cast<char>(0xff);
  smtp::envelope e;
  message_metadata m;
  std::string error;
  cr_assert_not(store::decode_record(huge, e, m, error));

  // A recipient count of 2^32-1 with a few bytes left is rejected before allocating.
  store::binary_writer w;
  w.u8(store::record_version);
  w.u8(0);
  w.str("");
  w.str("");
  w.u8(0);
  w.u64(0);
  w.u8(0);
  w.str("");
  w.str("");
  w.u32(0xffffffffu);
  w.str("x");
  std::string rcpts = w.take();
  cr_assert_not(store::decode_record(rcpts, e, m, error));
  cr_assert(error.find("recipient count") != std::string::npos, "got: %s", error.c_str());
}

Test(store_record, random_corruption_never_crashes) {
  std::string good = store::encode_record(full_envelope(), full_meta());
  uint32_t seed = 12345;
  int accepted = 0;
  for (int round = 0; round < 20000; ++round) {
    std::string bad = good;
    int flips = 1 + round % 4;
    for (int f = 0; f < flips; ++f) {
      seed = seed * 1103515245u + 12345u;
      bad[(seed >> 8) % bad.size()] = static_cast<char>(seed >> 24);
    }
    smtp::envelope e;
    message_metadata m;
    std::string error;
    if (store::decode_record(bad, e, m, error)) ++accepted;  // content bytes may flip harmlessly
    else cr_assert_not(error.empty());
  }
  cr_assert_lt(accepted, 20000);
}
