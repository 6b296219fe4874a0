// file_writer.cc: threadpool appends for logs, so a slow disk never stalls a session.
#include "net/file_writer.h"

#include <memory>

namespace sluice::net {

namespace {
struct append_request {
  uv_fs_t req{};
  std::string data;
  std::shared_ptr<const void> keep_open;
};
}  // namespace

void append_async(loop& l, int fd, std::shared_ptr<const void> keep_open, std::string&& data) {
  if (data.empty()) return;
  auto r = std::make_unique<append_request>();
  r->data = std::move(data);
  r->keep_open = std::move(keep_open);
  r->req.data = r.get();
  uv_buf_t buf = uv_buf_init(r->data.data(), static_cast<unsigned>(r->data.size()));
  int rc = uv_fs_write(l.get(), &r->req, fd, &buf, 1, -1, [](uv_fs_t* req) {
    std::unique_ptr<append_request> owned(static_cast<append_request*>(req->data));
    uv_fs_req_cleanup(req);
  });
  if (rc == 0) r.release();
}

}  // namespace sluice::net
