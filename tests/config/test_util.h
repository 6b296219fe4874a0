// test_util.h: helpers for config tests: scratch directories and error assertions.
#pragma once
#include <criterion/criterion.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "config/config.h"

namespace sluice::config::test {

// A fresh directory under /tmp, removed when the object goes out of scope.
class scratch_dir {
 public:
  scratch_dir() {
    char tmpl[] = "/tmp/sluice-config-test-XXXXXX";
    char* p = mkdtemp(tmpl);
    cr_assert(p != nullptr, "mkdtemp failed");
    path_ = p;
  }
  ~scratch_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  scratch_dir(const scratch_dir&) = delete;
  scratch_dir& operator=(const scratch_dir&) = delete;

  const std::string& path() const { return path_; }
  std::string write(const std::string& name, const std::string& content) const {
    std::string full = path_ + "/" + name;
    std::ofstream out(full, std::ios::binary);
    out << content;
    return full;
  }

 private:
  std::string path_;
};

inline load_result load(const std::string& text, const std::string& base_dir = "/nonexistent") {
  return load_string(text, "test.toml", base_dir);
}

inline std::shared_ptr<const config> load_ok(const std::string& text, const std::string& base_dir = "/nonexistent") {
  load_result r = load(text, base_dir);
  if (!r.ok()) {
    std::string all = r.error_text();
    cr_assert_fail("expected the configuration to load, got:\n%s", all.c_str());
  }
  return r.value;
}

// Loads text, expects failure, and checks that the first error is at line/key and that
// its message contains fragment and its text form is "test.toml:LINE:COL: KEY: ...".
inline config_error expect_error(const std::string& text, int line, const char* key, const char* fragment,
                                 const std::string& base_dir = "/nonexistent") {
  load_result r = load(text, base_dir);
  cr_assert(!r.ok(), "expected an error about %s", key);
  config_error e = r.error();
  std::string all = r.error_text();
  cr_assert_eq(e.line, line, "line: %s", all.c_str());
  cr_assert(e.column > 0, "column: %s", all.c_str());
  cr_assert_str_eq(e.key.c_str(), key, "%s", all.c_str());
  cr_assert(e.message.find(fragment) != std::string::npos, "message lacks '%s': %s", fragment, all.c_str());
  std::string text_form = e.to_string();
  std::string prefix = "test.toml:" + std::to_string(line) + ":" + std::to_string(e.column) + ": " + key + ": ";
  cr_assert(text_form.rfind(prefix, 0) == 0, "'%s' should start with '%s'", text_form.c_str(), prefix.c_str());
  return e;
}

}  // namespace sluice::config::test
