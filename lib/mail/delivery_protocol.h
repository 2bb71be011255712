// The delivery protocol: how the queue manager hands one message's recipients to a
// delivery agent (local now; smtp and virtual speak the same).  One connection
// carries one request:
//
//   server  Hello{service "local" / "smtp" / ...}
//   client  DeliveryRequest      one message, the recipients of one transport and nexthop
//   server  DeliveryReply        one result per recipient, matched by offset
//
// The agent opens the queue file itself (queue_path, relative to queue_directory)
// and reads the content by the offsets in it.  An agent that delivered a recipient
// marks it done in the queue file before it replies (docs/queue.md), so that a
// crash between the delivery and the reply does not repeat it; the queue manager
// marks "ok" results as well (marking twice is harmless).  A recipient without a
// result, or a connection that breaks before the reply, is deferred by the queue
// manager: never lost, never bounced.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "util/codec.h"

namespace postern {

struct DeliveryRecipient {
  std::string address;  // internal form
  std::string orcpt;    // DSN ORCPT "addr-type;address", or empty
  int32_t notify = 0;   // DsnNotify bits
  int64_t offset = 0;   // of its RCPT record: the key of its result and of mark_recipient_done
  static constexpr auto kFields =
      std::make_tuple(field("address", &DeliveryRecipient::address), field("orcpt", &DeliveryRecipient::orcpt),
                      field("notify", &DeliveryRecipient::notify), field("offset", &DeliveryRecipient::offset));
};

struct DeliveryRequest {
  std::string queue_id;
  std::string queue_path;  // "active/ID", relative to queue_directory
  std::string sender;      // envelope sender, internal form; empty for the null sender
  std::string nexthop;     // the transport's nexthop: a host name for local, a domain or [host] for smtp
  int64_t arrival_seconds = 0;
  int32_t attempt = 1;     // 1 for the first try of this message, more for retries
  std::vector<DeliveryRecipient> recipients;

  static constexpr std::string_view kType = "delivery-request";
  static constexpr auto kFields = std::make_tuple(
      field("queue_id", &DeliveryRequest::queue_id), field("queue_path", &DeliveryRequest::queue_path),
      field("sender", &DeliveryRequest::sender), field("nexthop", &DeliveryRequest::nexthop),
      field("arrival_seconds", &DeliveryRequest::arrival_seconds), field("attempt", &DeliveryRequest::attempt),
      field("recipients", &DeliveryRequest::recipients));
};

inline constexpr std::string_view kDeliveryOk = "ok";          // delivered (marked done by the agent)
inline constexpr std::string_view kDeliveryDefer = "defer";    // try again later (4.x.x)
inline constexpr std::string_view kDeliveryBounce = "bounce";  // will never succeed (5.x.x)

struct DeliveryResult {
  int64_t offset = 0;   // the recipient's, as in the request
  std::string status;   // kDeliveryOk, kDeliveryDefer or kDeliveryBounce
  std::string dsn;      // enhanced status code (RFC 3463), "2.0.0", "4.3.0", "5.1.1"
  std::string text;     // why, as the sender will see it: "user unknown", the remote reply
  static constexpr auto kFields =
      std::make_tuple(field("offset", &DeliveryResult::offset), field("status", &DeliveryResult::status),
                      field("dsn", &DeliveryResult::dsn), field("text", &DeliveryResult::text));
};

struct DeliveryReply {
  std::vector<DeliveryResult> results;
  static constexpr std::string_view kType = "delivery-reply";
  static constexpr auto kFields = std::make_tuple(field("results", &DeliveryReply::results));
};

}  // namespace postern
