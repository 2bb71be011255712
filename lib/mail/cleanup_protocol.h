// The cleanup protocol: how a message is handed to the cleanup service (pickup
// now, smtpd later).  One connection carries one message:
//
//   server  Hello{service "cleanup"}
//   client  CleanupBegin                       the envelope head, exactly once
//   client  *(CleanupRecipients / CleanupContent)
//                                              recipients before or after the content
//                                              (after: extracted from the header);
//                                              content in chunks of at most
//                                              kCleanupChunk bytes, in order
//   client  CleanupEnd
//   server  CleanupReply                       ok only once the queue file is committed
//
// The server reads to CleanupEnd even after it has decided to refuse the message,
// so the client never blocks on a full socket; it then replies once.  A connection
// that breaks before the reply leaves nothing in the queue: the client must treat
// it as a temporary failure and try again.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "util/codec.h"

namespace postern {

inline constexpr std::string_view kCleanupService = "cleanup";
// Content bytes per CleanupContent frame: far below the codec's frame limit.
inline constexpr size_t kCleanupChunk = 64 * 1024;
// Recipients per CleanupRecipients frame.
inline constexpr size_t kCleanupRecipientBatch = 1000;

struct CleanupAttribute {
  std::string name;
  std::string value;
  static constexpr auto kFields =
      std::make_tuple(field("name", &CleanupAttribute::name), field("value", &CleanupAttribute::value));
};

struct CleanupBegin {
  std::string origin;           // who submits: "pickup", "smtpd"
  std::string sender;           // internal form; empty for the null sender
  std::string full_name;        // the sender's name, for a From: header cleanup adds
  std::string rewrite_context;  // "local" (qualify bare names with @$myorigin) or "remote"
  std::string envid;            // DSN ENVID
  std::string ret;              // DSN RET: "F", "H" or empty
  int64_t arrival_seconds = 0;  // 0: now
  int32_t arrival_microseconds = 0;
  int64_t submit_uid = -1;      // the local user who submitted it (pickup), else -1
  std::string source_id;        // pickup: the maildrop file's queue ID, which the queue
                                // file takes, so that a file submitted twice (pickup
                                // killed before it removed it) is queued once
  std::vector<CleanupAttribute> attributes;  // written to the queue file as they are

  static constexpr std::string_view kType = "cleanup-begin";
  static constexpr auto kFields = std::make_tuple(
      field("origin", &CleanupBegin::origin), field("sender", &CleanupBegin::sender),
      field("full_name", &CleanupBegin::full_name), field("rewrite_context", &CleanupBegin::rewrite_context),
      field("envid", &CleanupBegin::envid), field("ret", &CleanupBegin::ret),
      field("arrival_seconds", &CleanupBegin::arrival_seconds),
      field("arrival_microseconds", &CleanupBegin::arrival_microseconds),
      field("submit_uid", &CleanupBegin::submit_uid), field("source_id", &CleanupBegin::source_id),
      field("attributes", &CleanupBegin::attributes));
};

struct CleanupRecipient {
  std::string address;  // internal form
  std::string orcpt;    // DSN ORCPT "addr-type;address", or empty
  int32_t notify = 0;   // DsnNotify bits
  static constexpr auto kFields =
      std::make_tuple(field("address", &CleanupRecipient::address), field("orcpt", &CleanupRecipient::orcpt),
                      field("notify", &CleanupRecipient::notify));
};

struct CleanupRecipients {
  std::vector<CleanupRecipient> recipients;
  static constexpr std::string_view kType = "cleanup-recipients";
  static constexpr auto kFields = std::make_tuple(field("recipients", &CleanupRecipients::recipients));
};

struct CleanupContent {
  std::string data;  // message text, lines ending in LF; a chunk may end mid-line
  static constexpr std::string_view kType = "cleanup-content";
  static constexpr auto kFields = std::make_tuple(field("data", &CleanupContent::data));
};

struct CleanupEnd {
  static constexpr std::string_view kType = "cleanup-end";
  static constexpr auto kFields = std::make_tuple();
};

struct CleanupReply {
  std::string status;  // "ok", "temp" or "perm"
  std::string queue_id;  // with "ok": the message's queue ID
  std::string reason;    // otherwise: an enhanced status code and text, "5.3.4 message file too big"

  static constexpr std::string_view kType = "cleanup-reply";
  static constexpr auto kFields =
      std::make_tuple(field("status", &CleanupReply::status), field("queue_id", &CleanupReply::queue_id),
                      field("reason", &CleanupReply::reason));
};

}  // namespace postern
