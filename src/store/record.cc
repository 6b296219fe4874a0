// record.cc: envelope record encoding and validating decoder.
// Untrusted input: record bytes from the store file.
#include "store/record.h"

#include "store/codec.h"

namespace sluice::store {

namespace {
constexpr uint8_t flag_esmtp = 1;
constexpr uint8_t flag_smtputf8 = 2;
constexpr uint8_t flag_declared_size = 4;
constexpr uint8_t known_flags = flag_esmtp | flag_smtputf8 | flag_declared_size;
constexpr uint8_t known_notify = smtp::notify_never | smtp::notify_success |
                                 smtp::notify_failure | smtp::notify_delay;
// Smallest encoding of one recipient: empty address (4) + notify (1) + empty orcpt (4).
constexpr std::size_t min_recipient_bytes = 9;
}  // namespace

std::string encode_record(const smtp::envelope& env, const message_metadata& meta) {
  binary_writer w;
  w.buffer().reserve(128 + env.mail_from.size() + env.helo.size() + 48 * env.recipients.size());
  w.u8(record_version);
  uint8_t flags = 0;
  if (env.esmtp) flags |= flag_esmtp;
  if (env.smtputf8) flags |= flag_smtputf8;
  if (env.declared_size) flags |= flag_declared_size;
  w.u8(flags);
  w.str(env.helo);
  w.str(env.mail_from);
  w.u8(static_cast<uint8_t>(env.body));
  w.u64(env.declared_size.value_or(0));
  w.u8(static_cast<uint8_t>(env.ret));
  w.str(env.envid);
  w.str(env.auth_submitter);
  w.u32(static_cast<uint32_t>(env.recipients.size()));
  for (const auto& r : env.recipients) {
    w.str(r.address);
    w.u8(r.notify);
    w.str(r.orcpt);
  }
  w.u64(static_cast<uint64_t>(meta.received_at_ms));
  w.str(meta.connector);
  w.str(meta.client_address);
  w.str(meta.client_helo);
  w.str(meta.auth_user);
  w.u64(meta.body_size);
  w.u32(meta.body_chunks);
  return w.take();
}

bool decode_record(std::string_view bytes, smtp::envelope& env, message_metadata& meta,
                   std::string& error) {
  binary_reader r(bytes);
  uint8_t version = r.u8();
  if (!r.ok()) {
    error = "empty message record";
    return false;
  }
  if (version != record_version) {
    error = "unsupported message record version " + std::to_string(version);
    return false;
  }
  uint8_t flags = r.u8();
  env = smtp::envelope{};
  env.esmtp = flags & flag_esmtp;
  env.smtputf8 = flags & flag_smtputf8;
  env.helo = r.str();
  env.mail_from = r.str();
  uint8_t body = r.u8();
  uint64_t declared = r.u64();
  if (flags & flag_declared_size) env.declared_size = declared;
  uint8_t ret = r.u8();
  env.envid = r.str();
  env.auth_submitter = r.str();
  uint32_t count = r.u32();
  if (!r.ok()) {
    error = "truncated message record (envelope)";
    return false;
  }
  if ((flags & ~known_flags) != 0 || body > static_cast<uint8_t>(smtp::body_type::binary_mime) ||
      ret > static_cast<uint8_t>(smtp::dsn_ret::headers)) {
    error = "message record has out-of-range envelope values";
    return false;
  }
  env.body = static_cast<smtp::body_type>(body);
  env.ret = static_cast<smtp::dsn_ret>(ret);
  // Bound the count by the bytes left before allocating, so a corrupt count cannot
  // make us reserve gigabytes.
  if (count > r.remaining() / min_recipient_bytes) {
    error = "message record recipient count exceeds record size";
    return false;
  }
  env.recipients.resize(count);
  for (auto& rcpt : env.recipients) {
    rcpt.address = r.str();
    rcpt.notify = r.u8();
    rcpt.orcpt = r.str();
    if (rcpt.notify & ~known_notify) r.fail();
  }
  meta = message_metadata{};
  meta.received_at_ms = static_cast<int64_t>(r.u64());
  meta.connector = r.str();
  meta.client_address = r.str();
  meta.client_helo = r.str();
  meta.auth_user = r.str();
  meta.body_size = r.u64();
  meta.body_chunks = r.u32();
  if (!r.ok()) {
    error = "truncated or malformed message record";
    return false;
  }
  if (!r.at_end()) {
    error = "message record has trailing bytes";
    return false;
  }
  return true;
}

}  // namespace sluice::store
