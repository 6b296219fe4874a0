// protocol_test.cc: admin request quoting, response framing and command dispatch (no sockets).
#include <criterion/criterion.h>

#include <string>
#include <vector>

#include "admin/commands.h"
#include "admin/protocol.h"
#include "generation/route_config.h"

using namespace sluice;
using namespace sluice::admin;

namespace {

bool any_line_has(const std::vector<std::string>& lines, const std::string& a, const std::string& b = "") {
  for (const auto& l : lines)
    if (l.find(a) != std::string::npos && l.find(b) != std::string::npos) return true;
  return false;
}

std::string joined(const std::vector<std::string>& lines) {
  std::string out;
  for (const auto& l : lines) out += l + "\n";
  return out;
}

// A snapshot from a small config, and a context over it.
struct fixture {
  snapshot snap;
  daemon_info info{"9.9.9", 3, 4242, std::chrono::system_clock::time_point(std::chrono::seconds(1'000'000))};
  command_table table = default_commands();

  fixture() {
    auto loaded = config::load_string(R"(
[server]
hostname = "mx.test"
queue_dir = "/tmp/q/queue"
max_message_size = "10MB"
[[accepted_domain]]
name = "contoso.com"
[[receive_connector]]
name = "Small"
type = "internet"
bindings = ["127.0.0.1:2525"]
max_message_size = 1000
[[send_connector]]
name = "Internet"
address_spaces = ["*"]
)",
                                      "admin.toml", "/nonexistent");
    if (!loaded.ok()) cr_assert_fail("config: %s", loaded.error_text().c_str());
    snap.cfg = loaded.value;
    std::vector<std::string> errors;
    snap.routes = generation::build_route_table(*snap.cfg, errors);
    cr_assert(snap.routes != nullptr);
    snap.loaded_at = info.started_at + std::chrono::seconds(5);
  }
  response run(std::string_view line) {
    context ctx{snap, info, info.started_at + std::chrono::seconds(3725)};
    return table.dispatch(line, ctx);
  }
};

}  // namespace

Test(admin_protocol, splits_words_on_blanks) {
  auto r = parse_request("  route\ttest   alice@contoso.com  ");
  cr_assert(r.ok());
  cr_assert_eq(r.words.size(), 3u);
  cr_assert_str_eq(r.words[0].c_str(), "route");
  cr_assert_str_eq(r.words[2].c_str(), "alice@contoso.com");
}

Test(admin_protocol, quotes_group_and_escape) {
  auto r = parse_request(R"(route test "\"john doe\"@contoso.com" 'a\b c' x\ y "" pre"mid"post)");
  cr_assert(r.ok(), "%s", r.error.c_str());
  cr_assert_eq(r.words.size(), 7u);
  cr_assert_str_eq(r.words[2].c_str(), "\"john doe\"@contoso.com");
  cr_assert_str_eq(r.words[3].c_str(), "a\\b c", "single quotes are literal");
  cr_assert_str_eq(r.words[4].c_str(), "x y");
  cr_assert_str_eq(r.words[5].c_str(), "", "an empty quoted word is a word");
  cr_assert_str_eq(r.words[6].c_str(), "premidpost");
}

Test(admin_protocol, refuses_malformed_requests) {
  cr_assert(!parse_request("").ok());
  cr_assert(!parse_request("   ").ok());
  cr_assert(!parse_request("route \"open").ok());
  cr_assert(!parse_request("route 'open").ok());
  cr_assert(!parse_request("route \"ends in backslash\\").ok());
  cr_assert(!parse_request("route test\\").ok());
  cr_assert(!parse_request(std::string("route\0test", 10)).ok(), "NUL");
  cr_assert(!parse_request("route \"a\rb\"").ok(), "CR inside quotes");
  cr_assert(!parse_request("route\x1b[2Jtest").ok(), "escape sequence");
  cr_assert(!parse_request(std::string(max_request_line + 1, 'a')).ok());
  std::string many;
  for (size_t i = 0; i <= max_request_words; ++i) many += "w ";
  cr_assert(!parse_request(many).ok());
  auto r = parse_request("a \"b");
  cr_assert(r.words.empty(), "no partial words on error");
}

Test(admin_protocol, quote_word_round_trips) {
  const std::vector<std::string> words = {"plain",     "a b",          "\"q\"",   "back\\slash", "",
                                          "tab\there", "it's",         "--size",  "é@exemple.fr",
                                          "x=1",       "\"john doe\"@x", "'single'"};
  std::string line = format_request(words);
  cr_assert_eq(line.back(), '\n');
  line.pop_back();
  auto r = parse_request(line);
  cr_assert(r.ok(), "%s: %s", line.c_str(), r.error.c_str());
  cr_assert_eq(r.words.size(), words.size(), "%s", line.c_str());
  for (size_t i = 0; i < words.size(); ++i) cr_assert_str_eq(r.words[i].c_str(), words[i].c_str());
  std::string plain = quote_word("alice@contoso.com");
  cr_assert_str_eq(plain.c_str(), "alice@contoso.com", "plain words stay unquoted");
}

Test(admin_protocol, response_framing_round_trips_and_dot_stuffs) {
  response r;
  r.add("first");
  r.add(".hidden");
  r.add(".");
  r.add("two\nlines\r");
  r.add("");
  std::string wire = encode_response(r);
  cr_assert_str_eq(wire.c_str(), "ok\nfirst\n..hidden\n..\ntwo\nlines\n\n.\n");

  response_decoder d;
  // Byte by byte: the decoder must not depend on how reads are split.
  response_decoder::state st = response_decoder::state::need_more;
  for (size_t i = 0; i < wire.size(); ++i) {
    cr_assert_eq(st, response_decoder::state::need_more, "complete too early at %zu", i);
    st = d.feed(std::string_view(&wire[i], 1));
  }
  cr_assert_eq(st, response_decoder::state::complete);
  response back = d.take();
  cr_assert(back.ok);
  cr_assert_eq(back.lines.size(), 6u);
  cr_assert_str_eq(back.lines[1].c_str(), ".hidden");
  cr_assert_str_eq(back.lines[2].c_str(), ".");
  cr_assert_str_eq(back.lines[3].c_str(), "two");
  cr_assert_str_eq(back.lines[4].c_str(), "lines");
  cr_assert_str_eq(back.lines[5].c_str(), "");
}

Test(admin_protocol, error_status_is_one_line) {
  std::string wire = encode_response(response::failure("bad\nthing", {"usage: x"}));
  cr_assert_str_eq(wire.c_str(), "error bad thing\nusage: x\n.\n");
  response_decoder d;
  cr_assert_eq(d.feed(wire), response_decoder::state::complete);
  response back = d.take();
  cr_assert(!back.ok);
  cr_assert_str_eq(back.error.c_str(), "bad thing");
  cr_assert_eq(back.lines.size(), 1u);
}

Test(admin_protocol, decoder_handles_pipelined_and_malformed) {
  response_decoder d;
  cr_assert_eq(d.feed("ok\na\n.\nerror no\n.\n"), response_decoder::state::complete);
  response first = d.take();
  cr_assert(first.ok);
  cr_assert_eq(first.lines.size(), 1u);
  cr_assert_eq(d.feed(""), response_decoder::state::complete, "the second response was already buffered");
  response second = d.take();
  cr_assert(!second.ok);
  cr_assert_str_eq(second.error.c_str(), "no");

  response_decoder bad;
  cr_assert_eq(bad.feed("HTTP/1.1 200 OK\r\n"), response_decoder::state::malformed);
  cr_assert(!bad.problem().empty());
}

Test(admin_protocol, socket_path_is_beside_the_queue) {
  std::string a = socket_path_for("/var/spool/sluice/queue");
  cr_assert_str_eq(a.c_str(), "/var/spool/sluice/admin.sock");
  std::string b = socket_path_for("./var/queue/");
  cr_assert_str_eq(b.c_str(), "./var/admin.sock");
  std::string c = socket_path_for("queue");
  cr_assert_str_eq(c.c_str(), "admin.sock");
}

Test(admin_dispatch, unknown_command_and_subcommand) {
  fixture f;
  response r = f.run("frobnicate now");
  cr_assert(!r.ok);
  cr_assert(r.error.find("unknown command 'frobnicate'") != std::string::npos, "%s", r.error.c_str());
  r = f.run("route explode x");
  cr_assert(!r.ok);
  cr_assert(r.error.find("unknown command 'route explode'") != std::string::npos, "%s", r.error.c_str());
  cr_assert(any_line_has(r.lines, "usage: route test <address>"));
  r = f.run("route");
  cr_assert(!r.ok);
  cr_assert(r.error.find("needs a subcommand") != std::string::npos, "%s", r.error.c_str());
  r = f.run("route \"unterminated");
  cr_assert(!r.ok);
  cr_assert(r.error.find("unterminated") != std::string::npos);
}

Test(admin_dispatch, bad_arguments_are_refused_before_apply) {
  fixture f;
  response r = f.run("route test");
  cr_assert(!r.ok);
  cr_assert_str_eq(r.error.c_str(), "missing arguments");
  cr_assert(any_line_has(r.lines, "usage: route test"));
  r = f.run("route test a@b.c d@e.f");
  cr_assert_str_eq(r.error.c_str(), "too many arguments");
  r = f.run("route test a@b.c --size");
  cr_assert(r.error.find("needs a value") != std::string::npos, "%s", r.error.c_str());
  r = f.run("route test a@b.c --size 12x");
  cr_assert(r.error.find("not a size") != std::string::npos, "%s", r.error.c_str());
  r = f.run("route test a@b.c --color red");
  cr_assert(r.error.find("unknown option '--color'") != std::string::npos, "%s", r.error.c_str());
  r = f.run("route test ''");
  cr_assert(r.error.find("empty") != std::string::npos, "%s", r.error.c_str());
  r = f.run("status extra");
  cr_assert_str_eq(r.error.c_str(), "too many arguments");
  r = f.run("route test a@b.c --receive-connector Nope");
  cr_assert(!r.ok);
  cr_assert(r.error.find("no receive connector named 'Nope'") != std::string::npos, "%s", r.error.c_str());
}

Test(admin_dispatch, route_test_explains_the_live_table) {
  fixture f;
  response r = f.run("ROUTE Test someone@fabrikam.test --size=2MB");
  cr_assert(r.ok, "%s", r.error.c_str());
  cr_assert(any_line_has(r.lines, "send connector: Internet", "address space *"), "%s", joined(r.lines).c_str());
  cr_assert(any_line_has(r.lines, "outcome: remote via dns:Internet:fabrikam.test"), "%s", joined(r.lines).c_str());
  // Options may come before the positional argument, and -- protects a leading dash.
  r = f.run("route test --size 20MB someone@fabrikam.test");
  cr_assert(any_line_has(r.lines, "outcome: too_big", "5.3.4"), "%s", joined(r.lines).c_str());
  r = f.run("route test someone@contoso.com --size 2000 --receive-connector Small");
  cr_assert(any_line_has(r.lines, "size limit: 1000", "receive connector"), "%s", joined(r.lines).c_str());
  cr_assert(any_line_has(r.lines, "outcome: too_big"), "%s", joined(r.lines).c_str());
  r = f.run("route test -- --odd@contoso.com");
  cr_assert(r.ok);
  cr_assert(any_line_has(r.lines, "--odd@contoso.com"), "%s", joined(r.lines).c_str());
}

Test(admin_dispatch, status_and_config) {
  fixture f;
  response r = f.run("status");
  cr_assert(r.ok);
  cr_assert(any_line_has(r.lines, "version: 9.9.9"));
  cr_assert(any_line_has(r.lines, "workers: 3"));
  cr_assert(any_line_has(r.lines, "pid: 4242"));
  cr_assert(any_line_has(r.lines, "uptime: 1h02m", "(3725s)"), "%s", joined(r.lines).c_str());
  cr_assert(any_line_has(r.lines, "started: 1970-01-12T13:46:40Z"), "%s", joined(r.lines).c_str());
  r = f.run("config");
  cr_assert(r.ok);
  cr_assert(any_line_has(r.lines, "file: admin.toml"), "%s", joined(r.lines).c_str());
  cr_assert(any_line_has(r.lines, "loaded: 1970-01-12T13:46:45Z", "(1h02m ago)"), "%s", joined(r.lines).c_str());
  cr_assert(any_line_has(r.lines, "send connectors: 1"));
  r = f.run("help");
  cr_assert(any_line_has(r.lines, "route test <address>"));
  cr_assert(any_line_has(r.lines, "status"));
}

Test(admin_dispatch, no_table_is_an_error_not_a_crash) {
  fixture f;
  f.snap = snapshot{};
  response r = f.run("route test a@b.c");
  cr_assert(!r.ok);
  r = f.run("config");
  cr_assert(!r.ok);
  r = f.run("status");
  cr_assert(r.ok);
}

Test(admin_format, durations) {
  using std::chrono::seconds;
  std::string a = format_duration(seconds(42)), b = format_duration(seconds(307)),
              c = format_duration(seconds(3 * 3600 + 120)), d = format_duration(seconds(2 * 86400 + 4 * 3600));
  cr_assert_str_eq(a.c_str(), "42s");
  cr_assert_str_eq(b.c_str(), "5m07s");
  cr_assert_str_eq(c.c_str(), "3h02m");
  cr_assert_str_eq(d.c_str(), "2d04h");
}

// Found by tests/fuzz/admin: CRs are dropped after the dot-stuffing decision, so a line
// "\r." (text from a remote server's reply, say) came out as the "." terminator and the
// rest of the response was read as the next one.
Test(admin_protocol, cr_before_dot_cannot_forge_the_terminator) {
  response r;
  r.add("\r.");
  r.add("\r\r.e");
  r.add("after");
  std::string wire = encode_response(r);
  response_decoder d;
  cr_assert(d.feed(wire) == response_decoder::state::complete);
  response back = d.take();
  cr_assert(back.ok);
  cr_assert_eq(back.lines.size(), 3u);
  cr_assert(back.lines[0] == ".");
  cr_assert(back.lines[1] == ".e");
  cr_assert(back.lines[2] == "after");
}
