// open_request_file, defer_all, mark_delivered: the agents' common frame.
#include "mail/delivery_agent.h"

#include <fcntl.h>

#include "mail/queue_id.h"
#include "util/log.h"

namespace postern {

Result<QueueFile> open_request_file(const Config& config, const DeliveryRequest& request) {
  std::string_view path = request.queue_path;
  std::string id = path.starts_with("active/") ? std::string(path.substr(7)) : "";
  if (!is_valid_queue_id(id) || id != request.queue_id) {
    log_warn("bad queue path \"%s\"", request.queue_path.c_str());
    return fail("bad queue file name in delivery request");
  }
  auto file = QueueFile::open(queue_file_path(config.str("queue_directory"), QueueName::kActive, id), O_RDWR);
  if (!file) {
    log_warn("%s: %s", id.c_str(), file.error().c_str());
    return fail("cannot read queue file: " + file.error());
  }
  return file;
}

DeliveryReply defer_all(const DeliveryRequest& request, const std::string& text) {
  DeliveryReply reply;
  for (const auto& r : request.recipients)
    reply.results.push_back({r.offset, std::string(kDeliveryDefer), "4.3.0", text});
  return reply;
}

void mark_delivered(const QueueFile& file, const std::vector<int64_t>& offsets, bool sync) {
  for (size_t i = 0; i < offsets.size(); ++i) {
    auto marked = mark_recipient_done(file.fd(), uint64_t(offsets[i]), sync && i + 1 == offsets.size());
    if (!marked)
      log_error("%s: cannot mark recipient done: %s", file.queue_id().c_str(), marked.error().c_str());
  }
}

}  // namespace postern
