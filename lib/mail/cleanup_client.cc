// CleanupClient: sends one message to cleanup over public/cleanup.
#include "mail/cleanup_client.h"

#include <algorithm>
#include <utility>

namespace postern {

Result<CleanupClient> CleanupClient::connect(const std::string& queue_directory, Timeout timeout) {
  auto fd = connect_unix(queue_directory + "/public/cleanup", timeout);
  if (!fd) return fail("connect to cleanup: " + fd.error());
  auto hello = read_hello(fd->get(), kCleanupService, timeout);
  if (!hello) return fail("cleanup: " + hello.error());
  return CleanupClient(std::move(*fd), timeout);
}

template <typename M>
Result<void> CleanupClient::send(const M& message) {
  auto r = write_message(sock_.get(), message, timeout_);
  if (!r) return fail("write to cleanup: " + r.error());
  return {};
}

Result<void> CleanupClient::begin(const CleanupBegin& begin) { return send(begin); }

Result<void> CleanupClient::flush_recipients() {
  if (recipients_.recipients.empty()) return {};
  auto r = send(recipients_);
  recipients_.recipients.clear();
  return r;
}

Result<void> CleanupClient::flush_content() {
  if (content_.empty()) return {};
  auto r = send(CleanupContent{std::move(content_)});
  content_.clear();
  return r;
}

Result<void> CleanupClient::add_recipient(const CleanupRecipient& recipient) {
  if (auto r = flush_content(); !r) return r;
  recipients_.recipients.push_back(recipient);
  if (recipients_.recipients.size() >= kCleanupRecipientBatch) return flush_recipients();
  return {};
}

Result<void> CleanupClient::write_content(std::string_view data) {
  if (auto r = flush_recipients(); !r) return r;
  while (!data.empty()) {
    size_t take = std::min(data.size(), kCleanupChunk - content_.size());
    content_.append(data.substr(0, take));
    data.remove_prefix(take);
    if (content_.size() == kCleanupChunk) {
      if (auto r = flush_content(); !r) return r;
    }
  }
  return {};
}

Result<CleanupReply> CleanupClient::finish() {
  if (auto r = flush_content(); !r) return r.failure();
  if (auto r = flush_recipients(); !r) return r.failure();
  if (auto r = send(CleanupEnd{}); !r) return r.failure();
  auto reply = read_message<CleanupReply>(sock_.get(), timeout_);
  if (!reply) return fail("cleanup: " + reply.error());
  return reply;
}

}  // namespace postern
