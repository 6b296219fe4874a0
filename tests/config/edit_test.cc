// edit_test.cc: config::edit::document: listing, adding, changing and removing [[kind]] entries keeps the rest byte for byte.
// Untrusted input: none (the hostile texts are the test's own).
#include <criterion/criterion.h>

#include <cstdio>
#include <string>
#include <toml++/toml.h>

#include "config/config.h"
#include "config/edit.h"

using namespace sluice::config::edit;

namespace {

// A file in the shape of etc/sluice.toml: comments everywhere, inline tables, a
// multi-line array with comments inside, strings holding '#', ']' and "[[...]]".
const std::string sample = R"(# sluice.toml: a test file
[server]
hostname = "mx.example.com"   # our name

# ----------------------------------------------------------------
# Receive connectors.

[[receive_connector]]
name = "Default"
type = "internet"
bindings = ["127.0.0.1:2525"]
max_message_size = "36MB"    # the site-wide limit
tls = { certificate = "auto", key = "auto", starttls = "offered" }

# HQ relays through us.
[[receive_connector]]
name = "From HQ # not a comment ]"
type = "enterprise"
bindings = [
  "0.0.0.0:25",     # every IPv4 address
  # "[::]:25",
  "127.0.0.1:2526", # ] is not the end
]
banner = """
[[receive_connector]]
name = "fake"
"""
permissions = { anonymous = true, relay = true }

# Everything below is about sending.

[[send_connector]]
name = "Internet"
address_spaces = ["*"]
)";

document parse_ok(const std::string& text) {
  std::string error;
  auto d = document::parse(text, error);
  cr_assert(d.has_value(), "parse: %s", error.c_str());
  return *d;
}

// text with the first occurrence of `from` replaced by `to` (which must be there).
std::string replaced(std::string text, const std::string& from, const std::string& to) {
  size_t at = text.find(from);
  cr_assert(at != std::string::npos, "'%s' is not in the text", from.c_str());
  return text.replace(at, from.size(), to);
}

void expect_text(const document& d, const std::string& expected) {
  cr_assert_str_eq(d.text().c_str(), expected.c_str());
}

size_t index_of(const document& d, const char* kind, const char* name) {
  auto i = d.find(kind, name);
  cr_assert(i.has_value(), "no %s named %s", kind, name);
  return *i;
}

}  // namespace

Test(config_edit, lists_entries_with_names_and_lines) {
  document d = parse_ok(sample);
  std::string error;
  auto rc = d.entries("receive_connector", error);
  cr_assert(rc.has_value(), "%s", error.c_str());
  // The [[receive_connector]] inside the multi-line string is text, not a block.
  cr_assert_eq(rc->size(), 2u);
  cr_assert_str_eq((*rc)[0].name.c_str(), "Default");
  cr_assert_eq((*rc)[0].line, 8);
  cr_assert_str_eq((*rc)[1].name.c_str(), "From HQ # not a comment ]");
  cr_assert_eq((*rc)[1].line, 16);
  auto none = d.entries("accepted_domain", error);
  cr_assert(none.has_value() && none->empty());
  cr_assert_eq(index_of(d, "receive_connector", "from hq # NOT a comment ]"), 1u, "names match ignoring case");
  cr_assert(!d.find("receive_connector", "fake").has_value());
  cr_assert_eq(index_of(d, "send_connector", "internet"), 0u);
}

Test(config_edit, set_replaces_only_the_value_and_keeps_its_comment) {
  document d = parse_ok(sample);
  std::string error;
  cr_assert(d.set("receive_connector", 0, "max_message_size", value::integer(1048576), error), "%s", error.c_str());
  expect_text(d, replaced(sample, "max_message_size = \"36MB\"    # the site-wide limit",
                          "max_message_size = 1048576    # the site-wide limit"));
  // A multi-line array becomes the one-line value; the lines around it stay.
  cr_assert(d.set("receive_connector", 1, "bindings", value::strings({"10.0.0.1:25"}), error), "%s", error.c_str());
  std::string expected = replaced(sample, "max_message_size = \"36MB\"", "max_message_size = 1048576");
  expected = replaced(expected, R"([
  "0.0.0.0:25",     # every IPv4 address
  # "[::]:25",
  "127.0.0.1:2526", # ] is not the end
])",
                      R"(["10.0.0.1:25"])");
  expect_text(d, expected);
}

Test(config_edit, set_adds_a_missing_key_after_the_last_key_of_the_block) {
  document d = parse_ok(sample);
  std::string error;
  cr_assert(d.set("receive_connector", 1, "max_recipients", value::integer(50), error), "%s", error.c_str());
  expect_text(d, replaced(sample, "permissions = { anonymous = true, relay = true }\n",
                          "permissions = { anonymous = true, relay = true }\nmax_recipients = 50\n"));
  // A nested key nobody wrote yet becomes an inline table, as the shipped file writes them.
  cr_assert(d.set("send_connector", 0, "limits.max_connections", value::integer(3), error), "%s", error.c_str());
  cr_assert(d.text().find("address_spaces = [\"*\"]\nlimits = { max_connections = 3 }\n") != std::string::npos, "%s",
            d.text().c_str());
  // Indentation of the block's keys is kept for the new line.
  document indented = parse_ok("[[a]]\n  name = \"x\"\n  k = 1\n\n# tail\n");
  cr_assert(indented.set("a", 0, "j", value::boolean(true), error), "%s", error.c_str());
  expect_text(indented, "[[a]]\n  name = \"x\"\n  k = 1\n  j = true\n\n# tail\n");
}

Test(config_edit, set_inside_inline_tables_sub_tables_and_dotted_keys) {
  document d = parse_ok(sample);
  std::string error;
  cr_assert(d.set("receive_connector", 0, "tls.starttls", value::string("required"), error), "%s", error.c_str());
  cr_assert(d.set("receive_connector", 0, "tls.min_version", value::string("1.3"), error), "%s", error.c_str());
  cr_assert(d.set("receive_connector", 1, "permissions.relay", value::boolean(false), error), "%s", error.c_str());
  std::string expected = replaced(sample, R"(tls = { certificate = "auto", key = "auto", starttls = "offered" })",
                                  R"(tls = { certificate = "auto", key = "auto", starttls = "required", min_version = "1.3" })");
  expected = replaced(expected, "{ anonymous = true, relay = true }", "{ anonymous = true, relay = false }");
  expect_text(d, expected);

  const std::string sub = "[[rc]]\nname = \"a\"\n\n[rc.tls]\nkey = \"auto\" # k\n\n[[rc]]\nname = \"b\"\ntls.key = \"x\"\n";
  document s = parse_ok(sub);
  cr_assert(s.set("rc", 0, "tls.starttls", value::string("off"), error), "%s", error.c_str());
  cr_assert(s.set("rc", 0, "tls.key", value::string("k.pem"), error), "%s", error.c_str());
  cr_assert(s.set("rc", 1, "tls.certificate", value::string("c.pem"), error), "%s", error.c_str());
  expect_text(s,
              "[[rc]]\nname = \"a\"\n\n[rc.tls]\nkey = \"k.pem\" # k\nstarttls = \"off\"\n\n[[rc]]\nname = \"b\"\n"
              "tls.key = \"x\"\ntls.certificate = \"c.pem\"\n");
}

Test(config_edit, set_refuses_a_key_under_a_value_and_changes_nothing) {
  document d = parse_ok("[[rc]]\nname = \"a\"\ntls = \"yes\"\n");
  std::string error;
  cr_assert(!d.set("rc", 0, "tls.starttls", value::string("off"), error));
  cr_assert(error.find("'tls' is not a table") != std::string::npos, "%s", error.c_str());
  expect_text(d, "[[rc]]\nname = \"a\"\ntls = \"yes\"\n");
  for (const char* bad : {"", "a..b", "tls.", ".x", "x y", "a=b", "\"q\""}) {
    error.clear();
    cr_assert(!d.set("rc", 0, bad, value::integer(1), error), "key '%s'", bad);
    cr_assert(!error.empty());
  }
  cr_assert(!d.set("rc", 1, "name", value::string("b"), error), "no second entry");
  expect_text(d, "[[rc]]\nname = \"a\"\ntls = \"yes\"\n");
}

Test(config_edit, values_are_escaped_toml) {
  const std::string hostile = "x\" ]\n[[receive_connector]]\nname = \"evil\" # \\ \t\x01\x7f";
  document d = parse_ok("[[receive_connector]]\nname = \"a\"\n");
  std::string error;
  cr_assert(d.set("receive_connector", 0, "banner", value::string(hostile), error), "%s", error.c_str());
  cr_assert(d.set("receive_connector", 0, "bindings", value::strings({hostile, "b,c"}), error), "%s", error.c_str());
  toml::table t = toml::parse(d.text());
  cr_assert_eq(t["receive_connector"].as_array()->size(), 1u, "%s", d.text().c_str());
  const std::string banner = t["receive_connector"][0]["banner"].value_or(std::string());
  const std::string first = t["receive_connector"][0]["bindings"][0].value_or(std::string());
  const std::string second = t["receive_connector"][0]["bindings"][1].value_or(std::string());
  cr_assert(banner == hostile, "%s", d.text().c_str());
  cr_assert(first == hostile, "%s", d.text().c_str());
  cr_assert_str_eq(second.c_str(), "b,c");
  // Multi-line strings may end in up to two quotes of their own before the closing three.
  document quotes = parse_ok("[[a]]\nname = \"\"\"say \"hi\"\"\"\"\"\nb = '''it''''' # c\n");
  cr_assert(quotes.set("a", 0, "b", value::integer(2), error), "%s", error.c_str());
  expect_text(quotes, "[[a]]\nname = \"\"\"say \"hi\"\"\"\"\"\nb = 2 # c\n");
  cr_assert_eq(value::integer(-5).toml(), "-5");
  cr_assert_eq(value::boolean(false).toml(), "false");
  cr_assert_eq(value::strings({}).toml(), "[]");
}

Test(config_edit, append_goes_after_the_last_block_of_its_kind) {
  document d = parse_ok(sample);
  std::string error;
  key_values keys = {{"name", value::string("Receive from HQ")},
                     {"type", value::string("enterprise")},
                     {"bindings", value::strings({"0.0.0.0:25"})},
                     {"remote_ranges", value::strings({"10.10.0.0(255.255.0.0)"})},
                     {"permissions.anonymous", value::boolean(true)},
                     {"permissions.relay", value::boolean(true)}};
  cr_assert(d.append("receive_connector", keys, error), "%s", error.c_str());
  const std::string block =
      "\n[[receive_connector]]\nname = \"Receive from HQ\"\ntype = \"enterprise\"\nbindings = [\"0.0.0.0:25\"]\n"
      "remote_ranges = [\"10.10.0.0(255.255.0.0)\"]\npermissions = { anonymous = true, relay = true }\n";
  expect_text(d, replaced(sample, "relay = true }\n", "relay = true }\n" + block));
  cr_assert_eq(index_of(d, "receive_connector", "Receive from HQ"), 2u);

  // No block of the kind yet: at the end of the file, after a blank line.
  cr_assert(d.append("accepted_domain", {{"name", value::string("example.com")}}, error), "%s", error.c_str());
  cr_assert(d.text().size() > sample.size());
  const std::string end = "address_spaces = [\"*\"]\n\n[[accepted_domain]]\nname = \"example.com\"\n";
  cr_assert(d.text().ends_with(end), "%s", d.text().c_str());

  // Without a final line end, and with CRLF line ends, which new lines keep.
  document crlf = parse_ok("[server]\r\nhostname = \"h\"\r\n[[a]]\r\nname = \"x\"");
  cr_assert(crlf.append("a", {{"name", value::string("y")}}, error), "%s", error.c_str());
  expect_text(crlf, "[server]\r\nhostname = \"h\"\r\n[[a]]\r\nname = \"x\"\r\n\r\n[[a]]\r\nname = \"y\"\r\n");

  // A key given twice, or as a value and as a table, is refused.
  cr_assert(!d.append("a", {{"name", value::string("y")}, {"name", value::string("z")}}, error));
  cr_assert(!d.append("a", {{"tls", value::string("y")}, {"tls.key", value::string("z")}}, error));
  cr_assert(!d.append("a b", {{"name", value::string("y")}}, error), "kind must be a bare key");
}

Test(config_edit, remove_takes_the_block_and_its_comment_only) {
  document d = parse_ok(sample);
  std::string error;
  cr_assert(d.remove("receive_connector", 1, error), "%s", error.c_str());
  size_t from = sample.find("# HQ relays through us.");
  size_t to = sample.find("# Everything below is about sending.");
  std::string expected = sample;
  expected.erase(from, to - from);
  expect_text(d, expected);

  cr_assert(d.remove("receive_connector", 0, error), "%s", error.c_str());
  from = expected.find("[[receive_connector]]");
  to = expected.find("# Everything below");
  expected.erase(from, to - from);
  expect_text(d, expected);
  auto rc = d.entries("receive_connector", error);
  cr_assert(rc.has_value() && rc->empty());
  cr_assert(!d.remove("receive_connector", 0, error));

  // Comments directly after the last key belong to the block, unless they touch the next header.
  document tail = parse_ok("[[a]]\nname = \"x\"\n# about x\n\n[[a]]\nname = \"y\"\n# about z\n[[a]]\nname = \"z\"\n");
  cr_assert(tail.remove("a", 0, error), "%s", error.c_str());
  expect_text(tail, "[[a]]\nname = \"y\"\n# about z\n[[a]]\nname = \"z\"\n");
  cr_assert(tail.remove("a", 0, error), "%s", error.c_str());
  expect_text(tail, "# about z\n[[a]]\nname = \"z\"\n");
}

Test(config_edit, remove_key_from_lines_inline_tables_and_dotted_keys) {
  document d = parse_ok(sample);
  std::string error;
  cr_assert(d.remove_key("receive_connector", 0, "max_message_size", error), "%s", error.c_str());
  cr_assert(d.remove_key("receive_connector", 1, "bindings", error), "%s", error.c_str());
  cr_assert(d.remove_key("receive_connector", 0, "tls.key", error), "%s", error.c_str());
  cr_assert(d.remove_key("receive_connector", 1, "permissions.anonymous", error), "%s", error.c_str());
  std::string expected = replaced(sample, "max_message_size = \"36MB\"    # the site-wide limit\n", "");
  expected = replaced(expected, R"(bindings = [
  "0.0.0.0:25",     # every IPv4 address
  # "[::]:25",
  "127.0.0.1:2526", # ] is not the end
]
)",
                      "");
  expected = replaced(expected, R"(key = "auto", )", "");
  expected = replaced(expected, "{ anonymous = true, relay = true }", "{ relay = true }");
  expect_text(d, expected);
  // The last and the only item of an inline table.
  cr_assert(d.remove_key("receive_connector", 0, "tls.starttls", error), "%s", error.c_str());
  cr_assert(d.remove_key("receive_connector", 1, "permissions.relay", error), "%s", error.c_str());
  expected = replaced(expected, R"({ certificate = "auto", starttls = "offered" })", R"({ certificate = "auto" })");
  expected = replaced(expected, "{ relay = true }", "{}");
  expect_text(d, expected);
  // Not there: nothing to do.
  cr_assert(d.remove_key("receive_connector", 0, "helo_required", error), "%s", error.c_str());
  expect_text(d, expected);

  document dotted = parse_ok("[[a]]\nname = \"x\"\ntls.key = \"k\"\ntls.certificate = \"c\"\nport = 1\n");
  cr_assert(dotted.remove_key("a", 0, "tls.key", error), "%s", error.c_str());
  expect_text(dotted, "[[a]]\nname = \"x\"\ntls.certificate = \"c\"\nport = 1\n");
  cr_assert(dotted.remove_key("a", 0, "tls", error), "%s", error.c_str());
  expect_text(dotted, "[[a]]\nname = \"x\"\nport = 1\n");
}

Test(config_edit, hostile_texts_are_refused_not_crashed) {
  std::string error;
  const std::string deep = "a = " + std::string(5000, '[') + std::string(5000, ']') + "\n";
  const std::string cases[] = {
      "[[a]]\nname = \"unterminated\n",
      "a = [1, 2\n",
      "a = \"\"\"never closed\n",
      std::string("a = \"nul\0here\"\n", 15),
      "a = \"\xff\xfe\"\n",
      "[[a]\nname = 1\n",
      "x = 1\rlone carriage return\n",
      deep,
      std::string(5u << 20, '#'),
  };
  for (const auto& text : cases) {
    error.clear();
    cr_assert(!document::parse(text, error).has_value(), "accepted: %.40s", text.c_str());
    cr_assert(!error.empty());
  }
  // Valid TOML in a shape the editor will not touch: refused with a reason, unchanged.
  document inline_array = parse_ok("receive_connector = [{ name = \"a\" }]\n");
  cr_assert(!inline_array.entries("receive_connector", error).has_value());
  cr_assert(error.find("[[receive_connector]] blocks") != std::string::npos, "%s", error.c_str());
  cr_assert(!inline_array.set("receive_connector", 0, "name", value::string("b"), error));
  cr_assert(!inline_array.append("receive_connector", {{"name", value::string("b")}}, error));
  cr_assert(!inline_array.remove("receive_connector", 0, error));
  expect_text(inline_array, "receive_connector = [{ name = \"a\" }]\n");
  document plain_table = parse_ok("[receive_connector]\nname = \"a\"\n");
  cr_assert(!plain_table.append("receive_connector", {{"name", value::string("b")}}, error));
  // A value that would not be UTF-8 in the file is refused, not written.
  document d = parse_ok("[[a]]\nname = \"x\"\n");
  cr_assert(!d.set("a", 0, "banner", value::string("\xc3("), error));
  expect_text(d, "[[a]]\nname = \"x\"\n");
}

Test(config_edit, mutated_files_never_crash_and_successful_edits_stay_valid) {
  // Deterministic mutations of the sample (byte flips, cuts, duplicated spans): whatever
  // parses must take every edit or refuse it, and an accepted edit must parse again.
  uint32_t seed = 12345;
  auto next = [&] { return seed = seed * 1103515245u + 12345u, (seed >> 8) & 0xFFFFFF; };
  const std::string alphabet = "[]{}\"'#=,.\n \\abc1";
  int parsed = 0;
  for (int round = 0; round < 1500; ++round) {
    std::string text = sample;
    for (uint32_t m = 0, n = 1 + next() % 4; m < n; ++m) {
      size_t at = next() % text.size();
      switch (next() % 3) {
        case 0: text[at] = alphabet[next() % alphabet.size()]; break;
        case 1: text.erase(at, next() % 8); break;
        default: text.insert(at, text.substr(next() % text.size(), next() % 12));
      }
      if (text.empty()) text = "x";
    }
    std::string error;
    auto d = document::parse(text, error);
    if (!d) continue;
    ++parsed;
    for (const char* kind : {"receive_connector", "send_connector", "server"}) {
      document copy = *d;
      if (copy.set(kind, 0, "tls.starttls", value::string("required"), error) ||
          copy.set(kind, 0, "name", value::string("n"), error) || copy.remove_key(kind, 0, "tls.key", error) ||
          copy.append(kind, {{"name", value::string("z")}}, error) || copy.remove(kind, 0, error)) {
        std::string again;
        cr_assert(document::parse(copy.text(), again).has_value(), "edited text does not parse: %s", again.c_str());
      }
    }
  }
  cr_assert(parsed > 100, "only %d mutations parsed: the test would not test much", parsed);
}

Test(config_edit, the_shipped_file_edits_and_still_loads) {
  std::string error;
  std::string text;
  {
    FILE* f = std::fopen(SLUICE_SOURCE_ROOT "/etc/sluice.toml", "rb");
    cr_assert(f != nullptr);
    char buf[4096];
    for (size_t n; (n = std::fread(buf, 1, sizeof buf, f)) > 0;) text.append(buf, n);
    std::fclose(f);
  }
  document d = parse_ok(text);
  size_t relay = index_of(d, "receive_connector", "Loopback relay");
  cr_assert(d.set("receive_connector", relay, "max_message_size", value::string("10MB"), error), "%s", error.c_str());
  cr_assert(d.set("receive_connector", relay, "tls.starttls", value::string("required"), error), "%s", error.c_str());
  cr_assert(d.remove("accepted_domain", index_of(d, "accepted_domain", "*.relay.sluice.test"), error), "%s", error.c_str());
  cr_assert(d.append("send_connector", {{"name", value::string("Partner")}, {"address_spaces", value::strings({"partner.example"})}},
                     error),
            "%s", error.c_str());
  auto loaded = sluice::config::load_string(d.text(), "sluice.toml", SLUICE_SOURCE_ROOT "/etc");
  cr_assert(loaded.ok(), "%s", loaded.error_text().c_str());
  const auto* rc = loaded.value->find_receive_connector("Loopback relay");
  cr_assert(rc && rc->max_message_size == 10u << 20 && rc->tls.starttls == sluice::config::starttls_mode::required);
  cr_assert_eq(loaded.value->accepted_domains.size(), 1u);
  cr_assert(loaded.value->find_send_connector("Partner") != nullptr);
  // Every comment line of the shipped file is still there, in order.
  size_t at = 0;
  for (size_t start = 0; start < text.size();) {
    size_t nl = text.find('\n', start);
    std::string line = text.substr(start, nl - start);
    start = nl == std::string::npos ? text.size() : nl + 1;
    if (line.rfind("#", 0) != 0 || line.find("relay.sluice.test") != std::string::npos) continue;
    at = d.text().find(line, at);
    cr_assert(at != std::string::npos, "comment lost: %s", line.c_str());
  }
}

Test(config_edit, numbers_are_written_as_toml_floats_that_read_back_the_same) {
  cr_assert_eq(value::number(0.5).toml(), "0.5");
  cr_assert_eq(value::number(2).toml(), "2.0", "a whole number is still a float: %s", value::number(2).toml().c_str());
  cr_assert_eq(value::number(1e-5).toml(), "1e-05");
  cr_assert_eq(value::number(1e21).toml(), "1e+21");
  // Set into a document, it is checked as parsed TOML like every edit.
  document d = parse_ok(sample);
  std::string error;
  cr_assert(d.set("send_connector", 0, "connection_rate", value::number(0.25), error), "%s", error.c_str());
  cr_assert(d.text().find("connection_rate = 0.25\n") != std::string::npos, "%s", d.text().c_str());
}
