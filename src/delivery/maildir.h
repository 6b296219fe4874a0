// maildir.h: local delivery into Maildir directories (one file per recipient, tmp/ then new/).
// Untrusted input: envelope addresses from remote clients (they name directories) and message content.
#pragma once
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "delivery/attempt.h"

namespace sluice::delivery {

// Where one accepted domain's Maildirs are: config::accepted_domain's maildir_root and
// maildir_path (the loader has checked that the template starts with "{root}/" and names
// {root} nowhere else, contains {local}, and has no "." or ".." components).
struct maildir_target {
  std::string root;           // absolute, no trailing '/'
  std::string path_template;  // "{root}/{domain}/{local}/Maildir"
};

// The Maildir directory of one recipient: the template with {root}, {domain} and {local}
// filled in. The local part and domain come from a remote client, so each is escaped into a
// single path component: '/', '%', NUL and every other control byte (and DEL), and a leading
// '.', become %XX (upper-case hex); an empty one becomes "%". Bytes >= 0x80 stay as they are.
// Escaping is reversible, so distinct addresses give distinct directories, and the result
// is always under root. The domain is lower-cased (ASCII); the local part is kept as given.
std::string maildir_for(const maildir_target& t, std::string_view local, std::string_view domain);

struct maildir_message {
  std::string queue_id;   // text form; part of the unique file name
  std::string mail_from;  // "" = null sender: Return-Path: <>
  std::vector<std::pair<uint32_t, std::string>> recipients;  // (envelope index, "local@domain")
  // Content as queued (dot-unstuffed, CRLF line ends normally), in chunks. The caller keeps
  // the memory they point into valid until deliver_to_maildirs returns (the store's read
  // transaction pins it).
  std::span<const std::string_view> body;
  std::string hostname;   // this host, the last part of the unique file name
};

// Delivers m to every recipient's Maildir and reports each one. Blocking (creates
// directories, writes, fsyncs): the engine runs it on the libuv threadpool
// (net::queue_work), never on a loop thread. It touches nothing but t, m and the file
// system, so any number may run at once, for the same Maildirs too.
//
// For each recipient: the directories below root are created when missing (root itself must
// exist: a missing root is more likely an unmounted file system than a new one), so are the
// Maildir's tmp/, new/ and cur/. The file gets "Return-Path: <sender>" and "Delivered-To:
// <recipient>" prepended, with the line end of the content's first line (CRLF when the
// content has no line end), then the content byte for byte. It is written to tmp/<unique>
// (time, microseconds, pid, a per-process counter, queue id, recipient index, host: never
// reused), fsynced with tmp/, renamed into new/, and new/ fsynced. Only then is the
// recipient delivered: 250 2.0.0.
// Errors defer (the engine retries; mail is never lost): ENOSPC 452 4.3.1, EDQUOT 452 4.2.2,
// anything else (EACCES, EROFS, ENOTDIR, ...) 451 4.3.0, the text naming the path and the
// error. A failed delivery leaves no file in new/ and removes its tmp/ file.
// remote_mta is "maildir:<root>"; results are in the order of m.recipients.
attempt_result deliver_to_maildirs(const maildir_target& t, const maildir_message& m);

}  // namespace sluice::delivery
