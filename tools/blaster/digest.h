// digest.h: the 64-bit body digest carried in X-Blaster-Digest.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

namespace sluice::blaster {

// A multiply-rotate hash over 32-byte stripes (four independent lanes, so it runs at
// several GB/s). It detects corruption, not tampering: blaster only needs to notice
// that a relay changed a body, and SHA-256 would cost more than the rest of a send.
uint64_t digest64(std::string_view data);
std::string digest_hex(uint64_t d);  // 16 lower-case hex digits

}  // namespace sluice::blaster
