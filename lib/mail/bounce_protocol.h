// The bounce protocol: how the queue manager asks the bounce service (bounce/,
// Postfix's bounce(8)) to send a delivery status notification.  The statuses are
// already in the message's log, bounce/ID or defer/ID (lib/mail/queue_tools.h);
// the request names the message only.  One connection carries one request:
//
//   server  Hello{service "bounce"}
//   client  BounceRequest
//   server  BounceReply      "ok" only once cleanup has queued the notice (or
//                            none was due: NOTIFY, a double bounce discarded)
//
// A connection that breaks before the reply means: no notice was sent; the queue
// manager keeps the log and asks again on the next queue run.
#pragma once

#include <string>
#include <string_view>
#include <tuple>

#include "util/codec.h"

namespace postern {

inline constexpr std::string_view kBounceService = "bounce";

inline constexpr std::string_view kNoticeFailure = "failure";  // from bounce/ID: Action failed
inline constexpr std::string_view kNoticeDelay = "delay";      // from defer/ID: Action delayed

struct BounceRequest {
  std::string kind;        // kNoticeFailure or kNoticeDelay
  std::string queue_id;
  std::string queue_path;  // "active/ID", relative to queue_directory
  static constexpr std::string_view kType = "bounce-request";
  static constexpr auto kFields =
      std::make_tuple(field("kind", &BounceRequest::kind), field("queue_id", &BounceRequest::queue_id),
                      field("queue_path", &BounceRequest::queue_path));
};

struct BounceReply {
  std::string status;     // "ok" or "temp"
  std::string notice_id;  // with "ok": the notice's queue ID, empty when none was sent
  std::string reason;     // with "ok" and no notice: why none; with "temp": what failed
  static constexpr std::string_view kType = "bounce-reply";
  static constexpr auto kFields =
      std::make_tuple(field("status", &BounceReply::status), field("notice_id", &BounceReply::notice_id),
                      field("reason", &BounceReply::reason));
};

}  // namespace postern
