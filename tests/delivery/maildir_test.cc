// maildir_test.cc: Maildir delivery on a real file system: files read back byte for byte, unique names,
// hostile addresses kept under the root, and every failure deferred with nothing left behind.
// Untrusted input: none (messages and addresses written here, hostile ones on purpose).
#include <criterion/criterion.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "../config/test_util.h"
#include "delivery/maildir.h"

namespace fs = std::filesystem;
using namespace sluice::delivery;
using sluice::config::test::scratch_dir;

namespace {

constexpr const char* default_template = "{root}/{domain}/{local}/Maildir";

// A Maildir root inside a scratch directory, so anything that escapes the root shows up
// beside it.
struct fixture {
  scratch_dir dir;
  std::string root = dir.path() + "/mail";
  maildir_target target{root, default_template};
  fixture() { fs::create_directory(root); }
};

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

std::vector<fs::path> files_in(const fs::path& dir) {
  std::vector<fs::path> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) out.push_back(e.path());
  return out;
}

// Every regular file under dir, at any depth.
std::vector<fs::path> all_files(const fs::path& dir) {
  std::vector<fs::path> out;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.is_regular_file()) out.push_back(e.path());
  return out;
}

std::string joined(const std::vector<std::string_view>& chunks) {
  std::string all;
  for (auto c : chunks) all += c;
  return all;
}

maildir_message message_to(std::vector<std::pair<uint32_t, std::string>> recipients,
                           const std::vector<std::string_view>& chunks, std::string from = "sender@example.org") {
  maildir_message m;
  m.queue_id = "0000018c2f3a4b5c01";
  m.mail_from = std::move(from);
  m.recipients = std::move(recipients);
  m.body = chunks;
  m.hostname = "mx.example.net";
  return m;
}

// The one file in <maildir>/new, after checking tmp/ is empty and cur/ exists.
fs::path only_new_file(const fs::path& maildir) {
  cr_assert(fs::is_directory(maildir / "cur"), "%s/cur", maildir.c_str());
  cr_assert(files_in(maildir / "tmp").empty(), "tmp/ of %s is not empty", maildir.c_str());
  auto fresh = files_in(maildir / "new");
  cr_assert_eq(fresh.size(), 1u, "%s/new holds %zu files", maildir.c_str(), fresh.size());
  return fresh.front();
}

}  // namespace

Test(maildir, file_holds_the_headers_then_the_content_byte_for_byte) {
  fixture f;
  std::vector<std::string_view> chunks = {"Subject: hi\r\nFrom: <sender@example.org>\r", "\n\r\nfirst line\r\n",
                                          ".leading dot stays\r\n", "last line\r\n"};
  auto m = message_to({{7, "Alice@Example.COM"}}, chunks);
  attempt_result r = deliver_to_maildirs(f.target, m);
  cr_assert(r.remote_mta == "maildir:" + f.root, "%s", r.remote_mta.c_str());
  cr_assert_eq(r.recipients.size(), 1u);
  cr_assert_eq(r.recipients[0].recipient, 7u);
  cr_assert(r.recipients[0].outcome == recipient_outcome::delivered, "%s", r.recipients[0].reply.text.c_str());
  cr_assert_eq(r.recipients[0].reply.code, 250);
  cr_assert_str_eq(r.recipients[0].reply.enhanced.c_str(), "2.0.0");
  // Domain lower-cased, local part as given.
  fs::path file = only_new_file(f.root + "/example.com/Alice/Maildir");
  std::string expected =
      "Return-Path: <sender@example.org>\r\nDelivered-To: Alice@Example.COM\r\n" + joined(chunks);
  cr_assert(slurp(file) == expected, "got:\n%s", slurp(file).c_str());
  cr_assert(r.recipients[0].reply.text.find(file.filename().string()) != std::string::npos, "%s",
            r.recipients[0].reply.text.c_str());
}

Test(maildir, a_one_mebibyte_body_in_uneven_chunks_is_intact) {
  fixture f;
  std::string big;
  for (int i = 0; big.size() < (1u << 20); ++i) big += "line " + std::to_string(i) + " of a large message\r\n";
  big.resize(1u << 20);
  std::vector<std::string_view> chunks;
  for (size_t at = 0; at < big.size(); at += 4097) chunks.push_back(std::string_view(big).substr(at, 4097));
  auto m = message_to({{0, "big@example.com"}}, chunks, "");
  attempt_result r = deliver_to_maildirs(f.target, m);
  cr_assert(r.recipients.at(0).outcome == recipient_outcome::delivered, "%s", r.recipients[0].reply.text.c_str());
  std::string got = slurp(only_new_file(f.root + "/example.com/big/Maildir"));
  std::string head = "Return-Path: <>\r\nDelivered-To: big@example.com\r\n";  // the null sender
  cr_assert_eq(got.size(), head.size() + big.size());
  cr_assert(got.compare(0, head.size(), head) == 0, "%.80s", got.c_str());
  cr_assert(got.compare(head.size(), std::string::npos, big) == 0);
}

Test(maildir, headers_take_the_line_end_of_the_first_line) {
  fixture f;
  std::vector<std::string_view> chunks = {"Subject: bare\n\nbody\r\n"};
  auto m = message_to({{0, "lf@example.com"}}, chunks);
  deliver_to_maildirs(f.target, m);
  std::string got = slurp(only_new_file(f.root + "/example.com/lf/Maildir"));
  cr_assert(got == "Return-Path: <sender@example.org>\nDelivered-To: lf@example.com\n" + joined(chunks), "%s",
            got.c_str());
}

Test(maildir, two_deliveries_of_one_message_get_two_names) {
  fixture f;
  std::vector<std::string_view> chunks = {"Subject: twice\r\n\r\nbody\r\n"};
  auto m = message_to({{3, "twice@example.com"}}, chunks);
  deliver_to_maildirs(f.target, m);
  deliver_to_maildirs(f.target, m);
  fs::path maildir = f.root + "/example.com/twice/Maildir";
  auto fresh = files_in(maildir / "new");
  cr_assert_eq(fresh.size(), 2u);
  cr_assert_neq(fresh[0].filename(), fresh[1].filename());
  for (const auto& p : fresh) {
    cr_assert(slurp(p) == "Return-Path: <sender@example.org>\r\nDelivered-To: twice@example.com\r\n" + joined(chunks));
    // The host is the last part of the name, as Maildir readers expect.
    std::string name = p.filename().string();
    cr_assert(name.ends_with(".mx.example.net"), "%s", name.c_str());
  }
  cr_assert(files_in(maildir / "tmp").empty());
}

// The engine may run several deliveries into one Maildir at once on the threadpool.
Test(maildir, concurrent_deliveries_into_one_maildir_all_land) {
  fixture f;
  std::vector<std::string_view> chunks = {"Subject: busy\r\n\r\nbody\r\n"};
  auto m = message_to({{0, "busy@example.com"}}, chunks);
  constexpr int threads = 4, each = 25;
  std::atomic<int> delivered{0};
  std::vector<std::thread> pool;
  for (int i = 0; i < threads; ++i)
    pool.emplace_back([&] {
      for (int j = 0; j < each; ++j)
        if (deliver_to_maildirs(f.target, m).recipients.at(0).outcome == recipient_outcome::delivered) ++delivered;
    });
  for (auto& t : pool) t.join();
  cr_assert_eq(delivered.load(), threads * each);
  fs::path maildir = f.root + "/example.com/busy/Maildir";
  cr_assert_eq(files_in(maildir / "new").size(), static_cast<size_t>(threads * each));
  cr_assert(files_in(maildir / "tmp").empty());
}

Test(maildir, hostile_local_parts_stay_under_the_root_and_apart) {
  fixture f;
  const std::vector<std::string> locals = {"../../etc", "a/b",  ".hidden", std::string("x\0y", 3), "%2F",
                                           "a%2Fb",     "..",   ".",       "",                      "x\ny",
                                           "\x7f",      "b\xc3\xbc" "cher"};
  const std::vector<std::string> expected = {"%2E.%2F..%2Fetc", "a%2Fb", "%2Ehidden", "x%00y", "%252F",
                                             "a%252Fb",         "%2E.",  "%2E",       "%",     "x%0Ay",
                                             "%7F",             "b\xc3\xbc" "cher"};
  std::set<std::string> dirs;
  std::vector<std::pair<uint32_t, std::string>> recipients;
  for (size_t i = 0; i < locals.size(); ++i) {
    std::string d = maildir_for(f.target, locals[i], "Example.COM");
    cr_assert(d == f.root + "/example.com/" + expected[i] + "/Maildir", "local #%zu: %s", i, d.c_str());
    std::string normal = fs::path(d).lexically_normal().string();
    cr_assert(normal.starts_with(f.root + "/example.com/"), "%s", normal.c_str());
    dirs.insert(normal);
    recipients.emplace_back(static_cast<uint32_t>(i), locals[i] + "@example.com");
  }
  cr_assert_eq(dirs.size(), locals.size(), "two addresses share a directory");
  // A hostile domain gets the same treatment.
  std::string hostile_domain = maildir_for(f.target, "u", "../x");
  cr_assert(hostile_domain == f.root + "/%2E.%2Fx/u/Maildir", "%s", hostile_domain.c_str());
  std::string no_domain = maildir_for({f.root, "{root}/{local}@{domain}"}, "u", "");
  cr_assert(no_domain == f.root + "/u@%", "%s", no_domain.c_str());

  std::vector<std::string_view> chunks = {"Subject: x\r\n\r\n"};
  auto m = message_to(recipients, chunks);
  attempt_result r = deliver_to_maildirs(f.target, m);
  for (const auto& rr : r.recipients)
    cr_assert(rr.outcome == recipient_outcome::delivered, "#%u: %s", rr.recipient, rr.reply.text.c_str());
  // Nothing beside the root, and one file in each recipient's own new/.
  auto beside = files_in(f.dir.path());
  cr_assert_eq(beside.size(), 1u, "something escaped the root");
  auto written = all_files(f.root);
  cr_assert_eq(written.size(), locals.size());
  for (size_t i = 0; i < locals.size(); ++i)
    only_new_file(f.root + "/example.com/" + expected[i] + "/Maildir");
}

Test(maildir, a_file_in_the_way_defers_and_writes_nothing) {
  fixture f;
  fs::create_directories(f.root + "/example.com/bob");
  std::string blocker = f.root + "/example.com/bob/Maildir";
  std::ofstream(blocker) << "not a directory";
  std::vector<std::string_view> chunks = {"Subject: x\r\n\r\nbody\r\n"};
  attempt_result r = deliver_to_maildirs(f.target, message_to({{0, "bob@example.com"}}, chunks));
  cr_assert_eq(r.recipients.size(), 1u);
  const recipient_result& rr = r.recipients[0];
  cr_assert(rr.outcome == recipient_outcome::deferred);
  cr_assert_eq(rr.reply.code, 451);
  cr_assert_str_eq(rr.reply.enhanced.c_str(), "4.3.0");
  cr_assert(rr.reply.text.find(blocker) != std::string::npos, "%s", rr.reply.text.c_str());
  cr_assert(rr.reply.text.find(std::strerror(ENOTDIR)) != std::string::npos, "%s", rr.reply.text.c_str());
  cr_assert(slurp(blocker) == "not a directory");
  auto written = all_files(f.root);
  cr_assert_eq(written.size(), 1u, "only the blocker should exist");
}

Test(maildir, one_recipient_failing_does_not_stop_the_next) {
  fixture f;
  fs::create_directories(f.root + "/example.com/bob");
  std::ofstream(f.root + "/example.com/bob/Maildir") << "x";
  std::vector<std::string_view> chunks = {"Subject: x\r\n\r\nbody\r\n"};
  attempt_result r =
      deliver_to_maildirs(f.target, message_to({{4, "bob@example.com"}, {9, "carol@example.com"}}, chunks));
  cr_assert_eq(r.recipients.size(), 2u);
  cr_assert_eq(r.recipients[0].recipient, 4u);
  cr_assert(r.recipients[0].outcome == recipient_outcome::deferred);
  cr_assert_eq(r.recipients[1].recipient, 9u);
  cr_assert(r.recipients[1].outcome == recipient_outcome::delivered, "%s", r.recipients[1].reply.text.c_str());
  std::string got = slurp(only_new_file(f.root + "/example.com/carol/Maildir"));
  cr_assert(got == "Return-Path: <sender@example.org>\r\nDelivered-To: carol@example.com\r\n" + joined(chunks));
}

Test(maildir, a_missing_root_is_not_created) {
  fixture f;
  maildir_target gone{f.dir.path() + "/unmounted", default_template};
  std::vector<std::string_view> chunks = {"Subject: x\r\n\r\n"};
  attempt_result r = deliver_to_maildirs(gone, message_to({{0, "u@example.com"}}, chunks));
  cr_assert(r.recipients.at(0).outcome == recipient_outcome::deferred);
  cr_assert_eq(r.recipients[0].reply.code, 451);
  cr_assert(r.recipients[0].reply.text.find(gone.root) != std::string::npos, "%s", r.recipients[0].reply.text.c_str());
  cr_assert_not(fs::exists(gone.root));
}

// A write that fails half way (here: the file size limit, EFBIG) removes its tmp/ file
// and puts nothing in new/.
Test(maildir, a_failed_write_leaves_no_file) {
  fixture f;
  std::signal(SIGXFSZ, SIG_IGN);
  rlimit limit{64 * 1024, 64 * 1024};
  cr_assert_eq(setrlimit(RLIMIT_FSIZE, &limit), 0);
  std::string big(1u << 20, 'x');
  std::vector<std::string_view> chunks = {"Subject: big\r\n\r\n", big};
  attempt_result r = deliver_to_maildirs(f.target, message_to({{0, "full@example.com"}}, chunks));
  const recipient_result& rr = r.recipients.at(0);
  cr_assert(rr.outcome == recipient_outcome::deferred);
  cr_assert_eq(rr.reply.code, 451);
  cr_assert_str_eq(rr.reply.enhanced.c_str(), "4.3.0");
  cr_assert(rr.reply.text.find(std::strerror(EFBIG)) != std::string::npos, "%s", rr.reply.text.c_str());
  fs::path maildir = f.root + "/example.com/full/Maildir";
  cr_assert(files_in(maildir / "tmp").empty(), "the tmp file was left behind");
  cr_assert(files_in(maildir / "new").empty());
}

// A full file system: 452 4.3.1, nothing left. Needs a small tmpfs, mounted in a mount
// namespace of this test's own process (Criterion runs each test in its own).
Test(maildir, a_full_file_system_defers_with_452) {
  fixture f;
  bool isolated = ::unshare(CLONE_NEWNS) == 0 || ::unshare(CLONE_NEWUSER | CLONE_NEWNS) == 0;
  if (!isolated || ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0 ||
      ::mount("tmpfs", f.root.c_str(), "tmpfs", 0, "size=128k") != 0) {
    cr_skip_test("cannot mount a tmpfs here: %s", std::strerror(errno));
  }
  std::string big(1u << 20, 'x');
  std::vector<std::string_view> chunks = {"Subject: big\r\n\r\n", big};
  attempt_result r = deliver_to_maildirs(f.target, message_to({{0, "full@example.com"}}, chunks));
  const recipient_result& rr = r.recipients.at(0);
  cr_assert(rr.outcome == recipient_outcome::deferred);
  cr_assert_eq(rr.reply.code, 452, "%d %s", rr.reply.code, rr.reply.text.c_str());
  cr_assert_str_eq(rr.reply.enhanced.c_str(), "4.3.1");
  cr_assert(rr.reply.text.find(std::strerror(ENOSPC)) != std::string::npos, "%s", rr.reply.text.c_str());
  fs::path maildir = f.root + "/example.com/full/Maildir";
  cr_assert(files_in(maildir / "tmp").empty(), "the tmp file was left behind");
  cr_assert(files_in(maildir / "new").empty());
  ::umount2(f.root.c_str(), MNT_DETACH);
}
