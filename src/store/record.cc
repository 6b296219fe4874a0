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

namespace {
// Written: the newest version of each record. Read: every version down to 1, so a store
// written by an older sluice keeps working after an upgrade.
constexpr uint8_t hop_version = 2;
constexpr uint8_t item_version = 4;
constexpr uint8_t reports_version = 3;
// Smallest encoding of one report entry: u32 index and two empty strings in version 1,
// three more fields (two empty strings and a u64) in version 2, a u8 and a u64 in 3.
constexpr std::size_t min_report_bytes[] = {0, 12, 28, 37};
}  // namespace

std::string_view to_string(report_action a) noexcept {
  switch (a) {
    case report_action::failed: return "failed";
    case report_action::delayed: return "delayed";
    case report_action::delivered: return "delivered";
    case report_action::relayed: return "relayed";
  }
  return "unknown";
}

std::string_view to_string(hop_status s) noexcept {
  switch (s) {
    case hop_status::active: return "active";
    case hop_status::ready: return "ready";
    case hop_status::retry: return "retry";
    case hop_status::suspended: return "suspended";
  }
  return "unknown";
}

std::string encode_hop(const hop_record& h) {
  binary_writer w;
  w.u8(hop_version);
  w.str(h.key);
  w.u8(static_cast<uint8_t>(h.status));
  w.u64(h.items);
  w.u64(h.recipients);
  w.u64(static_cast<uint64_t>(h.oldest_ms));
  w.u64(static_cast<uint64_t>(h.next_retry_ms));
  w.str(h.last_error);
  w.u64(static_cast<uint64_t>(h.suspended_until_ms));
  return w.take();
}

bool suspended_at(const hop_record& h, int64_t now_ms) noexcept {
  return h.status == hop_status::suspended && (h.suspended_until_ms == 0 || h.suspended_until_ms > now_ms);
}

bool decode_hop(std::string_view bytes, hop_record& out, std::string& error) {
  binary_reader r(bytes);
  const uint8_t version = r.u8();
  if (version < 1 || version > hop_version) {
    error = "unsupported or empty hop record";
    return false;
  }
  out.key = r.str();
  uint8_t status = r.u8();
  out.items = r.u64();
  out.recipients = r.u64();
  out.oldest_ms = static_cast<int64_t>(r.u64());
  out.next_retry_ms = static_cast<int64_t>(r.u64());
  out.last_error = r.str();
  out.suspended_until_ms = version >= 2 ? static_cast<int64_t>(r.u64()) : 0;
  if (!r.at_end() || status > static_cast<uint8_t>(hop_status::suspended)) {
    error = "malformed hop record";
    return false;
  }
  out.status = static_cast<hop_status>(status);
  return true;
}

void encode_item(const delivery_item_record& item, std::string& out) {
  binary_writer w;
  w.buffer().swap(out);
  w.buffer().clear();
  w.u8(item_version);
  w.u8(static_cast<uint8_t>(item.state));
  w.u32(item.attempts);
  w.u64(static_cast<uint64_t>(item.received_at_ms));
  w.u64(static_cast<uint64_t>(item.next_attempt_ms));
  w.u32(static_cast<uint32_t>(item.recipients.size()));
  for (uint32_t r : item.recipients) w.u32(r);
  w.str(item.last_error);
  w.u64(static_cast<uint64_t>(item.last_attempt_ms));
  w.u8(item.delay_reported ? 1 : 0);
  w.u8(item.held ? 1 : 0);
  w.buffer().swap(out);
}

std::string encode_item(const delivery_item_record& item) {
  std::string out;
  encode_item(item, out);
  return out;
}

bool decode_item(std::string_view bytes, delivery_item_record& out, std::string& error) {
  binary_reader r(bytes);
  const uint8_t version = r.u8();
  if (version < 1 || version > item_version) {
    error = "unsupported or empty delivery item record";
    return false;
  }
  uint8_t state = r.u8();
  out.attempts = r.u32();
  out.received_at_ms = static_cast<int64_t>(r.u64());
  out.next_attempt_ms = static_cast<int64_t>(r.u64());
  uint32_t n = r.u32();
  if (!r.ok() || n > r.remaining() / 4 || state > static_cast<uint8_t>(item_state::deferred)) {
    error = "malformed delivery item record";
    return false;
  }
  out.state = static_cast<item_state>(state);
  out.recipients.resize(n);
  for (auto& x : out.recipients) x = r.u32();
  out.last_error.clear();
  out.last_attempt_ms = 0;
  out.delay_reported = false;
  out.held = false;
  if (version >= 2) {
    out.last_error = r.str();
    out.last_attempt_ms = static_cast<int64_t>(r.u64());
  }
  if (version >= 3) {
    const uint8_t flag = r.u8();
    if (flag > 1) r.fail();
    out.delay_reported = flag == 1;
  }
  if (version >= 4) {
    const uint8_t flag = r.u8();
    if (flag > 1) r.fail();
    out.held = flag == 1;
  }
  if (!r.at_end()) {
    error = "malformed delivery item record";
    return false;
  }
  return true;
}

std::string encode_reports(const std::vector<report_entry>& entries) {
  binary_writer w;
  w.u8(reports_version);
  w.u32(static_cast<uint32_t>(entries.size()));
  for (const auto& e : entries) {
    w.u32(e.recipient);
    w.str(e.status);
    w.str(e.reason);
    w.str(e.remote_mta);
    w.str(e.diagnostic);
    w.u64(static_cast<uint64_t>(e.at_ms));
    w.u8(static_cast<uint8_t>(e.action));
    w.u64(static_cast<uint64_t>(e.will_retry_until_ms));
  }
  return w.take();
}

bool decode_reports(std::string_view bytes, std::vector<report_entry>& out, std::string& error) {
  binary_reader r(bytes);
  const uint8_t version = r.u8();
  if (version < 1 || version > reports_version) {
    error = "unsupported or empty report list record";
    return false;
  }
  uint32_t n = r.u32();
  if (!r.ok() || n > r.remaining() / min_report_bytes[version]) {
    error = "malformed report list record";
    return false;
  }
  out.resize(n);
  for (auto& e : out) {
    e = report_entry{};
    e.recipient = r.u32();
    e.status = r.str();
    e.reason = r.str();
    if (version >= 2) {
      e.remote_mta = r.str();
      e.diagnostic = r.str();
      e.at_ms = static_cast<int64_t>(r.u64());
    }
    if (version >= 3) {
      const uint8_t action = r.u8();
      if (action > static_cast<uint8_t>(report_action::relayed)) r.fail();
      e.action = static_cast<report_action>(action);
      e.will_retry_until_ms = static_cast<int64_t>(r.u64());
    }
  }
  if (!r.at_end()) {
    error = "malformed report list record";
    return false;
  }
  return true;
}

}  // namespace sluice::store
