// protocol.cc: admin request parsing and quoting, response framing, command dispatch.
// Untrusted input: request lines from local admin socket clients; responses from the daemon (client side).
#include "admin/protocol.h"
#include "base/ascii.h"

#include <charconv>
#include <filesystem>

namespace sluice::admin {

namespace {

using base::iequals;

bool is_control(unsigned char c) { return (c < 0x20 && c != '\t') || c == 0x7f; }

// Bytes that never need quoting; everything else (spaces, quotes, backslashes,
// bytes >= 0x80) is quoted, which keeps the request readable in logs as well.
bool is_plain(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         std::string_view("@._+-=:/,%*!#$&?^{}|~<>[]()").find(static_cast<char>(c)) != std::string_view::npos;
}

// Response lines never contain LF or CR: split on LF, drop CR.
void append_text_lines(std::string& out, std::string_view text) {
  size_t start = 0;
  for (;;) {
    size_t nl = text.find('\n', start);
    std::string_view piece = text.substr(start, nl == std::string_view::npos ? std::string_view::npos : nl - start);
    // Stuff on the first byte that is written: "\r." must not become the "." terminator.
    size_t first = piece.find_first_not_of('\r');
    if (first != std::string_view::npos && piece[first] == '.') out += '.';
    for (char c : piece)
      if (c != '\r') out += c;
    out += '\n';
    if (nl == std::string_view::npos) break;
    start = nl + 1;
  }
}

}  // namespace

std::string socket_path_for(std::string_view queue_dir) {
  std::filesystem::path q{std::string(queue_dir)};
  // "var/queue/" has an empty filename; its parent would be var/queue itself.
  if (!q.empty() && !q.has_filename()) q = q.parent_path();
  return (q.parent_path() / "admin.sock").string();
}

// ---- requests ----

parse_result parse_request(std::string_view line) {
  parse_result r;
  if (line.size() > max_request_line) {
    r.error = "request longer than " + std::to_string(max_request_line) + " bytes";
    return r;
  }
  std::string word;
  bool in_word = false;
  size_t i = 0;
  auto fail = [&](std::string why) {
    r.words.clear();
    r.error = std::move(why);
    return r;
  };
  while (i < line.size()) {
    unsigned char c = static_cast<unsigned char>(line[i]);
    if (is_control(c)) return fail("control character in request");
    if (c == ' ' || c == '\t') {
      if (in_word) {
        if (r.words.size() == max_request_words)
          return fail("more than " + std::to_string(max_request_words) + " words");
        r.words.push_back(std::move(word));
        word.clear();
        in_word = false;
      }
      ++i;
      continue;
    }
    in_word = true;
    if (c == '\'') {
      size_t end = line.find('\'', i + 1);
      if (end == std::string_view::npos) return fail("unterminated ' quote");
      std::string_view inner = line.substr(i + 1, end - i - 1);
      for (char ch : inner)
        if (is_control(static_cast<unsigned char>(ch))) return fail("control character in request");
      word.append(inner);
      i = end + 1;
    } else if (c == '"') {
      ++i;
      bool closed = false;
      while (i < line.size()) {
        char ch = line[i];
        if (is_control(static_cast<unsigned char>(ch))) return fail("control character in request");
        if (ch == '"') {
          closed = true;
          ++i;
          break;
        }
        if (ch == '\\') {
          if (i + 1 >= line.size()) break;
          ch = line[++i];
          if (is_control(static_cast<unsigned char>(ch))) return fail("control character in request");
        }
        word += ch;
        ++i;
      }
      if (!closed) return fail("unterminated \" quote");
    } else if (c == '\\') {
      if (i + 1 >= line.size()) return fail("backslash at end of request");
      char next = line[i + 1];
      if (is_control(static_cast<unsigned char>(next))) return fail("control character in request");
      word += next;
      i += 2;
    } else {
      word += static_cast<char>(c);
      ++i;
    }
  }
  if (in_word) {
    if (r.words.size() == max_request_words)
      return fail("more than " + std::to_string(max_request_words) + " words");
    r.words.push_back(std::move(word));
  }
  if (r.words.empty()) return fail("empty request");
  return r;
}

std::string quote_word(std::string_view word) {
  bool plain = !word.empty();
  for (char c : word) plain = plain && is_plain(static_cast<unsigned char>(c));
  if (plain) return std::string(word);
  std::string out = "\"";
  for (char c : word) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  out += '"';
  return out;
}

std::string format_request(const std::vector<std::string>& words) {
  std::string out;
  for (const auto& w : words) {
    if (!out.empty()) out += ' ';
    out += quote_word(w);
  }
  out += '\n';
  return out;
}

// ---- responses ----

response response::failure(std::string message, std::vector<std::string> lines) {
  response r;
  r.ok = false;
  r.error = std::move(message);
  r.lines = std::move(lines);
  return r;
}

std::string encode_response(const response& r) {
  std::string out;
  if (r.ok) {
    out = "ok\n";
  } else {
    out = "error ";
    std::string_view msg = r.error.empty() ? std::string_view("failed") : std::string_view(r.error);
    for (char c : msg) out += (c == '\n' || c == '\r') ? ' ' : c;
    out += '\n';
  }
  for (const auto& line : r.lines) append_text_lines(out, line);
  out += ".\n";
  return out;
}

response_decoder::state response_decoder::feed(std::string_view bytes) {
  if (state_ == state::malformed) return state_;
  buffer_.append(bytes);
  if (state_ == state::complete) return state_;  // the caller take()s it first
  return step();
}

response_decoder::state response_decoder::step() {
  for (;;) {
    size_t nl = buffer_.find('\n', consumed_);
    if (nl == std::string::npos) {
      if (buffer_.size() - consumed_ > max_response || consumed_ > max_response) {
        problem_ = "response too long";
        return state_ = state::malformed;
      }
      return state_ = state::need_more;
    }
    std::string_view line(buffer_.data() + consumed_, nl - consumed_);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    consumed_ = nl + 1;
    if (!have_status_) {
      if (line == "ok") {
        current_.ok = true;
      } else if (line.substr(0, 6) == "error " || line == "error") {
        current_.ok = false;
        current_.error = std::string(line.size() > 6 ? line.substr(6) : std::string_view());
      } else {
        problem_ = "bad status line: " + std::string(line.substr(0, 80));
        return state_ = state::malformed;
      }
      have_status_ = true;
      continue;
    }
    if (line == ".") {
      buffer_.erase(0, consumed_);
      consumed_ = 0;
      return state_ = state::complete;
    }
    if (!line.empty() && line.front() == '.') line.remove_prefix(1);
    current_.lines.emplace_back(line);
    if (consumed_ > max_response) {
      problem_ = "response too long";
      return state_ = state::malformed;
    }
  }
}

response response_decoder::take() {
  response out = std::move(current_);
  current_ = response{};
  have_status_ = false;
  state_ = state::need_more;
  // A pipelined response may already be complete in the buffer.
  if (!buffer_.empty()) step();
  return out;
}

// ---- the command table ----

const std::string* arguments::option(std::string_view name) const {
  for (auto it = options.rbegin(); it != options.rend(); ++it)
    if (it->first == name) return &it->second;
  return nullptr;
}

std::string command::usage() const {
  std::string out;
  for (const auto& p : path) out += (out.empty() ? "" : " ") + p;
  if (!args_usage.empty()) out += " " + args_usage;
  return out;
}

void command_table::add(command c) { commands_.push_back(std::move(c)); }

const command* command_table::find(const std::vector<std::string>& words) const {
  const command* best = nullptr;
  for (const auto& c : commands_) {
    if (c.path.size() > words.size()) continue;
    if (best && c.path.size() <= best->path.size()) continue;
    bool match = true;
    for (size_t i = 0; i < c.path.size() && match; ++i) match = iequals(c.path[i], words[i]);
    if (match) best = &c;
  }
  return best;
}

response command_table::dispatch(std::string_view line, const context& ctx) const {
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.remove_suffix(1);
  parse_result p = parse_request(line);
  if (!p.ok()) return response::failure(p.error);
  return dispatch(p.words, ctx);
}

response command_table::dispatch(const std::vector<std::string>& words, const context& ctx) const {
  if (words.empty()) return response::failure("empty request");
  const command* cmd = find(words);
  if (cmd == nullptr) {
    // A known group with an unknown or missing subcommand: list what the group offers.
    std::vector<std::string> usages;
    for (const auto& c : commands_)
      if (c.path.size() > 1 && iequals(c.path[0], words[0])) usages.push_back("usage: " + c.usage());
    std::string shown = words.size() > 1 && !usages.empty() ? words[0] + " " + words[1] : words[0];
    if (!usages.empty() && words.size() == 1)
      return response::failure("'" + words[0] + "' needs a subcommand", std::move(usages));
    return response::failure("unknown command '" + shown + "' (try 'help')", std::move(usages));
  }

  arguments args;
  bool options_done = false;
  for (size_t i = cmd->path.size(); i < words.size(); ++i) {
    const std::string& w = words[i];
    if (!options_done && w == "--") {
      options_done = true;
      continue;
    }
    if (options_done || w.size() < 3 || w.compare(0, 2, "--") != 0) {
      args.positional.push_back(w);
      continue;
    }
    std::string name = w.substr(2);
    std::optional<std::string> inline_value;
    if (auto eq = name.find('='); eq != std::string::npos) {
      inline_value = name.substr(eq + 1);
      name.resize(eq);
    }
    const option_spec* spec = nullptr;
    for (const auto& o : cmd->options)
      if (o.name == name) spec = &o;
    if (spec == nullptr)
      return response::failure("unknown option '--" + name + "'", {"usage: " + cmd->usage()});
    if (!spec->takes_value) {
      if (inline_value) return response::failure("option '--" + name + "' takes no value", {"usage: " + cmd->usage()});
      args.options.emplace_back(name, "");
    } else if (inline_value) {
      args.options.emplace_back(name, *inline_value);
    } else if (i + 1 < words.size()) {
      args.options.emplace_back(name, words[++i]);
    } else {
      return response::failure("option '--" + name + "' needs a value", {"usage: " + cmd->usage()});
    }
  }
  if (args.positional.size() < cmd->min_args)
    return response::failure("missing arguments", {"usage: " + cmd->usage()});
  if (args.positional.size() > cmd->max_args)
    return response::failure("too many arguments", {"usage: " + cmd->usage()});
  if (cmd->check) {
    std::string why = cmd->check(args);
    if (!why.empty()) return response::failure(std::move(why), {"usage: " + cmd->usage()});
  }
  response r;
  cmd->apply(args, ctx, r);
  return r;
}

std::optional<uint64_t> parse_number(std::string_view text) {
  if (text.empty() || text.size() > 20) return std::nullopt;
  for (char c : text)
    if (c < '0' || c > '9') return std::nullopt;
  uint64_t v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return v;
}

}  // namespace sluice::admin
