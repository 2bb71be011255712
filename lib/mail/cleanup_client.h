// CleanupClient: the client side of the cleanup protocol (cleanup_protocol.h),
// for every program that hands a message to cleanup (pickup, bounce, later local
// and smtpd).  One client carries one message:
//
//   auto client = CleanupClient::connect(queue_directory, timeout);  // public/cleanup, Hello
//   client->begin(begin);
//   client->add_recipient(...);   // batched into CleanupRecipients frames
//   client->write_content(...);   // buffered into CleanupContent frames of kCleanupChunk
//   client->add_recipient(...);   // after the content: extracted from the header
//   auto reply = client->finish();  // flushes, CleanupEnd, cleanup's CleanupReply
//
// Recipients and content keep their order on the wire: pending recipients are
// sent before the next content, pending content before the next recipients.
// Every failure (cleanup down, a broken connection, a timeout) is a failed
// Result, which the caller must treat as temporary: nothing was queued.
// A reply with status "temp" or "perm" is a successful Result; the caller reads
// its status.
#pragma once

#include <string>
#include <string_view>

#include "mail/cleanup_protocol.h"
#include "util/fd.h"
#include "util/result.h"
#include "util/socket.h"

namespace postern {

class CleanupClient {
 public:
  static Result<CleanupClient> connect(const std::string& queue_directory, Timeout timeout);

  Result<void> begin(const CleanupBegin& begin);
  Result<void> add_recipient(const CleanupRecipient& recipient);
  Result<void> write_content(std::string_view data);
  Result<CleanupReply> finish();

 private:
  CleanupClient(UniqueFd sock, Timeout timeout) : sock_(std::move(sock)), timeout_(timeout) {}
  Result<void> flush_recipients();
  Result<void> flush_content();
  template <typename M>
  Result<void> send(const M& message);

  UniqueFd sock_;
  Timeout timeout_;
  CleanupRecipients recipients_;
  std::string content_;
};

}  // namespace postern
