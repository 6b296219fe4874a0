// record_fuzz.cc: libFuzzer driver for the store's record decoders (store/record.h).
// Untrusted input: the payload is a record as read back from the LMDB file.
#include <cstdint>
#include <string>

#include "store/record.h"
#include "fuzz_util.h"

using namespace sluice::store;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  uint8_t which = data[0] & 3;
  std::string_view bytes(reinterpret_cast<const char*>(data) + 1, size - 1);
  std::string err;
  switch (which) {
    case 0: {
      sluice::smtp::envelope env;
      message_metadata meta;
      if (decode_record(bytes, env, meta, err)) {
        // A decoded record re-encodes to something that decodes to the same encoding.
        std::string enc = encode_record(env, meta);
        sluice::smtp::envelope env2;
        message_metadata meta2;
        FUZZ_CHECK(decode_record(enc, env2, meta2, err));
        FUZZ_CHECK(encode_record(env2, meta2) == enc);
      } else {
        FUZZ_CHECK(!err.empty());
      }
      break;
    }
    case 1: {
      hop_record h;
      if (decode_hop(bytes, h, err)) {
        std::string enc = encode_hop(h);
        hop_record h2;
        FUZZ_CHECK(decode_hop(enc, h2, err) && encode_hop(h2) == enc);
      } else {
        FUZZ_CHECK(!err.empty());
      }
      break;
    }
    case 2: {
      delivery_item_record it;
      if (decode_item(bytes, it, err)) {
        std::string enc = encode_item(it);
        delivery_item_record it2;
        FUZZ_CHECK(decode_item(enc, it2, err) && encode_item(it2) == enc);
      } else {
        FUZZ_CHECK(!err.empty());
      }
      break;
    }
    default: {
      std::vector<report_entry> f;
      if (decode_reports(bytes, f, err)) {
        std::string enc = encode_reports(f);
        std::vector<report_entry> f2;
        FUZZ_CHECK(decode_reports(enc, f2, err) && encode_reports(f2) == enc);
      } else {
        FUZZ_CHECK(!err.empty());
      }
    }
  }
  return 0;
}
