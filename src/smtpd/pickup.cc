// pickup.cc: scans the pickup directory, parses files, submits them, deletes them once durable.
// Untrusted input: the directory's files (bounded reads, parse errors quarantined as *.bad).
#include "smtpd/pickup.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "base/clock.h"
#include "smtp/header.h"
#include "smtpd/pickup_message.h"
#include "store/store.h"

namespace sluice::smtpd {

namespace fs = std::filesystem;

struct pickup::job {
  fs::path path;
  store::submit_request request;
};

pickup::pickup(net::loop& loop, pickup_settings settings, unsigned /*worker_index: ids use base::issuer::pickup*/,
               std::function<bool(store::submit_request*)> submit_fn)
    : settings_(std::move(settings)), submit_fn_(std::move(submit_fn)), ids_(base::issuer::pickup), timer_(loop) {}

pickup::~pickup() = default;

void pickup::start() {
  if (settings_.dir.empty()) return;
  timer_.start(settings_.interval_ms, settings_.interval_ms, [this] { scan(); });
}

void pickup::stop() { timer_.stop(); }

namespace {

void quarantine(const fs::path& path, const std::string& reason) {
  std::error_code ec;
  fs::path bad = path;
  bad.replace_extension(".bad");
  fs::rename(path, bad, ec);
  std::fprintf(stderr, "sluiced: pickup: %s renamed %s: %s\n", path.filename().c_str(), bad.filename().c_str(),
               reason.c_str());
}

}  // namespace

void pickup::scan() {
  std::error_code ec;
  std::vector<fs::path> files;
  for (fs::directory_iterator it(settings_.dir, ec), end; !ec && it != end; it.increment(ec)) {
    const auto& entry = *it;
    if (entry.path().extension() != ".eml") continue;
    std::error_code type_ec;
    if (!entry.is_regular_file(type_ec)) continue;
    bool busy = std::any_of(in_flight_.begin(), in_flight_.end(), [&](const auto& j) { return j->path == entry.path(); });
    if (!busy) files.push_back(entry.path());
  }
  // Oldest names first is as good an order as any and keeps runs repeatable.
  std::sort(files.begin(), files.end());
  for (const auto& path : files) {
    if (in_flight_.size() >= settings_.max_in_flight) break;
    std::error_code size_ec;
    auto size = fs::file_size(path, size_ec);
    if (size_ec) continue;  // vanished meanwhile
    if (size > settings_.max_message_size + settings_.max_message_size / 16) {
      quarantine(path, "file larger than the message size limit");
      continue;
    }
    std::ifstream in(path, std::ios::binary);
    if (!in) continue;
    std::string content((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    auto parsed = parse_pickup_file(content, settings_.max_message_size, settings_.max_received_headers);
    if (!parsed.ok) {
      quarantine(path, parsed.error);
      continue;
    }
    auto j = std::make_unique<job>();
    j->path = path;
    auto& req = j->request;
    req.id = ids_.next();
    req.envelope = std::move(parsed.envelope);
    std::string id = req.id.text(), date = base::rfc5322_now();
    smtp::received_fields trace;
    trace.from_text = "pickup directory";
    trace.by_host = settings_.hostname;
    trace.with = "pickup";
    trace.id = id;
    trace.date = date;
    req.body = smtp::received_header(trace);
    req.body += parsed.body;
    req.connector = "pickup";
    req.client_address = "";
    req.received_at_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                             std::chrono::system_clock::now().time_since_epoch())
                             .count();
    req.user = static_cast<submit_client*>(this);
    if (!submit_fn_(&req)) break;  // queue ring full: the file stays for the next scan
    in_flight_.push_back(std::move(j));
  }
}

void pickup::submitted(store::submit_request* request) {
  auto it = std::find_if(in_flight_.begin(), in_flight_.end(), [&](const auto& j) { return &j->request == request; });
  if (it == in_flight_.end()) return;
  if (request->result == store::submit_status::ok) {
    std::error_code ec;
    fs::remove((*it)->path, ec);
    if (tracker_) {
      std::vector<std::string_view> rcpts;
      for (const auto& r : request->envelope.recipients) rcpts.push_back(r.address);
      std::string id = request->id.text();
      std::string detail = "file=" + (*it)->path.filename().string() + " size=" + std::to_string(request->body.size());
      tracker_({log::tracking_event::receive, id, request->envelope.mail_from, rcpts, "pickup", detail});
    }
  } else {
    // Left in place: the next scan tries again (storage full is usually temporary).
    std::fprintf(stderr, "sluiced: pickup: %s not queued: %s\n", (*it)->path.filename().c_str(),
                 request->error.c_str());
  }
  in_flight_.erase(it);
}

}  // namespace sluice::smtpd
