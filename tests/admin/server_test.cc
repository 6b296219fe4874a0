// server_test.cc: the admin server on a real loop and Unix socket, driven by admin::call and raw sockets.
#include <criterion/criterion.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <future>
#include <string>
#include <thread>

#include "admin/client.h"
#include "admin/server.h"
#include "config/config.h"
#include "generation/route_config.h"
#include "net/loop.h"

using namespace sluice;

namespace {

struct scratch {
  std::string path;
  scratch() {
    char tmpl[] = "/tmp/sluice-admin-srv-XXXXXX";
    char* p = mkdtemp(tmpl);
    cr_assert(p != nullptr);
    path = p;
  }
  ~scratch() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
};

// An admin server on its own loop thread, as a worker would run it.
class running_server {
 public:
  explicit running_server(std::string path, admin::snapshot state = {}) : path_(std::move(path)) {
    std::promise<std::string> ready;
    auto f = ready.get_future();
    thread_ = std::thread([this, &ready, &state] {
      net::loop loop;
      admin::daemon_info info{"1.2.3", 2, 77, std::chrono::system_clock::now()};
      admin::server srv(loop, path_, info);
      srv.set_state(state);
      loop.on_stop([&] {
        srv.close();
        loop.halt();
      });
      std::string error = srv.listen();
      loop_ = &loop;
      ready.set_value(error);
      if (!error.empty()) return;
      loop.run();
    });
    error_ = f.get();
  }
  ~running_server() {
    if (error_.empty()) loop_->stop();
    thread_.join();
  }
  const std::string& error() const { return error_; }

 private:
  std::string path_;
  std::thread thread_;
  net::loop* loop_ = nullptr;
  std::string error_;
};

int connect_raw(const std::string& path) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::memcpy(a.sun_path, path.data(), path.size());
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// Everything the server sends until it closes or `until` has been seen.
std::string read_until(int fd, const std::string& until, int timeout_ms = 3000) {
  std::string out;
  char buf[4096];
  while (out.find(until) == std::string::npos) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, timeout_ms) <= 0) break;
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

}  // namespace

Test(admin_server, answers_status_over_the_socket) {
  scratch dir;
  std::string path = dir.path + "/admin.sock";
  running_server s(path);
  cr_assert(s.error().empty(), "%s", s.error().c_str());
  struct stat st {};
  cr_assert_eq(::stat(path.c_str(), &st), 0);
  cr_assert(S_ISSOCK(st.st_mode));
  cr_assert_eq(st.st_mode & 0777, 0600u, "mode %o", st.st_mode & 0777);

  auto r = admin::call(path, {"status"});
  cr_assert_eq(r.status, admin::call_status::ok, "%s", r.error.c_str());
  cr_assert(r.reply.ok);
  bool found = false;
  for (const auto& l : r.reply.lines) found = found || l == "version: 1.2.3";
  cr_assert(found);
  // No table in this snapshot: an error response, and the server keeps serving.
  r = admin::call(path, {"route", "test", "a@b.c"});
  cr_assert_eq(r.status, admin::call_status::ok);
  cr_assert(!r.reply.ok);
  r = admin::call(path, {"status"});
  cr_assert(r.reply.ok);
}

Test(admin_server, answers_from_the_state_the_worker_gave_it) {
  scratch dir;
  auto loaded = config::load_string(R"(
[server]
hostname = "mx.test"
queue_dir = "/tmp/unused/queue"
[[accepted_domain]]
name = "contoso.test"
[[receive_connector]]
name = "Default"
type = "internet"
bindings = ["127.0.0.1:2525"]
[[send_connector]]
name = "Internet"
address_spaces = ["*"]
)",
                                    "server.toml", dir.path);
  cr_assert(loaded.ok(), "%s", loaded.error_text().c_str());
  std::vector<std::string> errors;
  admin::snapshot state{loaded.value, generation::build_route_table(*loaded.value, errors), {}};
  cr_assert(state.routes != nullptr);
  std::string path = dir.path + "/admin.sock";
  running_server s(path, state);
  cr_assert(s.error().empty(), "%s", s.error().c_str());
  auto r = admin::call(path, {"route", "test", "x@fabrikam.test"});
  cr_assert_eq(r.status, admin::call_status::ok, "%s", r.error.c_str());
  cr_assert(r.reply.ok);
  bool found = false;
  for (const auto& l : r.reply.lines) found = found || l.find("send connector: Internet") != std::string::npos;
  cr_assert(found, "the answer comes from the table set_state() gave the server");
}

Test(admin_server, several_requests_on_one_connection_in_order) {
  scratch dir;
  std::string path = dir.path + "/admin.sock";
  running_server s(path);
  cr_assert(s.error().empty());
  int fd = connect_raw(path);
  cr_assert(fd >= 0);
  std::string req = "status\nnope\r\nhelp\n";
  cr_assert_eq(::write(fd, req.data(), req.size()), static_cast<ssize_t>(req.size()));
  std::string out = read_until(fd, "this list\n.\n");
  admin::response_decoder d;
  cr_assert_eq(d.feed(out), admin::response_decoder::state::complete, "%s", out.c_str());
  cr_assert(d.take().ok);
  cr_assert_eq(d.feed(""), admin::response_decoder::state::complete, "%s", out.c_str());
  admin::response second = d.take();
  cr_assert(!second.ok);
  cr_assert(second.error.find("unknown command 'nope'") != std::string::npos);
  cr_assert_eq(d.feed(""), admin::response_decoder::state::complete, "%s", out.c_str());
  cr_assert(d.take().ok);
  ::close(fd);
}

Test(admin_server, overlong_request_is_refused_and_dropped) {
  scratch dir;
  std::string path = dir.path + "/admin.sock";
  running_server s(path);
  cr_assert(s.error().empty());
  int fd = connect_raw(path);
  std::string junk(admin::max_request_line + 100, 'x');
  cr_assert_eq(::write(fd, junk.data(), junk.size()), static_cast<ssize_t>(junk.size()));
  std::string out = read_until(fd, "\n.\n");
  cr_assert(out.rfind("error request longer than", 0) == 0, "%s", out.c_str());
  char c;
  pollfd p{fd, POLLIN, 0};
  cr_assert(::poll(&p, 1, 3000) == 1);
  cr_assert_eq(::read(fd, &c, 1), 0, "the server hangs up");
  ::close(fd);
}

Test(admin_server, stale_socket_is_replaced_live_one_and_files_are_not) {
  scratch dir;
  std::string path = dir.path + "/admin.sock";
  {
    // A socket file nobody listens on, as a crashed daemon leaves it.
    int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::memcpy(a.sun_path, path.data(), path.size());
    cr_assert_eq(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    ::close(fd);
  }
  {
    running_server s(path);
    cr_assert(s.error().empty(), "stale socket not replaced: %s", s.error().c_str());
    running_server second(path);
    cr_assert(second.error().find("another process is listening") != std::string::npos, "%s",
              second.error().c_str());
    cr_assert_eq(admin::call(path, {"status"}).status, admin::call_status::ok, "the first keeps its socket");
  }
  cr_assert(!std::filesystem::exists(path), "close removes the socket file");

  std::ofstream(path) << "not a socket";
  running_server s(path);
  cr_assert(s.error().find("not a socket") != std::string::npos, "%s", s.error().c_str());
  cr_assert(std::filesystem::is_regular_file(path));
}

Test(admin_server, call_reports_not_running) {
  scratch dir;
  auto r = admin::call(dir.path + "/admin.sock", {"status"});
  cr_assert_eq(r.status, admin::call_status::not_running);
  cr_assert(r.error.find("sluiced is not running (no socket at " + dir.path + "/admin.sock)") != std::string::npos,
            "%s", r.error.c_str());
}
