// session_test.cc: smtpd::session over loopback sockets with a fake session_host: replies, submit, hop count, STARTTLS,
// the in-flight memory budget and shutdown.
#include <criterion/criterion.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "../tls/tls_fixture.h"
#include "../net/run_until.h"
#include "auth/limiter.h"
#include "net/connection.h"
#include "smtpd/session.h"
#include "store/store.h"
#include "stream/stream.h"

using namespace sluice;

namespace {

// The worker's services, recorded: the test plays the store by calling submitted().
struct fake_host : smtpd::session_host {
  net::loop& l;
  base::queue_id_generator ids{7};
  auth::failure_limiter limiter{{}};
  std::vector<store::submit_request*> submits;
  std::vector<std::string> protocol_log;
  std::vector<std::string> tracked_ids;  // the records' views die with the call: keep copies
  bool retired = false;
  bool queue_full = false;

  explicit fake_host(net::loop& loop) : l(loop) {}
  net::loop& event_loop() override { return l; }
  base::queue_id next_queue_id() override { return ids.next(); }
  bool submit(store::submit_request* request) override {
    if (queue_full) return false;
    submits.push_back(request);
    return true;
  }
  smtp::reply check_recipient(const smtpd::connector_policy&, bool, const smtp::recipient& rcpt, uint64_t) override {
    if (rcpt.address.rfind("nobody@", 0) == 0) return {550, "5.1.1", "User unknown"};
    return {250, "2.1.5", "Recipient OK"};
  }
  void log_protocol(const smtpd::connector_policy&, uint64_t, uint32_t, std::string_view, std::string_view,
                    log::event, std::string_view data) override {
    protocol_log.emplace_back(data);
  }
  void track(const log::tracking_record& record) override {
    tracked_ids.emplace_back(record.queue_id);
  }
  auth::failure_limiter& auth_limiter(const smtpd::connector_policy&) override { return limiter; }
  void retire(smtpd::session*) override { retired = true; }
  smtpd::in_flight_budget* budget = nullptr;
  smtpd::in_flight_budget* content_budget() override { return budget; }
};

// The client end: a stream that collects what the session says.
struct client_side : stream::stream_handler {
  std::unique_ptr<stream::byte_stream> s;
  std::string replies;
  bool ended = false;
  std::function<void()> on_reply;
  void on_input(std::string_view data) override {
    replies.append(data);
    if (on_reply) on_reply();
  }
  void on_end(stream::end_reason, std::string_view) override {
    ended = true;
    s->close();
  }
  void say(std::string_view text) { s->send(text); }
  bool has(std::string_view text) const { return replies.find(text) != std::string::npos; }
};

struct fixture {
  net::loop l;
  fake_host host{l};
  std::shared_ptr<smtpd::connector_policy> policy = std::make_shared<smtpd::connector_policy>();
  std::unique_ptr<smtpd::session> session;
  client_side client;
  net::listener lis{l, [this](std::unique_ptr<net::connection> c) {
                      session = std::make_unique<smtpd::session>(host, std::move(c), policy, 1);
                      session->start();
                    }};

  fixture() {
    policy->name = "default";
    policy->smtp.hostname = "mx.sluice.test";
    policy->max_received_headers = 3;
  }
  void connect() {
    net::endpoint where;
    cr_assert(net::endpoint::parse("127.0.0.1:0", where));
    cr_assert_eq(lis.listen(where), 0);
    stream::byte_stream::connect(l, lis.bound(), [this](std::unique_ptr<stream::byte_stream> s, std::string_view e) {
      cr_assert(s != nullptr, "%.*s", int(e.size()), e.data());
      client.s = std::move(s);
      client.s->start(client);
    });
  }
  void run_until(const std::function<bool()>& done) { net_test::run_until(l, done); }
  // Sends `text` and waits until the replies hold `expect`.
  void exchange(std::string_view text, std::string_view expect) {
    client.say(text);
    run_until([&] { return client.has(expect); });
    cr_assert(client.has(expect), "after %.*s: no %.*s in:\n%s", int(text.size()), text.data(), int(expect.size()),
              expect.data(), client.replies.c_str());
  }
};

}  // namespace

Test(smtpd_session, greeting_ehlo_submit_and_250_after_the_store) {
  fixture f;
  f.connect();
  f.run_until([&] { return f.client.has("\r\n"); });
  cr_assert(f.client.replies.rfind("220 mx.sluice.test", 0) == 0, "%s", f.client.replies.c_str());
  f.exchange("EHLO client.test\r\n", "250 ");
  cr_assert(f.client.has("250-mx.sluice.test"), "%s", f.client.replies.c_str());
  cr_assert(f.client.has("PIPELINING"));
  f.exchange("MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\nDATA\r\n", "354 ");
  f.client.replies.clear();
  f.client.say("Received: from earlier.example by relay.example; x\r\nSubject: hi\r\n\r\nbody\r\n.\r\n");
  f.run_until([&] { return !f.host.submits.empty(); });
  cr_assert_eq(f.host.submits.size(), 1u);
  store::submit_request& req = *f.host.submits[0];
  cr_assert(req.body.rfind("Received: from client.test ([127.0.0.1])\r\n\tby mx.sluice.test (sluice) with ESMTP id " +
                               req.id.text() + "\r\n\tfor <b@example.net>; ",
                           0) == 0,
            "%s", req.body.c_str());
  cr_assert(req.body.find("\r\nReceived: from earlier.example") != std::string::npos, "the old trace follows ours");
  cr_assert_eq(req.envelope.mail_from, "a@example.org");
  cr_assert_eq(req.connector, "default");
  cr_assert_eq(req.client_address, "127.0.0.1");

  // Nothing is acknowledged before the store has the message.
  bool waited = false;
  net::timer settle(f.l);
  settle.start(50, 0, [&] { waited = true; });
  f.run_until([&] { return waited; });
  cr_assert(f.client.replies.empty(), "250 before the store answered: %s", f.client.replies.c_str());

  req.result = store::submit_status::ok;
  f.session->submitted(&req);
  f.run_until([&] { return f.client.has("\r\n"); });
  std::string want = "250 2.6.0 <" + req.id.text() + "> Queued mail for delivery\r\n";
  cr_assert_str_eq(f.client.replies.c_str(), want.c_str());
  cr_assert_eq(f.host.tracked_ids.size(), 1u);
  cr_assert_eq(f.host.tracked_ids[0], req.id.text());

  f.exchange("QUIT\r\n", "221 ");
  f.run_until([&] { return f.client.ended && f.host.retired; });
  cr_assert(f.client.ended && f.host.retired);
}

Test(smtpd_session, store_failure_and_busy_queue_are_temporary) {
  fixture f;
  f.connect();
  f.run_until([&] { return f.client.has("220 "); });
  f.exchange("EHLO client.test\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\nDATA\r\n", "354 ");
  f.client.say("Subject: s\r\n\r\nb\r\n.\r\n");
  f.run_until([&] { return !f.host.submits.empty(); });
  f.host.submits[0]->result = store::submit_status::storage_full;
  f.session->submitted(f.host.submits[0]);
  f.run_until([&] { return f.client.has("452 4.3.1"); });
  cr_assert(f.client.has("452 4.3.1 Insufficient system storage"), "%s", f.client.replies.c_str());

  f.host.queue_full = true;
  f.exchange("MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\nDATA\r\n", "354 ");
  f.exchange("Subject: s\r\n\r\nb\r\n.\r\n", "451 4.3.0 Queue busy");
}

Test(smtpd_session, hop_count_refuses_a_looping_message) {
  fixture f;  // max_received_headers = 3
  f.connect();
  f.run_until([&] { return f.client.has("220 "); });
  f.exchange("EHLO client.test\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\nDATA\r\n", "354 ");
  f.exchange("Received: a\r\nReceived: b\r\nreceived: c\r\n\r\nloop\r\n.\r\n", "554 5.4.6");
  cr_assert(f.host.submits.empty(), "a looping message never reaches the store");
  // Two hops is fine: ours makes three.
  f.exchange("MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\nDATA\r\n", "354 ");
  f.client.say("Received: a\r\nReceived: b\r\n\r\nok\r\n.\r\n");
  f.run_until([&] { return !f.host.submits.empty(); });
  cr_assert_eq(f.host.submits.size(), 1u);
}

Test(smtpd_session, starttls_then_a_message_records_tls_in_received) {
  tls_test::temp_dir dir;
  sluice::tls::server_options so;
  so.pair = tls_test::store(dir, "mx", tls_test::issue("mx.sluice.test", {"mx.sluice.test"}));
  fixture f;
  f.policy->tls = tls_test::server_ctx(so);
  f.policy->smtp.starttls_offered = true;
  auto client_ctx = tls_test::client_ctx({});
  f.connect();
  f.run_until([&] { return f.client.has("220 "); });
  f.exchange("EHLO client.test\r\n", "250 ");
  cr_assert(f.client.has("STARTTLS"), "%s", f.client.replies.c_str());
  // Pipelined plaintext after STARTTLS must be thrown away (CVE-2011-0411).
  f.exchange("STARTTLS\r\nMAIL FROM:<injected@evil.test>\r\n", "220 ");
  f.client.replies.clear();
  f.client.s->start_tls(client_ctx, "mx.sluice.test");
  f.exchange("EHLO client.test\r\n", "250 ");
  cr_assert(f.client.s->secured());
  cr_assert(!f.client.has("STARTTLS"), "not offered twice: %s", f.client.replies.c_str());
  f.exchange("MAIL FROM:<a@example.org>\r\n", "250 2.1.0");
  f.exchange("RCPT TO:<b@example.net>\r\nDATA\r\n", "354 ");
  f.client.say("Subject: s\r\n\r\nb\r\n.\r\n");
  f.run_until([&] { return !f.host.submits.empty(); });
  cr_assert_eq(f.host.submits.size(), 1u);
  const std::string& body = f.host.submits[0]->body;
  cr_assert(body.find("with ESMTPS\r\n\t(version=TLSv1.3 cipher=") != std::string::npos, "%s", body.c_str());
  cr_assert_eq(f.host.submits[0]->envelope.mail_from, "a@example.org");
  f.host.submits[0]->result = store::submit_status::ok;
  f.session->submitted(f.host.submits[0]);
  f.run_until([&] { return f.client.has("250 2.6.0"); });
  cr_assert(f.client.has("250 2.6.0"));
}

// Message bytes are charged to the daemon's budget while they arrive and until the store
// is done with them; a message that does not fit is refused with 452 4.3.1 and gives
// its bytes back, and the same session can then send one that fits.
Test(smtpd_session, in_flight_budget_refuses_what_does_not_fit) {
  smtpd::in_flight_budget budget(256 * 1024);
  fixture f;
  f.host.budget = &budget;
  f.connect();
  f.run_until([&] { return f.client.has("220 "); });
  f.exchange("EHLO client.test\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\nDATA\r\n", "354 ");
  std::string big;
  while (big.size() < 300 * 1024) big += std::string(98, 'x') + "\r\n";
  f.client.replies.clear();
  f.exchange(big + ".\r\n", "452 4.3.1 Insufficient system resources");
  cr_assert(f.host.submits.empty());
  cr_assert_eq(budget.in_use(), 0u, "a refused message keeps %lu bytes", (unsigned long)budget.in_use());

  f.exchange("MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\nDATA\r\n", "354 ");
  f.client.say("Subject: small\r\n\r\nfits\r\n.\r\n");
  f.run_until([&] { return !f.host.submits.empty(); });
  store::submit_request& req = *f.host.submits[0];
  cr_assert(req.body.rfind("Received: from client.test", 0) == 0, "%s", req.body.c_str());
  cr_assert_geq(budget.in_use(), req.body.size(), "the body is still held while the store has it");
  req.result = store::submit_status::ok;
  f.session->submitted(&req);
  f.run_until([&] { return f.client.has("250 2.6.0"); });
  cr_assert_eq(budget.in_use(), 0u);

  // With the budget used up elsewhere, DATA itself is refused before any content.
  cr_assert(budget.try_take(budget.limit()));
  f.exchange("MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\nDATA\r\n", "452 4.3.1");
  budget.give_back(budget.limit());
  f.exchange("DATA\r\n", "354 ");
  f.client.say("Subject: never finished\r\n");
  f.run_until([&] { return budget.in_use() > 0; });
  f.client.s->close();
  f.run_until([&] { return f.host.retired; });
  f.session.reset();
  cr_assert_eq(budget.in_use(), 0u, "a session that ends mid-message gives its bytes back");
}

// Shutdown with a message in the store: its 250 still comes, then 421, and the message
// pipelined behind it is never executed.
Test(smtpd_session, shutdown_answers_the_stored_message_then_421) {
  fixture f;
  f.connect();
  f.run_until([&] { return f.client.has("220 "); });
  f.exchange("EHLO client.test\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\nDATA\r\n", "354 ");
  f.client.replies.clear();
  f.client.say("Subject: one\r\n\r\nb\r\n.\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\nDATA\r\n"
               "Subject: two\r\n\r\nb\r\n.\r\n");
  f.run_until([&] { return !f.host.submits.empty(); });
  f.session->shutdown();
  cr_assert(!f.host.retired, "the session waits for the store");
  f.host.submits[0]->result = store::submit_status::ok;
  f.session->submitted(f.host.submits[0]);
  f.run_until([&] { return f.client.ended; });
  cr_assert(f.client.replies.rfind("250 2.6.0 ", 0) == 0, "%s", f.client.replies.c_str());
  cr_assert(f.client.has("\r\n421 4.3.2 mx.sluice.test Service shutting down"), "%s", f.client.replies.c_str());
  cr_assert(!f.client.has("354"), "pipelined input ran after shutdown: %s", f.client.replies.c_str());
  cr_assert_eq(f.host.submits.size(), 1u);
  cr_assert(f.host.retired);
}
