// generation_test.cc: one build gives every part of a generation from the same load, or fails whole.
#include <criterion/criterion.h>
#include <filesystem>
#include <fstream>
#include <string>

#include "../config/test_util.h"
#include "config/config.h"
#include "generation/generation.h"
#include "log/tracking_log.h"

using namespace sluice;

namespace {

using scratch = config::test::scratch_dir;

// `extra` is appended to a config with two receive connectors (one protocol-logged), an
// accepted domain, a send connector and one transport rule, logging under dir/log.
std::shared_ptr<const config::config> load(const scratch& dir, const std::string& extra = "") {
  std::filesystem::create_directories(dir.path() + "/log");
  std::string text = R"(
[server]
hostname = "mx.test"
queue_dir = ")" + dir.path() + R"(/queue"
log_dir = ")" + dir.path() + R"(/log"

[[accepted_domain]]
name = "contoso.test"

[[receive_connector]]
name = "Default Frontend"
type = "internet"
bindings = ["127.0.0.1:2525"]
protocol_log = true

[[receive_connector]]
name = "Relay"
type = "internet"
bindings = ["127.0.0.1:2526"]

[[send_connector]]
name = "Internet"
address_spaces = ["*"]

[[transport_rule]]
name = "tag"
recipient_domain = ["contoso.test"]
add_header = { name = "X-Tag", value = "yes" }
)" + extra;
  auto loaded = config::load_string(text, "generation.toml", dir.path());
  if (!loaded.ok()) cr_assert_fail("config: %s", loaded.error_text().c_str());
  return loaded.value;
}

}  // namespace

Test(generation, every_part_comes_from_the_one_load) {
  scratch dir;
  auto cfg = load(dir);
  const auto at = std::chrono::system_clock::time_point(std::chrono::seconds(1'700'000'000));
  auto r = generation::build(cfg, 7, at);
  cr_assert(r, "%s", r.errors.empty() ? "" : r.errors.front().c_str());
  cr_assert_eq(r.failed, generation::failure::none);
  const generation::generation& g = *r.built;
  cr_assert_eq(g.number, 7u);
  cr_assert(g.loaded_at == at);
  cr_assert_eq(g.cfg, cfg);
  cr_assert(g.routes != nullptr);
  // The receiver answers RCPT from the very table the categorizer routes with, and
  // the admin socket shows it.
  cr_assert_eq(g.receive->cfg, cfg);
  cr_assert_eq(g.receive->routes, g.routes);
  cr_assert_eq(g.admin_view.cfg, cfg);
  cr_assert_eq(g.admin_view.routes, g.routes);
  cr_assert(g.admin_view.loaded_at == at);
  cr_assert_eq(g.rules->size(), 1u);
  cr_assert(g.routes->route_recipient("a@contoso.test", 0, 0).result == route::outcome::local_delivery);

  cr_assert_eq(g.receive->by_connector.size(), 2u);
  cr_assert_str_eq(g.receive->by_connector[0]->name.c_str(), "Default Frontend");
  cr_assert_str_eq(g.receive->by_connector[1]->name.c_str(), "Relay");
  cr_assert(g.receive->limits != nullptr);
  const auto& logged = g.receive->by_connector[0]->protocol_log;
  cr_assert(logged != nullptr);
  const std::string protocol_path = dir.path() + "/log/protocol/Default_Frontend.csv";
  cr_assert_str_eq(logged->path().c_str(), protocol_path.c_str());
  cr_assert(g.receive->by_connector[0]->tls != nullptr, "an internet connector offers STARTTLS");
  cr_assert_null(g.receive->by_connector[1]->protocol_log.get());
  const std::string tracking_path = dir.path() + "/log/tracking.csv";
  cr_assert_str_eq(g.tracking_log->path().c_str(), tracking_path.c_str());
  std::ifstream tracking(tracking_path);
  std::string first_line;
  std::getline(tracking, first_line);
  first_line += '\n';
  cr_assert_str_eq(first_line.c_str(), log::tracking_log_header(), "a new file starts with the header");
}

Test(generation, each_build_opens_its_own_files) {
  scratch dir;
  auto cfg = load(dir);
  auto first = generation::build(cfg, 1);
  auto second = generation::build(cfg, 2);
  cr_assert(first && second);
  cr_assert_neq(first.built->tracking_log, second.built->tracking_log);
  cr_assert_neq(first.built->receive, second.built->receive);
  cr_assert_neq(first.built->receive->limits.get(), second.built->receive->limits.get(),
                "each generation has its own view of the daemon's connection counts");
}

Test(generation, impossible_routes_fail_as_routes) {
  scratch dir;
  // The loader rejects a second connector of the same name; one made in code reaches
  // the route table's own check, which is what a build must report.
  auto bad = std::make_shared<config::config>(*load(dir));
  bad->send_connectors.push_back(bad->send_connectors.front());
  auto r = generation::build(bad, 2);
  cr_assert(!r);
  cr_assert_null(r.built.get());
  cr_assert_eq(r.failed, generation::failure::routes);
  cr_assert_eq(r.errors.size(), 1u);
  cr_assert(r.errors[0].find("name used twice") != std::string::npos, "%s", r.errors[0].c_str());
  cr_assert(!std::filesystem::exists(dir.path() + "/log/tracking.csv"), "a failed build opens no log file");
}

Test(generation, a_bad_credentials_file_fails_as_a_resource) {
  scratch dir;
  {
    std::ofstream out(dir.path() + "/creds.txt");
    out << "alice without a hash\n";
  }
  auto cfg = load(dir, R"(
[[receive_connector]]
name = "Submission"
type = "custom"
bindings = ["127.0.0.1:2587"]
auth = { credentials = "creds.txt", mechanisms = ["plain"] }
)");
  auto r = generation::build(cfg, 2);
  cr_assert(!r);
  cr_assert_eq(r.failed, generation::failure::resources);
  cr_assert_eq(r.errors.size(), 1u);
  cr_assert(r.errors[0].rfind("receive connector Submission: AUTH: ", 0) == 0, "%s", r.errors[0].c_str());
}

Test(generation, an_unwritable_log_dir_fails_as_a_resource) {
  scratch dir;
  auto cfg = load(dir);
  std::filesystem::remove_all(dir.path() + "/log");
  auto r = generation::build(cfg, 1);
  cr_assert(!r);
  cr_assert_eq(r.failed, generation::failure::resources);
  cr_assert(r.errors.at(0).find("tracking.csv") != std::string::npos, "%s", r.errors.at(0).c_str());
}
