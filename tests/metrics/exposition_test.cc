// exposition_test.cc: the text format (HELP, TYPE, escaping, histograms) and the JSON variant.
// Untrusted input: none (hostile label values are the test's own).
#include <criterion/criterion.h>

#include <string>

#include "metrics/exposition.h"
#include "metrics/registry.h"

using namespace sluice::metrics;

Test(metrics_exposition, label_values_are_escaped) {
  cr_assert_eq(escape_label_value("a\\b\"c\nd"), std::string("a\\\\b\\\"c\\nd"));
  // Not UTF-8: each stray byte becomes U+FFFD; valid sequences pass unchanged.
  cr_assert_eq(escape_label_value("x\xff" "y\xc3\xa9"), std::string("x\xEF\xBF\xBDy\xc3\xa9"));
  cr_assert_eq(escape_label_value("\xc0\xaf"), std::string("\xEF\xBF\xBD\xEF\xBF\xBD"), "overlong form refused");
  cr_assert_eq(escape_help("line\\one\nline \"two\""), std::string("line\\\\one\\nline \"two\""));
}

Test(metrics_exposition, a_hostile_label_value_stays_inside_its_series) {
  registry r;
  auto& f = r.add_counter("sluice_x_total", "help with\nnewline", {"site"});
  const std::string hostile = "evil\"} 999\nsluice_x_total{site=\"forged\"} 1\\";
  f.with({hostile}).inc(3);
  const std::string text = render_text(r.collect());
  cr_assert(text.find("# HELP sluice_x_total help with\\nnewline\n") != std::string::npos, "%s", text.c_str());
  cr_assert(text.find("# TYPE sluice_x_total counter\n") != std::string::npos);
  parsed_text p = parse_text(text);
  cr_assert(p.error.empty(), "%s", p.error.c_str());
  cr_assert_eq(p.samples.size(), 1u, "the value cannot add a series:\n%s", text.c_str());
  cr_assert_eq(std::string(p.samples[0].label("site")), hostile);
  cr_assert_eq(p.samples[0].value, 3);
}

Test(metrics_exposition, histograms_render_buckets_sum_and_count) {
  registry r;
  auto& h = r.add_histogram("sluice_t_seconds", "t", {0.5, 2});
  h.get().observe(0.25);
  h.get().observe(1);
  h.get().observe(4);
  const std::string text = render_text(r.collect());
  const std::string want =
      "# HELP sluice_t_seconds t\n"
      "# TYPE sluice_t_seconds histogram\n"
      "sluice_t_seconds_bucket{le=\"0.5\"} 1\n"
      "sluice_t_seconds_bucket{le=\"2\"} 2\n"
      "sluice_t_seconds_bucket{le=\"+Inf\"} 3\n"
      "sluice_t_seconds_sum 5.25\n"
      "sluice_t_seconds_count 3\n";
  cr_assert_eq(text, want, "%s", text.c_str());
}

Test(metrics_exposition, labelled_histograms_put_le_last) {
  registry r;
  auto& h = r.add_histogram("sluice_b", "b", {1}, {"kind"});
  h.with({"x"}).observe(1);
  const std::string text = render_text(r.collect());
  cr_assert(text.find("sluice_b_bucket{kind=\"x\",le=\"1\"} 1\n") != std::string::npos, "%s", text.c_str());
  cr_assert(text.find("sluice_b_bucket{kind=\"x\",le=\"+Inf\"} 1\n") != std::string::npos, "%s", text.c_str());
  cr_assert(text.find("sluice_b_count{kind=\"x\"} 1\n") != std::string::npos, "%s", text.c_str());
}

Test(metrics_exposition, values_are_formatted_for_prometheus) {
  cr_assert_eq(format_value(0), std::string("0"));
  cr_assert_eq(format_value(12345678901234.0), std::string("12345678901234"));
  cr_assert_eq(format_value(0.001), std::string("0.001"));
  cr_assert_eq(format_value(1.0 / 0.0), std::string("+Inf"));
  cr_assert_eq(format_value(-1.0 / 0.0), std::string("-Inf"));
  cr_assert_eq(format_value(0.0 / 0.0), std::string("NaN"));
}

Test(metrics_exposition, json_variant) {
  registry r;
  r.add_counter("sluice_c_total", "c \"quoted\"", {"connector"}).with({"De\x01" "fault"}).inc(2);
  r.add_gauge("sluice_g", "g").get().set(1.0 / 0.0);
  r.add_histogram("sluice_h", "h", {1}).get().observe(3);
  const std::string json = render_json(r.collect());
  const std::string want =
      "{\"sluice_c_total\":{\"type\":\"counter\",\"help\":\"c \\\"quoted\\\"\",\"samples\":["
      "{\"labels\":{\"connector\":\"De\\u0001fault\"},\"value\":2}]},"
      "\"sluice_g\":{\"type\":\"gauge\",\"help\":\"g\",\"samples\":[{\"labels\":{},\"value\":null}]},"
      "\"sluice_h\":{\"type\":\"histogram\",\"help\":\"h\",\"samples\":[{\"labels\":{},\"buckets\":["
      "{\"le\":1,\"count\":0},{\"le\":\"+Inf\",\"count\":1}],\"sum\":3,\"count\":1}]}}";
  cr_assert_eq(json, want, "%s", json.c_str());
  cr_assert_eq(json_string("\xff"), std::string("\"\xEF\xBF\xBD\""));
}

Test(metrics_exposition, the_reader_refuses_malformed_lines) {
  cr_assert(!parse_text("ok 1\nbad{site=\"x} 2\n").error.empty());
  cr_assert(!parse_text("x{1=\"a\"} 1\n").error.empty());
  cr_assert(!parse_text("x notanumber\n").error.empty());
  parsed_text p = parse_text("# TYPE x counter\nx{a=\"1\",b=\"2\"} 7 1700000000\r\n");
  cr_assert(p.error.empty(), "%s", p.error.c_str());
  cr_assert_eq(p.samples.at(0).value, 7);
  cr_assert_eq(std::string(p.samples[0].label("b")), "2");
  cr_assert_eq(p.types.at(0).second, "counter");
}
