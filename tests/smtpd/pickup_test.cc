// pickup_test.cc: the pickup directory scan on a real directory: queued files, .bad quarantine, the hop count.
#include <criterion/criterion.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "net/loop.h"
#include "smtpd/pickup.h"
#include "store/store.h"

using namespace sluice;
namespace fs = std::filesystem;

namespace {

struct pickup_dir {
  fs::path path;
  pickup_dir() {
    char tmpl[] = "/tmp/sluice-pickup-test-XXXXXX";
    cr_assert(mkdtemp(tmpl) != nullptr);
    path = tmpl;
  }
  ~pickup_dir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  void drop(const std::string& name, const std::string& content) const {
    std::ofstream(path / name, std::ios::binary) << content;
  }
};

std::string message_with_hops(int hops) {
  std::string m;
  for (int i = 0; i < hops; ++i) m += "Received: from hop" + std::to_string(i) + ".example by relay.example; x\n";
  return m + "From: robot@example.org\nTo: someone@example.net\nSubject: s\n\nbody\n";
}

}  // namespace

Test(smtpd_pickup_dir, looping_file_is_renamed_bad_and_good_one_is_queued) {
  pickup_dir dir;
  dir.drop("a-good.eml", message_with_hops(1));
  dir.drop("b-loop.eml", message_with_hops(4));
  net::loop l;
  smtpd::pickup_settings ps;
  ps.dir = dir.path.string();
  ps.hostname = "mx.sluice.test";
  ps.max_received_headers = 3;
  std::vector<store::submit_request*> submitted;
  smtpd::pickup p(l, ps, 0, [&](store::submit_request* r) {
    submitted.push_back(r);
    return true;
  });
  p.scan();
  cr_assert(fs::exists(dir.path / "b-loop.bad"), "a looping message is quarantined");
  cr_assert_not(fs::exists(dir.path / "b-loop.eml"));
  cr_assert_eq(submitted.size(), 1u);
  const std::string& body = submitted[0]->body;
  cr_assert(body.rfind("Received: from pickup directory\r\n\tby mx.sluice.test (sluice) with pickup id " +
                           submitted[0]->id.text() + "; ",
                       0) == 0,
            "%s", body.c_str());
  cr_assert(body.find("\r\nReceived: from hop0.example") != std::string::npos);

  // The good file stays until the store has it durably, then goes.
  cr_assert(fs::exists(dir.path / "a-good.eml"));
  submitted[0]->result = store::submit_status::ok;
  p.submitted(submitted[0]);
  cr_assert_not(fs::exists(dir.path / "a-good.eml"));
  cr_assert(p.idle());
}
