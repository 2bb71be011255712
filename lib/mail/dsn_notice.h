// Delivery status notifications (RFC 3464, RFC 6522) as Postfix's bounce(8)
// writes them: who gets one (DSN NOTIFY, the double-bounce rules), the notice
// itself, and its submission through cleanup.  Used by the bounce daemon for
// messages in the queue and by pickup for messages cleanup refused.
//
// Who gets a notice about a message from sender S:
//   S an ordinary address     S, from the null sender <>;
//   S the null sender         2bounce_notice_recipient (postmaster), from
//                             $double_bounce_sender@$myorigin: a bounce that bounced;
//   S the double-bounce address  nobody: the notice is discarded and logged, so
//                             notices never loop.
// A delay warning goes to an ordinary S only.  Per recipient, DSN NOTIFY decides
// (RFC 3461): a failure is reported unless NOTIFY was given without FAILURE
// (NEVER, SUCCESS, DELAY), a delay unless NOTIFY was given without DELAY.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "mail/queue_file.h"
#include "mail/queue_tools.h"
#include "util/result.h"
#include "util/socket.h"

namespace postern {

class Config;

enum class NoticeKind { kFailure, kDelay };

struct NoticeSettings {
  std::string myhostname;
  std::string myorigin;
  std::string double_bounce_sender;    // the local part; @$myorigin is added
  std::string two_bounce_recipient;    // 2bounce_notice_recipient
  size_t size_limit = 50000;           // bounce_size_limit: bytes of the original returned
  static NoticeSettings from_config(const Config& config);
  std::string double_bounce_address() const;
};

// Whether a recipient with these DSN NOTIFY bits wants a notice of this kind.
bool wants_notice(int notify, NoticeKind kind);

struct NoticeRoute {
  bool discard = false;       // no notice: a double bounce, or a delay of a bounce
  std::string sender;         // the notice's envelope sender
  std::string recipient;      // the notice's only recipient
};
NoticeRoute route_notice(const NoticeSettings& settings, std::string_view original_sender, NoticeKind kind);

// What a notice reports, apart from the settings.
struct NoticeInput {
  NoticeKind kind = NoticeKind::kFailure;
  std::string queue_id;           // of the original message
  int64_t arrival_seconds = 0;
  std::string original_sender;
  std::string envid;              // DSN ENVID, or empty
  DsnRet ret = DsnRet::kUnspecified;
  std::string to;                 // the notice's recipient, for its To: field
  std::vector<StatusRecord> records;  // one per recipient reported
  std::string original;           // the original message (or more of it than the limit)
  int64_t now = 0;
};

// The notice as a message (header and body, lines ending in LF): a
// multipart/report with a text part, a message/delivery-status part and the
// original (message/rfc822), only its header (text/rfc822-headers) when RET=HDRS,
// cut at a line end before settings.size_limit bytes; no third part when the
// original is empty.
std::string compose_notice(const NoticeSettings& settings, const NoticeInput& input);

struct NoticeOutcome {
  std::string notice_id;  // the notice's queue ID; empty when none was sent
  std::string why_none;   // when none was sent: why
};
// Composes the notice of this kind about file for records and submits it through
// cleanup (public/cleanup under spool).  A failure means nothing was queued: the
// caller keeps what it needs to try again.
Result<NoticeOutcome> send_notice(const std::string& spool, const NoticeSettings& settings, NoticeKind kind,
                                  const QueueFile& file, const std::vector<StatusRecord>& records, Timeout timeout);

}  // namespace postern
