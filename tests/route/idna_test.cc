// idna_test.cc: U-labels become A-labels before routing, so both spellings take the same route.
#include <string>

#include "fixtures.h"
#include "route/idna.h"

using namespace route_test;

Test(route_idna, u_labels_convert_to_a_labels) {
  auto d = domain_to_ascii("B\xc3\xbc" "cher.Example");
  cr_assert(d.has_value());
  cr_assert_str_eq(d->c_str(), "xn--bcher-kva.example");
  auto ascii = domain_to_ascii("Mail.Example.COM");
  cr_assert(ascii.has_value());
  cr_assert_str_eq(ascii->c_str(), "mail.example.com");
  cr_assert(!domain_to_ascii("\xff\xfe.example").has_value(), "invalid UTF-8 is refused");
}

Test(route_idna, converted_address_routes_like_the_a_label_form) {
  auto t = must_build({}, {connector("idn", {{"xn--bcher-kva.example", 1}})});
  auto a = address_to_ascii("J\xc3\xb6rg@B\xc3\xbc" "cher.example");
  cr_assert(a.has_value());
  cr_assert_str_eq(a->c_str(), "J\xc3\xb6rg@xn--bcher-kva.example");
  decision d = t->route_recipient(*a, 0, 0);
  cr_assert_eq(d.result, outcome::remote);
  cr_assert_eq(t->route_recipient("j@B\xc3\xbc" "cher.example", 0, 0).result, outcome::no_route,
               "the core itself does no IDNA");
}
