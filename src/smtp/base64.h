// base64.h: RFC 4648 base64 for SASL exchanges (RFC 4954 AUTH).
// Untrusted input: base64_decode() takes client-supplied SASL responses.
#pragma once
#include <string>
#include <string_view>

namespace sluice::smtp {

// Appends the encoding of `in` (with '=' padding) to `out`.
void base64_encode(std::string_view in, std::string& out);
std::string base64_encode(std::string_view in);
// Strict decoding: the alphabet only, length a multiple of 4, padding only at the
// end. Returns false (and leaves `out` unspecified) on any other input.
bool base64_decode(std::string_view in, std::string& out);

}  // namespace sluice::smtp
