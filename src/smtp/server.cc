// server.cc: the SMTP server state machine (RFC 5321 with PIPELINING, SIZE, 8BITMIME,
// ENHANCEDSTATUSCODES, DSN, CHUNKING/BINARYMIME, SMTPUTF8, STARTTLS and AUTH).
// Untrusted input: every byte given to server::feed() by a remote client.
// The protocol decisions it embodies are listed in server.h, above class server.
// Over 800 lines on purpose: one state machine whose command table, DATA and BDAT paths
// share its state; split, each part would reach into the others' fields.
#include <algorithm>
#include <cstring>

#include "base/clock.h"
#include "smtp/address.h"
#include "smtp/base64.h"
#include "smtp/params.h"
#include "smtp/server.h"
#include "base/ascii.h"

namespace sluice::smtp {

namespace {

constexpr size_t auth_line_limit = 12288;  // RFC 4954 4

using base::iequals;
using base::istarts_with;

reply sequence(std::string text) { return {503, "5.5.1", std::move(text)}; }
reply syntax(std::string text) { return {501, "5.5.4", std::move(text)}; }
reply size_exceeded() { return {552, "5.3.4", "Message size exceeds fixed maximum message size"}; }

}  // namespace

struct server_commands {
  // What a check step extracted from the arguments for its apply step.
  struct parsed {
    std::string domain;
    parsed_path path;
    mail_params mail;
    rcpt_params rcpt;
    uint64_t bdat_size = 0;
    bool bdat_last = false;
    bool bdat_sized = false;  // the size parsed, so the chunk must be skipped even if refused
    std::string mech;
    std::string_view initial;
    bool has_initial = false;
  };
  using check_fn = std::optional<reply> (*)(const server&, std::string_view args, parsed&);
  using apply_fn = void (*)(server&, parsed&);
  struct entry {
    std::string_view verb;
    check_fn check;  // syntax and sequence only; no side effects
    apply_fn apply;  // runs only when check passed
  };
  static const entry table[14];

  // ---- output ----
  static void send(server& s, const reply& r) {
    size_t start = s.out_.size();
    r.append_wire(s.out_);
    std::string_view wire(s.out_.data() + start, s.out_.size() - start - 2);
    s.delegate_.on_reply(wire);
  }
  static void close_with(server& s, const reply& r) {
    send(s, r);
    s.closing_ = true;
    s.state_ = server::state::closed;
  }
  static void send_error(server& s, const reply& r) {
    send(s, r);
    if (r.code < 400) return;
    ++s.errors_;
    if (s.settings_.max_errors > 0 && s.errors_ >= s.settings_.max_errors)
      close_with(s, {421, "4.7.0", s.settings_.hostname + " Error: too many errors"});
  }
  // A policy reply from the delegate: 250 with empty fields gets our defaults.
  static reply with_defaults(reply r, const char* enhanced, const char* text) {
    if (r.code == 250) {
      if (r.enhanced.empty()) r.enhanced = enhanced;
      if (r.text.empty()) r.text = text;
    }
    return r;
  }

  // Frees the buffer (clear() keeps its capacity) and the delegate's reservation for it.
  static void drop_content(server& s) {
    std::string().swap(s.body_);
    s.trace_size_ = 0;
    s.delegate_.content_released();
  }
  static reply shutting_down(const server& s) {
    return {421, "4.3.2", s.settings_.hostname + " Service shutting down, closing transmission channel"};
  }
  static reply no_resources() { return {452, "4.3.1", "Insufficient system resources"}; }
  // The body starts with the delegate's trace header; false if even that is over budget.
  static bool start_content(server& s) {
    drop_content(s);
    std::string trace = s.delegate_.begin_content(s.env_);
    if (!s.delegate_.reserve_content(trace.size())) return false;
    s.body_ = std::move(trace);
    s.trace_size_ = s.body_.size();
    return true;
  }
  static uint64_t content_size(const server& s) { return s.body_.size() - s.trace_size_; }  // what the limit counts
  // The budget counts what the body really allocates, its capacity: left to itself the
  // string doubles, holding up to twice what was appended. Grown by half, capped by the
  // size limit.
  static bool make_room(server& s, size_t n) {
    const size_t need = s.body_.size() + n, have = s.body_.capacity();
    if (need <= have) return true;
    const size_t cap = std::max<size_t>(need, s.settings_.max_message_size + s.trace_size_);
    const size_t next = std::min(cap, std::max(need, have + have / 2));
    if (!s.delegate_.reserve_content(next - have)) return false;
    s.body_.reserve(next);
    return true;
  }
  static void reset_transaction(server& s) {
    std::string helo = std::move(s.env_.helo);
    bool esmtp = s.env_.esmtp;
    s.env_ = envelope{};
    s.env_.helo = std::move(helo);
    s.env_.esmtp = esmtp;
    drop_content(s);
    s.mail_given_ = false;
    s.data_bad_ = false;
    s.fault_counted_ = false;
    s.data_fault_ = reply{};
    s.bdat_used_ = false;
    s.bdat_last_ = false;
    s.bdat_remaining_ = 0;
    s.pending_cr_ = false;
    s.chunk_fault_.reset();
  }

  static bool may_auth(const server& s) {
    return s.settings_.auth_offered && !s.authenticated() &&
           (s.tls_active_ || !s.settings_.starttls_required);
  }

  static param_extensions extensions(const server& s) {
    const server_settings& c = s.settings_;
    return {.eightbitmime = c.eightbitmime, .binarymime = c.chunking, .smtputf8 = c.smtputf8, .dsn = c.dsn,
            .auth = c.auth_offered};
  }

  // ---- HELO / EHLO ----
  static std::optional<reply> check_helo(const server&, std::string_view args, parsed& p) {
    if (args.empty()) return syntax("Syntax: HELO hostname");
    p.domain.assign(args);
    return std::nullopt;
  }
  static std::optional<reply> check_ehlo(const server&, std::string_view args, parsed& p) {
    if (args.empty()) return syntax("Syntax: EHLO hostname");
    p.domain.assign(args);
    return std::nullopt;
  }
  static bool greet_common(server& s, parsed& p, bool esmtp) {
    reply r = s.delegate_.check_helo(p.domain);
    if (r.code != 250) {
      send_error(s, r);
      return false;
    }
    // RFC 5321 4.1.4: a new greeting resets any transaction in progress.
    reset_transaction(s);
    s.env_.helo = std::move(p.domain);
    s.env_.esmtp = esmtp;
    s.greeted_ = true;
    return true;
  }
  static void apply_helo(server& s, parsed& p) {
    if (greet_common(s, p, false)) send(s, {250, "", s.settings_.hostname});
  }
  static void apply_ehlo(server& s, parsed& p) {
    if (!greet_common(s, p, true)) return;
    const server_settings& c = s.settings_;
    std::string text = c.hostname;
    if (c.pipelining) text += "\nPIPELINING";
    text += "\nSIZE " + std::to_string(c.max_message_size);
    if (c.eightbitmime) text += "\n8BITMIME";
    text += "\nENHANCEDSTATUSCODES";
    if (c.dsn) text += "\nDSN";
    if (c.chunking) text += "\nCHUNKING\nBINARYMIME";
    if (c.smtputf8) text += "\nSMTPUTF8";
    if (c.starttls_offered && !s.tls_active_) text += "\nSTARTTLS";
    if (may_auth(s)) text += "\nAUTH PLAIN LOGIN";
    send(s, {250, "", std::move(text)});
  }

  // ---- MAIL ----
  static std::optional<reply> check_mail(const server& s, std::string_view args, parsed& p) {
    const server_settings& c = s.settings_;
    if (s.mail_given_) return sequence("Error: nested MAIL command");
    if (c.helo_required && !s.greeted_) return sequence("Error: send HELO/EHLO first");
    if (c.starttls_required && !s.tls_active_)
      return reply{530, "5.7.0", "Must issue a STARTTLS command first"};
    if (c.auth_required && !s.authenticated()) return reply{530, "5.7.0", "Authentication required"};
    if (!istarts_with(args, "FROM:")) return syntax("Syntax: MAIL FROM:<address>");
    // Parameters decide whether UTF-8 is allowed, so split permissively first.
    if (auto r = parse_path(args.substr(5), path_kind::reverse, true, p.path)) return r;
    if (auto r = parse_mail_params(p.path.params, extensions(s), p.mail)) return r;
    bool non_ascii = std::any_of(p.path.address.begin(), p.path.address.end(),
                                 [](char ch) { return static_cast<unsigned char>(ch) >= 0x80; });
    if (non_ascii && !p.mail.smtputf8) return reply{553, "5.6.7", "Non-ASCII address requires SMTPUTF8"};
    if (p.mail.size && *p.mail.size > c.max_message_size) return size_exceeded();
    return std::nullopt;
  }
  static void apply_mail(server& s, parsed& p) {
    envelope& e = s.env_;
    e.mail_from = std::move(p.path.address);
    e.body = p.mail.body;
    e.smtputf8 = p.mail.smtputf8;
    e.declared_size = p.mail.size;
    e.ret = p.mail.ret;
    e.envid = std::move(p.mail.envid);
    // RFC 4954 5: an AUTH= identity is only meaningful from an authenticated client.
    e.auth_submitter = s.authenticated() && p.mail.auth ? std::move(*p.mail.auth) : std::string();
    reply r = s.delegate_.check_mail(e);
    if (r.code != 250) {
      reset_transaction(s);
      send_error(s, r);
      return;
    }
    s.mail_given_ = true;
    send(s, with_defaults(std::move(r), "2.1.0", "Sender OK"));
  }

  // ---- RCPT ----
  static std::optional<reply> check_rcpt(const server& s, std::string_view args, parsed& p) {
    if (!s.mail_given_) return sequence("Error: need MAIL command");
    if (!istarts_with(args, "TO:")) return syntax("Syntax: RCPT TO:<address>");
    if (auto r = parse_path(args.substr(3), path_kind::forward, s.env_.smtputf8, p.path)) return r;
    if (auto r = parse_rcpt_params(p.path.params, extensions(s), p.rcpt)) return r;
    return std::nullopt;
  }
  static void apply_rcpt(server& s, parsed& p) {
    // The client's expected case, not an error (see server.h): not counted.
    if (s.env_.recipients.size() >= s.settings_.max_recipients)
      return send(s, {452, "4.5.3", "Too many recipients"});
    recipient rc;
    rc.address = std::move(p.path.address);
    rc.notify = p.rcpt.notify;
    rc.orcpt = std::move(p.rcpt.orcpt);
    reply r = s.delegate_.check_recipient(s.env_, rc);
    if (r.code != 250) {
      send_error(s, r);
      return;
    }
    s.env_.recipients.push_back(std::move(rc));
    send(s, with_defaults(std::move(r), "2.1.5", "Recipient OK"));
  }

  // ---- DATA ----
  static std::optional<reply> check_data(const server& s, std::string_view args, parsed&) {
    if (!args.empty()) return syntax("Syntax: DATA");
    if (!s.mail_given_) return sequence("Error: need MAIL command");
    if (s.bdat_used_) return sequence("Error: DATA not allowed after BDAT");
    if (s.env_.body == body_type::binary_mime) return sequence("Error: BINARYMIME requires BDAT");
    if (s.env_.recipients.empty()) return reply{554, "5.5.1", "No valid recipients"};
    return std::nullopt;
  }
  static void apply_data(server& s, parsed&) {
    // Refused before the client sends megabytes; the transaction stays open for a retry.
    // Our shortage, not the client's error: not counted towards max_errors.
    if (!start_content(s)) return send(s, no_resources());
    s.state_ = server::state::data;
    s.line_start_ = true;
    s.dot_line_ = false;
    s.pending_cr_ = false;
    s.line_len_ = 0;
    s.data_bad_ = false;
    s.fault_counted_ = false;
    send(s, {354, "", "Start mail input; end data with <CR><LF>.<CR><LF>"});
  }

  // ---- BDAT (RFC 3030) ----
  static std::optional<reply> check_bdat(const server& s, std::string_view args, parsed& p) {
    std::string_view num = args.substr(0, args.find(' '));
    std::string_view rest = args.substr(num.size());
    while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
    if (num.empty() || num.size() > 19) return syntax("Syntax: BDAT chunk-size [LAST]");
    uint64_t n = 0;
    for (char c : num) {
      if (c < '0' || c > '9') return syntax("Syntax: BDAT chunk-size [LAST]");
      n = n * 10 + uint64_t(c - '0');
    }
    if (!rest.empty() && !iequals(rest, "LAST")) return syntax("Syntax: BDAT chunk-size [LAST]");
    p.bdat_size = n;
    p.bdat_last = !rest.empty();
    p.bdat_sized = true;
    if (!s.settings_.chunking) return reply{502, "5.5.1", "Error: command not implemented"};
    if (!s.mail_given_) return sequence("Error: need MAIL command");
    if (s.env_.recipients.empty()) return reply{554, "5.5.1", "No valid recipients"};
    return std::nullopt;
  }
  static void start_chunk(server& s, const parsed& p, std::optional<reply> fault) {
    s.state_ = server::state::bdat;
    s.bdat_remaining_ = p.bdat_size;
    s.bdat_chunk_size_ = p.bdat_size;
    s.bdat_last_ = p.bdat_last;
    s.chunk_fault_ = std::move(fault);
  }
  static void apply_bdat(server& s, parsed& p) {
    if (!s.bdat_used_) {
      s.bdat_used_ = true;
      s.pending_cr_ = false;
      // The chunk's octets must be read either way; the refusal comes after them.
      if (!start_content(s)) data_fault(s, no_resources(), false);
    }
    start_chunk(s, p, std::nullopt);
  }

  // ---- simple verbs ----
  static std::optional<reply> check_rset(const server&, std::string_view args, parsed&) {
    if (!args.empty()) return syntax("Syntax: RSET");
    return std::nullopt;
  }
  static void apply_rset(server& s, parsed&) {
    reset_transaction(s);
    send(s, {250, "2.0.0", "Ok"});
  }
  static std::optional<reply> check_any(const server&, std::string_view, parsed&) { return std::nullopt; }
  static void apply_noop(server& s, parsed&) { send(s, {250, "2.0.0", "Ok"}); }
  static void apply_quit(server& s, parsed&) {
    close_with(s, {221, "2.0.0", s.settings_.hostname + " Service closing transmission channel"});
  }
  static std::optional<reply> check_vrfy(const server&, std::string_view args, parsed&) {
    if (args.empty()) return syntax("Syntax: VRFY address");
    return std::nullopt;
  }
  static void apply_vrfy(server& s, parsed&) {
    send(s, {252, "2.1.5", "Cannot VRFY user, but will accept message and attempt delivery"});
  }
  static std::optional<reply> check_expn(const server&, std::string_view, parsed&) {
    return reply{502, "5.5.1", "Error: command not implemented"};
  }
  static void apply_help(server& s, parsed&) {
    std::string text = "Commands: HELO EHLO MAIL RCPT DATA";
    if (s.settings_.chunking) text += " BDAT";
    text += " RSET NOOP QUIT VRFY HELP";
    if (s.settings_.starttls_offered) text += " STARTTLS";
    if (s.settings_.auth_offered) text += " AUTH";
    send(s, {214, "2.0.0", std::move(text)});
  }

  // ---- STARTTLS (RFC 3207) ----
  static std::optional<reply> check_starttls(const server& s, std::string_view args, parsed&) {
    if (!args.empty()) return syntax("Syntax: STARTTLS");
    if (!s.settings_.starttls_offered) return reply{502, "5.5.1", "Error: command not implemented"};
    if (s.tls_active_) return sequence("Error: TLS already active");
    if (s.mail_given_) return sequence("Error: MAIL transaction in progress");
    return std::nullopt;
  }
  static void apply_starttls(server& s, parsed&) {
    send(s, {220, "2.0.0", "Ready to start TLS"});
    s.state_ = server::state::waiting_tls;
    // Plaintext pipelined after STARTTLS must never be executed (CVE-2011-0411 class).
    s.in_pos_ = s.in_.size();
    s.delegate_.start_tls();
  }

  // ---- AUTH (RFC 4954, RFC 4616 PLAIN, draft LOGIN) ----
  static std::optional<reply> check_auth(const server& s, std::string_view args, parsed& p) {
    const server_settings& c = s.settings_;
    if (!c.auth_offered) return reply{502, "5.5.1", "Error: command not implemented"};
    if (c.starttls_required && !s.tls_active_)
      return reply{530, "5.7.0", "Must issue a STARTTLS command first"};
    if (!s.greeted_ || !s.env_.esmtp) return sequence("Error: send EHLO first");
    if (s.authenticated()) return sequence("Error: already authenticated");
    if (s.mail_given_) return sequence("Error: MAIL transaction in progress");
    std::string_view mech = args.substr(0, args.find(' '));
    std::string_view rest = args.substr(mech.size());
    while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
    if (mech.empty()) return syntax("Syntax: AUTH mechanism [initial-response]");
    if (iequals(mech, "PLAIN")) p.mech = "PLAIN";
    else if (iequals(mech, "LOGIN")) p.mech = "LOGIN";
    else return reply{504, "5.5.4", "Unrecognized authentication type"};
    p.has_initial = !rest.empty();
    p.initial = rest;
    return std::nullopt;
  }
  static bool decode_response(std::string_view in, std::string& out) {
    if (in == "=") {  // RFC 4954 4: "=" is an empty initial response
      out.clear();
      return true;
    }
    return base64_decode(in, out);
  }
  static void auth_fail(server& s, const reply& r) {
    s.state_ = server::state::command;
    s.auth_mech_.clear();
    s.auth_pending_user_.clear();
    s.auth_have_user_ = false;
    send_error(s, r);
  }
  static void auth_finish(server& s, std::string_view authzid, std::string_view user,
                          std::string_view password) {
    std::string mech = std::move(s.auth_mech_);
    s.state_ = server::state::command;
    s.auth_mech_.clear();
    s.auth_have_user_ = false;
    if (user.empty()) {
      s.auth_pending_user_.clear();
      send_error(s, {535, "5.7.8", "Authentication credentials invalid"});
      return;
    }
    s.auth_pending_user_.assign(user);
    reply r = s.delegate_.check_auth(mech, authzid, user, password);
    if (r.code == 0) {
      s.state_ = server::state::waiting_auth;  // auth_done() answers
      return;
    }
    auth_answer(s, std::move(r));
  }
  static void auth_answer(server& s, reply r) {
    if (r.code == 235) {
      s.auth_user_ = s.auth_pending_user_;
      if (r.enhanced.empty()) r.enhanced = "2.7.0";
      if (r.text.empty()) r.text = "Authentication successful";
      send(s, r);
    } else {
      send_error(s, r);
    }
    s.auth_pending_user_.clear();
  }
  static void auth_plain(server& s, std::string_view decoded) {
    size_t a = decoded.find('\0');
    size_t b = a == std::string_view::npos ? a : decoded.find('\0', a + 1);
    if (b == std::string_view::npos || decoded.find('\0', b + 1) != std::string_view::npos) {
      auth_fail(s, {501, "5.5.2", "Invalid PLAIN response"});
      return;
    }
    auth_finish(s, decoded.substr(0, a), decoded.substr(a + 1, b - a - 1), decoded.substr(b + 1));
  }
  static void apply_auth(server& s, parsed& p) {
    s.auth_mech_ = p.mech;
    s.auth_have_user_ = false;
    s.auth_pending_user_.clear();
    std::string decoded;
    if (p.has_initial && !decode_response(p.initial, decoded)) {
      auth_fail(s, {501, "5.5.2", "Cannot decode response"});
      return;
    }
    if (p.mech == "PLAIN") {
      if (p.has_initial) {
        auth_plain(s, decoded);
      } else {
        s.state_ = server::state::auth;
        send(s, {334, "", ""});
      }
      return;
    }
    s.state_ = server::state::auth;
    if (p.has_initial) {
      s.auth_pending_user_ = std::move(decoded);
      s.auth_have_user_ = true;
      send(s, {334, "", "UGFzc3dvcmQ6"});  // "Password:"
    } else {
      send(s, {334, "", "VXNlcm5hbWU6"});  // "Username:"
    }
  }
  static void auth_response(server& s, std::string_view line) {
    s.delegate_.on_command(line == "*" ? "*" : "****");
    if (line == "*") {
      auth_fail(s, {501, "5.0.0", "Authentication cancelled"});
      return;
    }
    std::string decoded;
    if (!base64_decode(line, decoded)) {
      auth_fail(s, {501, "5.5.2", "Cannot decode response"});
      return;
    }
    if (s.auth_mech_ == "PLAIN") {
      auth_plain(s, decoded);
    } else if (!s.auth_have_user_) {
      s.auth_pending_user_ = std::move(decoded);
      s.auth_have_user_ = true;
      send(s, {334, "", "UGFzc3dvcmQ6"});
    } else {
      std::string user = std::move(s.auth_pending_user_);
      auth_finish(s, "", user, decoded);
    }
  }

  // ---- dispatch ----
  static void execute(server& s, std::string_view line) {
    std::string_view verb = line.substr(0, line.find(' '));
    std::string_view args = line.substr(verb.size());
    while (!args.empty() && args.front() == ' ') args.remove_prefix(1);
    while (!args.empty() && (args.back() == ' ' || args.back() == '\t')) args.remove_suffix(1);
    if (iequals(verb, "AUTH")) {
      // Never log SASL secrets: keep the mechanism, mask any initial response.
      std::string masked = "AUTH";
      std::string_view mech = args.substr(0, args.find(' '));
      if (!mech.empty()) masked.append(" ").append(mech);
      if (mech.size() < args.size()) masked += " ****";
      s.delegate_.on_command(masked);
    } else {
      s.delegate_.on_command(line);
    }
    if (verb.empty()) {
      send_error(s, {500, "5.5.2", "Error: bad syntax"});
      return;
    }
    const entry* e = nullptr;
    for (const entry& candidate : table)
      if (iequals(candidate.verb, verb)) e = &candidate;
    if (!e) {
      send_error(s, {500, "5.5.2", "Error: command not recognized"});
      return;
    }
    parsed p;
    if (auto r = e->check(s, args, p)) {
      // A refused BDAT still announces its octets: skip them, then reply.
      if (p.bdat_sized) start_chunk(s, p, std::move(r));
      else send_error(s, *r);
      return;
    }
    e->apply(s, p);
  }

  static size_t line_limit(const server& s, std::string_view line) {
    if (s.state_ == server::state::auth || istarts_with(line, "AUTH "))
      return std::max(s.settings_.max_command_line, auth_line_limit);
    return s.settings_.max_command_line;
  }

  // One command (or AUTH response) line; false when more input is needed.
  static bool step_line(server& s) {
    std::string_view avail(s.in_.data() + s.in_pos_, s.in_.size() - s.in_pos_);
    size_t lf = avail.find('\n');
    if (lf == std::string_view::npos) {
      if (!s.discarding_ && avail.size() >= line_limit(s, avail)) s.discarding_ = true;
      if (s.discarding_) s.in_pos_ = s.in_.size();  // never buffer an overlong line
      return false;
    }
    std::string_view line = avail.substr(0, lf);
    bool too_long = s.discarding_ || lf + 1 > line_limit(s, avail);
    s.in_pos_ += lf + 1;
    s.discarding_ = false;
    if (too_long) {
      if (s.state_ == server::state::auth) {
        auth_fail(s, {500, "5.5.6", "Line too long"});
      } else {
        send_error(s, {500, "5.5.2", "Line too long"});
      }
      return true;
    }
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (s.state_ == server::state::auth) auth_response(s, line);
    else execute(s, line);
    return true;
  }

  // ---- message content ----
  static void data_fault(server& s, const reply& r, bool bare) {
    if (!s.data_bad_ || (bare && s.data_fault_.code != 550)) {
      s.data_bad_ = true;
      s.data_fault_ = r;
      drop_content(s);  // a refused message must not keep its memory
    }
  }
  static void emit(server& s, const char* p, size_t n) {
    if (s.data_bad_) return;
    if (content_size(s) + n > s.settings_.max_message_size) {
      data_fault(s, size_exceeded(), false);
      return;
    }
    if (!make_room(s, n)) return data_fault(s, no_resources(), false);
    s.body_.append(p, n);
  }
  static reply bare_line_end() { return {550, "5.6.11", "Bare LF or CR in message not allowed"}; }
  static bool is_bare_line_end(const reply& r) { return r.code == 550 && r.enhanced == "5.6.11"; }
  static void bare_fault(server& s) { data_fault(s, bare_line_end(), true); }
  // Same class as a bare CR/LF: a permanent refusal that outranks a size fault.
  static void nul_fault(server& s) {
    data_fault(s, {550, "5.6.0", "NUL character in message not allowed"}, true);
  }
  static void finish_message(server& s) {
    s.state_ = server::state::waiting_submit;
    s.delegate_.submit(s.env_, s.body_);
  }
  static void end_of_data(server& s) {
    s.state_ = server::state::command;
    if (s.data_bad_) {
      reply r = s.data_fault_;
      reset_transaction(s);
      send_error(s, r);
      return;
    }
    finish_message(s);
  }
  // DATA content: false when more input is needed.
  static bool step_data(server& s) {
    const char* base = s.in_.data();
    const char* p = base + s.in_pos_;
    const char* end = base + s.in_.size();
    const size_t max_text = s.settings_.max_text_line;
    while (p < end) {
      char c = *p;
      if (s.pending_cr_) {
        s.pending_cr_ = false;
        if (c == '\n') {
          ++p;
          if (s.dot_line_ && s.line_len_ == 1) {
            s.in_pos_ = size_t(p - base);
            end_of_data(s);
            return true;
          }
          if (s.line_len_ + 2 > max_text) data_fault(s, {552, "5.6.0", "Line too long"}, false);
          emit(s, "\r\n", 2);
          s.line_start_ = true;
          s.dot_line_ = false;
          s.line_len_ = 0;
          continue;
        }
        bare_fault(s);  // then look at c afresh
        ++s.line_len_;
        s.line_start_ = false;
      }
      if (c == '\r') {
        s.pending_cr_ = true;
        ++p;
        continue;
      }
      if (c == '\n' || c == '\0') {
        // A bare LF neither ends a line nor can start the end of data; neither can a NUL.
        if (c == '\n') bare_fault(s);
        else nul_fault(s);
        ++s.line_len_;
        s.line_start_ = false;
        ++p;
        continue;
      }
      if (s.line_start_) {
        s.line_start_ = false;
        if (c == '.') {
          s.dot_line_ = true;
          s.line_len_ = 1;
          ++p;
          continue;
        }
      }
      const char* q = p;
      while (q < end && *q != '\r' && *q != '\n' && *q != '\0') ++q;
      emit(s, p, size_t(q - p));
      s.line_len_ += size_t(q - p);
      p = q;
    }
    s.in_pos_ = s.in_.size();
    return false;
  }
  // True when every CR and LF in `octets` belongs to a CRLF, `pending_cr` carrying a CR
  // that ends one piece over to the next (BDAT chunks split lines anywhere). Two memchr
  // passes rather than a byte loop: this runs over every octet of every BDAT message.
  static bool line_ends_clean(std::string_view octets, bool& pending_cr) {
    if (octets.empty()) return true;
    const char* const begin = octets.data();
    const char* const end = begin + octets.size();
    if (pending_cr && *begin != '\n') return false;
    for (const char* lf = begin; (lf = static_cast<const char*>(std::memchr(lf, '\n', size_t(end - lf)))); ++lf) {
      const bool after_cr = lf == begin ? pending_cr : lf[-1] == '\r';
      if (!after_cr) return false;
    }
    for (const char* cr = begin; (cr = static_cast<const char*>(std::memchr(cr, '\r', size_t(end - cr)))); ++cr) {
      if (cr + 1 == end) break;  // decided by the next piece, or bare at the end of the message
      if (cr[1] != '\n') return false;
    }
    pending_cr = end[-1] == '\r';
    return true;
  }
  // BDAT chunk octets: false when more input is needed.
  static bool step_bdat(server& s) {
    size_t avail = s.in_.size() - s.in_pos_;
    size_t take = size_t(std::min<uint64_t>(avail, s.bdat_remaining_));
    // Only BINARYMIME content may hold any octet (RFC 3030 3); the rest is RFC 5321 text
    // whatever framing carried it, held to the rules DATA content is held to.
    const bool text = !s.chunk_fault_ && s.env_.body != body_type::binary_mime;
    if (take > 0) {
      std::string_view octets(s.in_.data() + s.in_pos_, take);
      if (text && octets.find('\0') != std::string_view::npos) nul_fault(s);
      if (text && !is_bare_line_end(s.data_fault_) && !line_ends_clean(octets, s.pending_cr_)) bare_fault(s);
      if (!s.chunk_fault_ && !s.data_bad_) {
        if (content_size(s) + take > s.settings_.max_message_size) data_fault(s, size_exceeded(), false);
        else if (!make_room(s, take)) data_fault(s, no_resources(), false);
        else s.body_.append(s.in_, s.in_pos_, take);
      }
      s.in_pos_ += take;
      s.bdat_remaining_ -= take;
    }
    if (s.bdat_remaining_ > 0) return false;
    s.state_ = server::state::command;
    if (text && s.bdat_last_ && s.pending_cr_) bare_fault(s);  // the message ends in a lone CR
    if (s.chunk_fault_) {
      reply r = std::move(*s.chunk_fault_);
      s.chunk_fault_.reset();
      send_error(s, r);
      return true;
    }
    if (s.data_bad_ && !s.bdat_last_ && !s.fault_counted_ && is_bare_line_end(s.data_fault_)) {
      // As for DATA, a bare CR or LF is answered once, at the message's end: its chunks
      // are read (and dropped) to their announced sizes until BDAT LAST, so the session
      // stays in step with a pipelining client.
      send(s, {250, "2.0.0", std::to_string(s.bdat_chunk_size_) + " octets received"});
      return true;
    }
    if (s.data_bad_) {
      // The first failure counts; later chunks of the same transaction repeat it.
      reply r = s.data_fault_;
      bool first = !s.fault_counted_;
      s.fault_counted_ = true;
      if (s.bdat_last_) reset_transaction(s);
      if (first) send_error(s, r);
      else send(s, r);
      return true;
    }
    if (s.bdat_last_) finish_message(s);
    else send(s, {250, "2.0.0", std::to_string(s.bdat_chunk_size_) + " octets received"});
    return true;
  }

  static void process(server& s) {
    bool more = true;
    while (more && !s.closing_) {
      switch (s.state_) {
        case server::state::command:
        case server::state::auth: more = step_line(s); break;
        case server::state::data: more = step_data(s); break;
        case server::state::bdat: more = step_bdat(s); break;
        default: more = false; break;
      }
    }
    if (s.closing_) {
      s.in_.clear();
      s.in_pos_ = 0;
    } else if (s.in_pos_ == s.in_.size()) {
      s.in_.clear();
      s.in_pos_ = 0;
    } else if (s.in_pos_ > 4096 && s.in_pos_ * 2 > s.in_.size()) {
      s.in_.erase(0, s.in_pos_);
      s.in_pos_ = 0;
    }
  }
};

const server_commands::entry server_commands::table[14] = {
    {"HELO", check_helo, apply_helo},
    {"EHLO", check_ehlo, apply_ehlo},
    {"MAIL", check_mail, apply_mail},
    {"RCPT", check_rcpt, apply_rcpt},
    {"DATA", check_data, apply_data},
    {"BDAT", check_bdat, apply_bdat},
    {"RSET", check_rset, apply_rset},
    {"NOOP", check_any, apply_noop},
    {"QUIT", check_any, apply_quit},
    {"VRFY", check_vrfy, apply_vrfy},
    {"EXPN", check_expn, apply_noop},
    {"HELP", check_any, apply_help},
    {"STARTTLS", check_starttls, apply_starttls},
    {"AUTH", check_auth, apply_auth},
};

server::server(const server_settings& settings, server_delegate& delegate)
    : settings_(settings), delegate_(delegate) {}

void server::greet() {
  std::string text = settings_.banner.empty()
                         ? settings_.hostname + " ESMTP sluice ready at " + base::rfc5322_now()
                         : settings_.banner;
  server_commands::send(*this, {220, "", std::move(text)});
}

void server::refuse(std::string_view text) {
  server_commands::close_with(*this, {554, "5.7.1", std::string(text)});
}

void server::timeout() {
  if (closing_) return;
  server_commands::close_with(*this, {421, "4.4.2", settings_.hostname + " Error: timeout exceeded"});
}

void server::feed(std::string_view bytes) {
  if (closing_ || shutting_down_ || state_ == state::waiting_tls) return;
  if (state_ == state::waiting_submit || state_ == state::waiting_auth) {
    // Held until *_done(). A pipelining client may send a whole BDAT message and its
    // commands behind the end of data, but not more: past that it is a flood, and a
    // caller that keeps reading while a verdict is pending would hold it without bound.
    uint64_t held = in_.size() - in_pos_ + bytes.size();
    uint64_t margin = uint64_t{settings_.max_command_line} * (settings_.max_recipients + 16);
    uint64_t limit = settings_.max_message_size > UINT64_MAX - margin ? UINT64_MAX : settings_.max_message_size + margin;
    if (held > limit) {
      server_commands::close_with(*this, {421, "4.7.0", settings_.hostname + " Error: too much pipelined input"});
      in_.clear();
      in_pos_ = 0;
      return;
    }
    in_.append(bytes);
    return;
  }
  in_.append(bytes);
  server_commands::process(*this);
}

void server::submit_done(const reply& r) {
  if (state_ != state::waiting_submit) return;
  state_ = state::command;
  server_commands::reset_transaction(*this);
  if (r.positive()) ++messages_accepted_;
  if (r.code == 421) {
    server_commands::close_with(*this, r);
    return;
  }
  server_commands::send(*this, r);
  if (shutting_down_) return server_commands::close_with(*this, server_commands::shutting_down(*this));
  server_commands::process(*this);
}

void server::shut_down() {
  // Input behind a message in the store is the client's to resend: it must not delay the exit.
  shutting_down_ = true;
  in_.clear();
  in_pos_ = 0;
  if (!closing_ && state_ != state::waiting_submit)
    server_commands::close_with(*this, server_commands::shutting_down(*this));
}

void server::auth_done(const reply& r) {
  if (state_ != state::waiting_auth) return;
  state_ = state::command;
  server_commands::auth_answer(*this, r);
  server_commands::process(*this);
}

void server::tls_started() {
  tls_active_ = true;
  greeted_ = false;
  env_ = envelope{};
  server_commands::reset_transaction(*this);
  auth_user_.clear();
  auth_mech_.clear();
  auth_pending_user_.clear();
  auth_have_user_ = false;
  in_.clear();
  in_pos_ = 0;
  discarding_ = false;
  if (!closing_) state_ = state::command;
}

}  // namespace sluice::smtp
