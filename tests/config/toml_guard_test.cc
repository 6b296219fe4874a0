// toml_guard_test.cc: text that toml++ 3.3 cannot be handed safely (issue 13) is refused with its line, by the
// loader, the editor and `sluicectl config check`; the valid TOML next to it is not.
// Untrusted input: none (the test's own files).
#include <criterion/criterion.h>

#include <cstdio>
#include <string>
#include <sys/wait.h>
#include <toml++/toml.h>

#include "config/config.h"
#include "config/edit.h"
#include "config/load_guard.h"
#include "test_util.h"

using namespace sluice::config;

namespace {

// The first lines are valid, so that a refusal names the line of the hazard, not line 1.
const std::string head = "[server]\nhostname = \"mx.test\"\n";

struct hazard_case {
  const char* text;  // after head
  int line;          // where the error must be
  const char* says;  // part of the message
};

// Each found by tests/fuzz (config, config_edit) with toml++'s assertions made to abort.
const hazard_case hazards[] = {
    {"[#x]\n", 3, "needs a name after \"[\", not '#'"},
    {"[[[\n", 3, "needs a name after \"[[\", not '['"},
    {"\n  [ =\n", 4, "not '='"},
    {"[\n", 3, "not the end of the line"},
    {"[[\x01]]\n", 3, "a control character (0x01)"},
    {"[\xC3\xA9t\xC3\xA9]\n", 3, "not '\xC3\xA9' (U+00E9)"},
    {"\xEF\xBB\xBE = 1\n", 3, "(U+FEFE) outside a string or comment"},
    {"max_message_size = 1 \xC3\xA9\n", 3, "(U+00E9) outside a string or comment"},
    {"[a] \xE3\x80\x81\n", 3, "(U+3001) outside a string or comment"},
    // A value that starts like a number is read ahead to its end, quotes included.
    {"max_message_size = 1ma\x01\"x=2mt\xC3\xA9\"\n", 3, "(U+00E9) in a value"},
    {"d = [ 1979-05-27 07\"\xC3\xA9\" ]\n", 3, "(U+00E9) in a value"},
    {"bindings = [}\n", 3, "'}' where an array's next value"},
    {"a = { b = [1, } }\n", 3, "'}' where an array's next value"},
    // Valid TOML, but toml++ 3.3 reaches __builtin_unreachable() on the "é".
    {"banner = \"\"\"x \\\n   \xC3\xA9t\xC3\xA9\"\"\"\n", 4, "begins a line continued by a line-ending backslash"},
    {"banner = \"\"\"x \\\xC3\xA9\"\"\"\n", 3, "after a backslash is not an escape"},
};

// Valid TOML that looks like the hazards: none of it may be refused.
const char* const valid[] = {
    "a = \"\xC3\xA9t\xC3\xA9 \xEF\xBB\xBE \xE3\x80\x81\" # comment: \xC3\xA9 [#x]\nb = '\xC3\xA9'\n",
    "a = [\n  [#x\n  1], # an array's comment\n  [[[2]]],\n  [ { k = \"\xC3\xA9\" } ],\n  [ +1 ],\n]\n",
    "a = \"\"\"\n[#x]\n[[[\n\xC3\xA9\n\"\"\"\nb = '''\n[\n\\\n\xC3\xA9'''\n",
    "a = \"\"\"x \\\n   y\xC3\xA9 \\\n\n  \\u00E9\"\"\"\nb = \"\"\"\\\\\xC3\xA9\"\"\"\n",
    "\xEF\xBB\xBF[server] # BOM\n[ \"quoted\" . 'key' ]\n[[ t ]]\n[\t\"\xC3\xA9\"\t]\n",
    "a = \"\"\"\"\"\"\nb = \"\"\"x\"\"\"\"\"\n[c]\n",
    "-1=\"\xC3\xA9\"\nd = 1979-05-27 07:32:00Z # \xC3\xA9\n"
    "e = [1,\"\xC3\xA9\", -2,\n# \xC3\xA9\n+3]\nf = { x = 1, y = \"\xC3\xA9\" }\n",
};

bool run_command(const std::string& cmd, std::string& output, int& status) {
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  if (p == nullptr) return false;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) output.append(buf, n);
  int st = pclose(p);
  status = WIFEXITED(st) ? WEXITSTATUS(st) : 128;
  return true;
}

}  // namespace

Test(toml_guard, the_loader_refuses_each_hazard_with_its_file_and_line) {
  for (const auto& h : hazards) {
    auto r = load_string(head + h.text, "etc/guard.toml", "/nonexistent");
    cr_assert_not(r.ok(), "accepted: %s", h.text);
    cr_assert_eq(r.errors.size(), 1u, "%s", r.error_text().c_str());
    const std::string where = "etc/guard.toml:" + std::to_string(h.line) + ":";
    cr_assert(r.error_text().starts_with(where), "%s: want %s", r.error_text().c_str(), where.c_str());
    cr_assert(r.errors[0].message.find(h.says) != std::string::npos, "%s: want '%s'", r.error_text().c_str(), h.says);
  }
}

Test(toml_guard, valid_toml_like_the_hazards_is_handed_to_toml) {
  for (const char* text : valid) {
    auto h = find_toml_hazard(text);
    cr_assert(!h, "refused (line %d: %s): %s", h ? h->line : 0, h ? h->message.c_str() : "", text);
    try {
      (void)toml::parse(text);
    } catch (const toml::parse_error& e) {
      cr_assert_fail("the case itself is not valid TOML (%s): %s", std::string(e.description()).c_str(), text);
    }
  }
  // And a real configuration with non-ASCII text where TOML allows it still loads.
  auto r = load_string(head + "# \xC3\xA9t\xC3\xA9\n[[receive_connector]]\nname = \"d\xC3\xA9" "faut\"\n"
                              "type = \"internet\"\nbindings = [\"127.0.0.1:2525\"]\nbanner = \"\"\"\\\n  hello\"\"\"\n",
                       "ok.toml", "/nonexistent");
  cr_assert(r.ok(), "%s", r.error_text().c_str());
  cr_assert(r.value->receive_connectors.at(0).name == "d\xC3\xA9" "faut");
  cr_assert(r.value->receive_connectors.at(0).banner == "hello", "%s", r.value->receive_connectors.at(0).banner.c_str());
}

Test(toml_guard, the_editor_refuses_a_hazard_before_toml_sees_it) {
  std::string error;
  for (const auto& h : hazards) {
    error.clear();
    auto doc = edit::document::parse(head + h.text, error);
    cr_assert(!doc, "accepted: %s", h.text);
    cr_assert(error.starts_with("line " + std::to_string(h.line) + ":"), "%s", error.c_str());
  }
}

Test(toml_guard, config_check_names_the_line) {
  test::scratch_dir dir;
  const std::string file = dir.write("bad.toml", head + "[#x]\n");
  std::string out;
  int status = 0;
  const std::string ctl = std::string(SLUICE_BUILD_ROOT) + "/tools/sluicectl/sluicectl";
  cr_assert(run_command(ctl + " config check " + file, out, status));
  cr_assert_neq(status, 0, "%s", out.c_str());
  cr_assert(out.find(file + ":3:") != std::string::npos, "%s", out.c_str());
  cr_assert(out.find("a table header needs a name after \"[\", not '#'") != std::string::npos, "%s", out.c_str());
  // sluicectl reading queue_dir from the same file refuses it too, rather than handing it to toml++.
  out.clear();
  cr_assert(run_command(ctl + " queue list --config " + file, out, status));
  cr_assert_neq(status, 0, "%s", out.c_str());
  cr_assert(out.find(file + ":3: a table header needs a name") != std::string::npos, "%s", out.c_str());
}
