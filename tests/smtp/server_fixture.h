// server_fixture.h: the scripted delegate, sessions and split-transcript helpers the server tests share.
#pragma once
#include <criterion/criterion.h>

#include <random>
#include <string>
#include <vector>

#include "smtp/base64.h"
#include "smtp/dot_stuff.h"
#include "smtp/server.h"

namespace server_test {

using namespace sluice::smtp;
using namespace std::literals;


inline constexpr const char* queued = "250 2.6.0 <id> Queued mail for delivery\r\n";

class test_delegate final : public server_delegate {
 public:
  std::vector<std::string> commands, replies, bodies;
  std::vector<envelope> envelopes;
  std::vector<std::string> auth_calls;
  int submits_pending = 0;
  int tls_requests = 0;
  bool auth_async = false;  // answer AUTH later through server::auth_done()

  reply check_helo(std::string_view domain) override {
    if (domain == "bad.example") return {550, "5.7.1", "Go away"};
    return {250, "", ""};
  }
  reply check_mail(const envelope& env) override {
    if (env.mail_from == "spammer@bad.example") return {550, "5.7.1", "Sender rejected"};
    return {250, "2.1.0", "Sender OK"};
  }
  reply check_recipient(const envelope&, const recipient& rcpt) override {
    if (rcpt.address.starts_with("nobody@")) return {550, "5.1.1", "User unknown"};
    return {250, "", ""};
  }
  void submit(envelope& env, std::string& body) override {
    envelopes.push_back(env);
    bodies.push_back(std::move(body));
    ++submits_pending;
  }
  void start_tls() override { ++tls_requests; }
  reply check_auth(std::string_view mech, std::string_view authzid, std::string_view user,
                   std::string_view password) override {
    auth_calls.push_back(std::string(mech) + "|" + std::string(authzid) + "|" + std::string(user) + "|" +
                         std::string(password));
    if (auth_async) return {0, "", ""};
    if (user == "alice" && password == "secret") return {235, "", ""};
    return {535, "5.7.8", "Authentication credentials invalid"};
  }
  void on_command(std::string_view line) override { commands.emplace_back(line); }
  void on_reply(std::string_view text) override { replies.emplace_back(text); }
};

inline server_settings test_settings() {
  server_settings s;
  s.hostname = "mx.test";
  s.banner = "mx.test ESMTP test";
  return s;
}

// One session: feeds input, completes submits at once, collects output.
struct session {
  server_settings settings;
  test_delegate d;
  server srv;
  bool auto_submit = true;
  bool auto_tls = false;

  explicit session(server_settings s = test_settings()) : settings(std::move(s)), srv(settings, d) {}

  void pump() {
    while (auto_submit && d.submits_pending > 0) {
      --d.submits_pending;
      srv.submit_done({250, "2.6.0", "<id> Queued mail for delivery"});
    }
    if (auto_tls && d.tls_requests > 0) {
      d.tls_requests = 0;
      srv.tls_started();
    }
  }
  void feed(std::string_view in) {
    srv.feed(in);
    pump();
  }
  std::string take() {
    std::string o = srv.output();
    srv.consume_output(o.size());
    return o;
  }
  std::string run(std::string_view in) {
    feed(in);
    return take();
  }
};

inline std::string escaped(std::string_view in) {
  std::string out;
  for (char c : in) {
    if (c == '\r') out += "\\r";
    else if (c == '\n') out += "\\n\n";
    else if (c == '\0') out += "\\0";
    else out += c;
  }
  return out;
}

#define EXPECT_OUT(s, input, want)                                                              \
  do {                                                                                          \
    std::string got_ = (s).run(input);                                                          \
    std::string want_ = (want);                                                                 \
    cr_assert(got_ == want_, "input: %s\ngot:\n%s\nwant:\n%s", #input, escaped(got_).c_str(), \
              escaped(want_).c_str());                                                          \
  } while (0)

inline std::string ehlo_reply(bool starttls = false, bool auth = false) {
  std::string r = "250-mx.test\r\n250-PIPELINING\r\n250-SIZE 37748736\r\n250-8BITMIME\r\n"
                  "250-ENHANCEDSTATUSCODES\r\n250-DSN\r\n250-CHUNKING\r\n250-BINARYMIME\r\n";
  if (!starttls && !auth) return r + "250 SMTPUTF8\r\n";
  r += "250-SMTPUTF8\r\n";
  if (starttls && auth) return r + "250-STARTTLS\r\n250 AUTH PLAIN LOGIN\r\n";
  return r + (starttls ? "250 STARTTLS\r\n" : "250 AUTH PLAIN LOGIN\r\n");
}

// Everything observable from one run of a transcript.
struct outcome {
  std::string output;
  std::vector<std::string> bodies;
  std::vector<std::string> senders;
  std::vector<std::string> commands;
  bool closing;
};

inline outcome run_split(const server_settings& settings, std::string_view input, std::vector<size_t> cuts) {
  session s(settings);
  s.auto_tls = true;
  size_t at = 0;
  for (size_t cut : cuts) {
    s.feed(input.substr(at, cut - at));
    at = cut;
  }
  s.feed(input.substr(at));
  outcome o{s.take(), s.d.bodies, {}, s.d.commands, s.srv.closing()};
  for (auto& e : s.d.envelopes) o.senders.push_back(e.mail_from + ">" + std::to_string(e.recipients.size()));
  return o;
}

// Feeds the transcript whole, split at every single byte boundary, and one byte at
// a time; everything observable must be identical.
inline outcome check_split_invariance(const server_settings& settings, std::string_view input) {
  outcome whole = run_split(settings, input, {});
  auto same = [&](const outcome& o, const char* how, size_t where) {
    cr_assert_str_eq(o.output.c_str(), whole.output.c_str(), "%s %zu", how, where);
    cr_assert_eq(o.bodies, whole.bodies, "%s %zu", how, where);
    cr_assert_eq(o.senders, whole.senders, "%s %zu", how, where);
    cr_assert_eq(o.commands, whole.commands, "%s %zu", how, where);
    cr_assert_eq(o.closing, whole.closing, "%s %zu", how, where);
  };
  for (size_t k = 1; k < input.size(); ++k) same(run_split(settings, input, {k}), "split at", k);
  std::vector<size_t> every;
  for (size_t k = 1; k < input.size(); ++k) every.push_back(k);
  same(run_split(settings, input, every), "byte at a time", 0);
  return whole;
}


// Starts a transaction and feeds `content` as its DATA.
inline std::string one_message(session& s, std::string_view content) {
  s.run("MAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\nDATA\r\n");
  return s.run(content);
}

}  // namespace server_test
