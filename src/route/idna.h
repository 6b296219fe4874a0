// idna.h: U-label to A-label conversion (libidn2) for whoever feeds route: config adapter, SMTPUTF8 recipients.
// Untrusted input: domains and addresses from RCPT TO (any bytes) and from configuration.
#pragma once
#include <optional>
#include <string>
#include <string_view>

// Kept out of the pure route core (which compares bytes after ASCII
// lower-casing): convert here first, then route the result, so that
// "user@Bücher.example" and "user@xn--bcher-kva.example" take the same route.
// Only built when libidn2 is found (meson: route_idna_dep).

namespace sluice::route {

bool has_non_ascii(std::string_view s) noexcept;

// UTS #46 non-transitional processing with NFC: "Bücher.Example" ->
// "xn--bcher-kva.example". Pure ASCII input is returned lower-cased without
// calling libidn2. nullopt when the name is not a valid IDN.
std::optional<std::string> domain_to_ascii(std::string_view domain);

// Converts the domain after the last '@'; the local part is left as it is
// (SMTPUTF8 local parts have no ASCII form). nullopt when the domain is invalid.
std::optional<std::string> address_to_ascii(std::string_view address);

}  // namespace sluice::route
