// edit.h: a line-oriented editor of sluice's TOML file: lists, adds, changes and removes [[kind]] entries and their keys.
// Untrusted input: the TOML text (any bytes; what cannot be edited safely is refused with a reason) and the names and
// values given on the command line (always written as escaped TOML, never pasted as text).
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sluice::config::edit {

// A value as it is written into the file: proper TOML text, so a string holding '"', '#',
// ']' or a line break cannot end the value early or add keys.
class value {
 public:
  static value string(std::string_view s);  // basic string, escaped
  static value integer(int64_t i);
  // A finite, non-negative decimal written as a TOML float ("0.5", "2.0"); whole numbers too.
  static value number(double d);
  static value boolean(bool b);
  static value strings(const std::vector<std::string>& items);  // ["a", "b"]
  const std::string& toml() const { return text_; }

 private:
  explicit value(std::string text) : text_(std::move(text)) {}
  std::string text_;
};

// Keys to write, each a bare-key path ("name", "tls.starttls"), in the order to write them.
using key_values = std::vector<std::pair<std::string, value>>;

// One [[kind]] block, in file order (the order of the TOML array).
struct entry {
  std::string name;  // its `name` string; "" when it has none
  int line = 0;      // 1-based line of its [[kind]] header
};

// The file as text. Comments, blank lines, spacing and the order of everything an edit
// does not change stay byte for byte; an edit replaces only the value of the key it sets
// (an inline comment after it stays), adds whole lines, or removes whole lines.
//
// Every edit is checked before it is kept: the new text must parse as TOML and mean
// exactly the old document with that one change (compared as parsed trees), or the edit
// is refused and the document stays as it was. So a layout the editor misreads can cost
// an error message, never a silently different configuration.
class document {
 public:
  // Refuses (nullopt, with a reason naming the line) text that is not valid TOML, is
  // larger than 4 MiB, or that the line scanner cannot follow.
  static std::optional<document> parse(std::string_view text, std::string& error);

  const std::string& text() const { return text_; }

  // The [[kind]] blocks (kind: a top-level bare key such as "receive_connector"). Empty
  // when there are none; nullopt (with error) when kind is written in a form the editor
  // cannot change, e.g. `kind = [{ ... }]` or not as an array of tables.
  std::optional<std::vector<entry>> entries(std::string_view kind, std::string& error) const;
  // The index of the block whose name equals `name` ignoring ASCII case (the loader's
  // rule for duplicates), or nullopt (also when entries() fails).
  std::optional<size_t> find(std::string_view kind, std::string_view name) const;

  // Each edit returns true and changes the text, or returns false, explains in `error`
  // and changes nothing.
  //
  // A new block after the last [[kind]] block (or at the end of the file), one line per
  // key; keys sharing a first part are written as one inline table (tls = { ... }).
  bool append(std::string_view kind, const key_values& keys, std::string& error);
  // Sets `key` (a path such as "max_message_size" or "tls.starttls") in block `index`:
  // replaces the value where the key is written (a line, a dotted key, a key inside an
  // inline table or a [kind.sub] table), or adds it after the block's last key.
  bool set(std::string_view kind, size_t index, std::string_view key, const value& v, std::string& error);
  // Removes the key's line, or its item inside an inline table, or every dotted key under
  // it. A key that is not there is no change (true).
  bool remove_key(std::string_view kind, size_t index, std::string_view key, std::string& error);
  // Removes block `index`: its lines, the comment lines directly above its header (no
  // blank line between) and the comment lines directly after its last key that are not
  // directly above the next header.
  bool remove(std::string_view kind, size_t index, std::string& error);

 private:
  explicit document(std::string text) : text_(std::move(text)) {}
  std::string text_;
};

}  // namespace sluice::config::edit
