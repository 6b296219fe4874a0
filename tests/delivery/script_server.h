// script_server.h: test helper: a small SMTP server on a real loopback listener whose every reply the test decides,
// and a handler that records what an smtp_connection reports.
// Untrusted input: the bytes of the client under test (parsed loosely, line by line).
#pragma once
#include <criterion/criterion.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "../net/run_until.h"
#include "delivery/smtp_connection.h"
#include "net/connection.h"
#include "stream/stream.h"
#include "tls/context.h"

namespace delivery_test {

using namespace sluice;

// One scripted server. Replies default to a permissive ESMTP server; `reply` may answer
// any command line first (return true; an empty `out` means: stay silent, a stall).
struct script_server {
  struct session;
  std::string greeting = "220 mx.test ESMTP\r\n";  // "" = never greet (a stall)
  std::string ehlo = "250-mx.test\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-SIZE 10000000\r\n250 DSN\r\n";
  std::string ehlo_tls;                            // the EHLO reply over TLS; "" = same as `ehlo`
  std::string final_reply = "250 2.6.0 queued\r\n";  // after the dot; "" = stall
  bool drop_after_dot = false;                     // close instead of answering the dot
  bool stop_reading_at_data = false;               // after the 354, read nothing more (a zero window)
  std::shared_ptr<const tls::context> tls_ctx;     // STARTTLS turns TLS on with this context
  bool broken_tls = false;                         // answer STARTTLS, then the ClientHello with garbage
  std::string after_starttls;                      // bytes sent in clear right behind the 220 to STARTTLS
  std::function<bool(session&, const std::string& line, std::string& out)> reply;
  // CHUNKING and BINARYMIME offered (RFC 3030): BDAT n [LAST] takes exactly n octets, then
  // `chunk_reply` answers (chunk index in the transaction from 0, LAST?; "" = stall), by
  // default 250 for a chunk and final_reply (or drop_after_dot) for LAST.
  bool chunking = false;
  std::function<std::string(size_t chunk, bool last)> chunk_reply;

  // What the server saw, over all sessions.
  std::vector<std::string> commands;  // command lines without CRLF, in order
  std::vector<std::string> data;      // each DATA transmission as received, ".\r\n" included
  std::vector<std::string> bdat;      // each BDAT transaction's octets joined, at its LAST
  int connections = 0;

  struct session final : stream::stream_handler {
    script_server& srv;
    std::unique_ptr<stream::byte_stream> stream;
    std::string in;
    bool in_data = false;
    bool tls = false;
    bool ended = false;
    int rcpts_ok = 0;  // recipients accepted in this transaction
    bool mail_ok = false;
    bool garbage_next = false;
    uint64_t bdat_left = 0;  // octets of the current chunk still to come
    bool bdat_last = false, in_bdat = false;
    bool bdat_refused = false;  // a chunk of this transaction was refused: 503 until RSET
    size_t chunks = 0;       // chunks in this transaction
    std::string octets;      // this transaction's chunks so far

    session(script_server& s, std::unique_ptr<net::connection> c)
        : srv(s), stream(std::make_unique<stream::byte_stream>(std::move(c))) {}
    void send(const std::string& s) {
      if (!s.empty()) stream->send(std::string(s));
    }
    void on_input(std::string_view d) override {
      if (garbage_next) {  // the ClientHello: answer it with something that is not TLS
        garbage_next = false;
        return send("this is not a TLS ServerHello at all\r\n\r\n");
      }
      in.append(d);
      for (;;) {
        if (ended) return;
        if (in_bdat) {
          const size_t take = size_t(std::min<uint64_t>(bdat_left, in.size()));
          octets.append(in, 0, take);
          in.erase(0, take);
          bdat_left -= take;
          if (bdat_left > 0) return;
          in_bdat = false;
          const size_t chunk = chunks++;
          std::string r = srv.chunk_reply ? srv.chunk_reply(chunk, bdat_last) : std::string("-");
          if (bdat_refused) {
            send("503 5.5.1 a chunk was refused: RSET\r\n");
            continue;
          }
          if (r != "-" && !r.empty() && r[0] != '2') {
            bdat_refused = true;
            send(r);
            continue;
          }
          if (bdat_last) {
            srv.bdat.push_back(std::move(octets));
            octets.clear();
            chunks = 0;
            mail_ok = false;
            if (r == "-" && srv.drop_after_dot) {
              ended = true;
              stream->close();
              return;
            }
          }
          if (r == "-") r = bdat_last ? srv.final_reply : "250 2.0.0 chunk ok\r\n";
          send(r);
          continue;
        }
        if (in_data) {
          // The end of data: CRLF.CRLF, or a lone ".\r\n" when the content is empty.
          size_t end = in.rfind(".\r\n", 0) == 0 ? 0 : in.find("\r\n.\r\n");
          if (end == std::string::npos) return;
          size_t len = end == 0 ? 3 : end + 5;
          srv.data.push_back(in.substr(0, len));
          in.erase(0, len);
          in_data = false;
          mail_ok = false;
          if (srv.drop_after_dot) {
            ended = true;
            stream->close();
            return;
          }
          send(srv.final_reply);
          continue;
        }
        size_t nl = in.find("\r\n");
        if (nl == std::string::npos) return;
        std::string line = in.substr(0, nl);
        in.erase(0, nl + 2);
        command(line);
      }
    }
    void command(const std::string& line) {
      srv.commands.push_back(line);
      std::string verb = line.substr(0, 4);
      for (auto& c : verb) c = char(std::toupper(static_cast<unsigned char>(c)));
      if (verb == "MAIL" || verb == "RSET") rcpts_ok = 0, mail_ok = false, chunks = 0, octets.clear(), bdat_refused = false;
      std::string out;
      if (srv.reply && srv.reply(*this, line, out)) {
        if (verb == "RCPT" && out.rfind('2', 0) == 0) ++rcpts_ok;
        if (verb == "MAIL" && out.rfind('2', 0) == 0) mail_ok = true;
        return send(out);
      }
      if ((verb == "RCPT" || verb == "DATA") && !mail_ok) return send("503 5.5.1 MAIL first\r\n");
      if (verb == "EHLO") {
        std::string e = tls && !srv.ehlo_tls.empty() ? srv.ehlo_tls : srv.ehlo;
        if (srv.chunking) e.insert(e.find("\r\n") + 2, "250-CHUNKING\r\n250-BINARYMIME\r\n");
        return send(e);
      }
      if (verb == "BDAT" && srv.chunking) {
        const size_t sp = line.find(' ', 5);
        bdat_left = std::stoull(line.substr(5, sp == std::string::npos ? std::string::npos : sp - 5));
        bdat_last = sp != std::string::npos && line.substr(sp + 1) == "LAST";
        in_bdat = true;
        return;
      }
      if (verb == "HELO") return send("250 mx.test\r\n");
      if (verb == "MAIL") {
        mail_ok = true;
        return send("250 2.1.0 ok\r\n");
      }
      if (verb == "RCPT") {
        ++rcpts_ok;
        return send("250 2.1.5 ok\r\n");
      }
      if (verb == "RSET") return send("250 2.0.0 ok\r\n");
      if (verb == "AUTH") return send("235 2.7.0 ok\r\n");
      if (verb == "DATA") {
        if (rcpts_ok == 0) return send("554 5.5.1 no valid recipients\r\n");
        in_data = true;
        if (srv.stop_reading_at_data) stream->hold_input();
        return send("354 go ahead\r\n");
      }
      if (verb == "QUIT") {
        send("221 2.0.0 bye\r\n");
        ended = true;
        stream->close();
        return;
      }
      if (verb == "STAR") {
        send("220 2.0.0 ready to start TLS\r\n" + srv.after_starttls);
        in.clear();  // RFC 3207: nothing pipelined behind STARTTLS counts
        if (srv.broken_tls) {
          garbage_next = true;
          return;
        }
        if (srv.tls_ctx) {
          stream->start_tls(srv.tls_ctx);
          tls = true;
        }
        return;
      }
      send("502 5.5.2 unknown\r\n");
    }
    void on_end(stream::end_reason, std::string_view) override {
      ended = true;
      stream->close();
    }
  };

  net::loop& l;
  net::listener lis;
  std::vector<std::unique_ptr<session>> sessions;

  explicit script_server(net::loop& lp)
      : l(lp), lis(lp, [this](std::unique_ptr<net::connection> c) {
          ++connections;
          auto s = std::make_unique<session>(*this, std::move(c));
          s->stream->start(*s);
          s->send(greeting);
          sessions.push_back(std::move(s));
        }) {}

  net::endpoint listen() {
    net::endpoint where;
    cr_assert(net::endpoint::parse("127.0.0.1:0", where));
    cr_assert_eq(lis.listen(where), 0);
    return lis.bound();
  }
  size_t count(const std::string& prefix) const {
    size_t n = 0;
    for (const auto& c : commands) n += c.rfind(prefix, 0) == 0;
    return n;
  }
};

// Records the callbacks of one connection.
struct recorder : delivery::smtp_connection::handler {
  int ready = 0;
  std::vector<std::vector<smtp::reply>> done;
  bool closed = false;
  delivery::connection_failure failure;
  std::function<void(delivery::smtp_connection&)> when_ready;  // default: quit
  std::function<void(delivery::smtp_connection&)> when_done;

  void on_ready(delivery::smtp_connection& c) override {
    ++ready;
    if (when_ready) when_ready(c);
    else c.quit();
  }
  void on_message_done(delivery::smtp_connection& c, std::vector<smtp::reply>&& r) override {
    cr_assert_not(closed, "no message_done after on_closed");
    done.push_back(std::move(r));
    if (when_done) when_done(c);
  }
  void on_closed(delivery::smtp_connection&, const delivery::connection_failure& f) override {
    cr_assert_not(closed, "on_closed twice");
    closed = true;
    failure = f;
  }
};

inline void run_until_closed(net::loop& l, const recorder& r) {
  net_test::run_until(l, [&] { return r.closed; });
  cr_assert(r.closed, "the connection never reported on_closed");
}

// Starts `conn` towards `at`, sends `msgs` one per on_ready, then (with `then_quit`)
// QUIT at the next on_ready, and runs the loop until on_closed.
inline void run_session(net::loop& l, delivery::smtp_connection& conn, recorder& rec, const net::endpoint& at,
                        std::vector<const delivery::outbound_message*> msgs, bool then_quit = true,
                        const std::string& remote_name = "mx.y.test") {
  rec.when_ready = [&rec, msgs, then_quit](delivery::smtp_connection& c) {
    size_t turn = size_t(rec.ready) - 1;
    if (turn < msgs.size()) c.send(*msgs[turn]);
    else if (then_quit && turn == msgs.size()) c.quit();
  };
  conn.start(at, remote_name);
  run_until_closed(l, rec);
}

inline std::string failure_text(const recorder& r) {
  return std::string(delivery::connection_end_name(r.failure.why)) + ": " + r.failure.detail;
}

inline delivery::connection_settings tls_settings(route::tls_policy policy, std::shared_ptr<const tls::context> ctx) {
  delivery::connection_settings s;
  s.helo = "out.test";
  s.tls = policy;
  s.tls_ctx = std::move(ctx);
  s.tls_name = "mx.y.test";
  return s;
}

}  // namespace delivery_test

using delivery_test::failure_text;
using delivery_test::recorder;
using delivery_test::run_session;
using delivery_test::script_server;
using sluice::delivery::connection_end;
using sluice::delivery::connection_settings;
using sluice::delivery::outbound_message;
using sluice::delivery::smtp_connection;
using sluice::route::tls_policy;

// A message from a test body (any type with `chunks` and `bytes`) to `rcpts`, from a@x.test.
template <class Body>
outbound_message message(const Body& b, std::vector<std::string> rcpts) {
  outbound_message m;
  m.mail_from = "a@x.test";
  m.recipients = std::move(rcpts);
  m.body = b.chunks;
  m.size = b.bytes.size();
  return m;
}
