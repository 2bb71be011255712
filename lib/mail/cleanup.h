// What cleanup does to a message on its way into the queue, apart from the daemon
// so that it can be tested alone and reused (smtpd may check a header early):
//
//   - envelope: an address without a domain gets @$myorigin in the local rewrite
//     context (Postfix's append_at_myorigin);
//   - content: the message size is checked against message_size_limit (5.3.4), a
//     header field (all its lines) against header_size_limit (5.6.0), and a NUL
//     byte anywhere is refused (5.6.0): Postern stores text, and a NUL would be cut
//     or misread by every program downstream.  Postfix drops such mail with a
//     bounce; without a bounce service we refuse it;
//   - header: Received (local submissions), Date, Message-ID and From are added
//     when missing; what is there is kept as it is, folding included.  The added
//     fields follow the existing ones, then the header ends with an empty line
//     (also when the message had none, or no header at all).
// Not done yet: Resent-* variants, To: undisclosed-recipients, header rewriting,
// recipient extraction (sendmail -t does it before the queue).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "mail/submission.h"

namespace postern {

// "user" -> "user@origin" when context is not "remote"; full addresses, the null
// sender and an empty origin leave it as it is.
std::string qualify_address(std::string_view internal, std::string_view rewrite_context, std::string_view origin);

// RFC 5322 date-time in local time: "Mon, 2 Jan 2006 15:04:05 -0700 (MST)".
std::string rfc5322_date(int64_t seconds);

// A display name as an RFC 5322 phrase: as it is when it is atoms and spaces,
// else a quoted string.  Control characters are dropped.
std::string display_phrase(std::string_view name);

struct CleanupSettings {
  std::string myhostname;
  std::string mail_name = "Postern";
  uint64_t message_size_limit = 0;  // 0: none
  uint64_t header_size_limit = 102400;
};

struct CleanupMessage {
  std::string queue_id;
  std::string sender;     // already qualified
  std::string full_name;  // display name for an added From:
  int64_t arrival_seconds = 0;
  int64_t submit_uid = -1;  // >= 0: a local submission, which gets a Received: field
};

// Processes the content as it streams in and passes the result to out, the header
// in one piece once it has ended, then the body as it comes.  After a refusal
// nothing more is passed on and feed()/finish() return false; error() says why
// with an enhanced status code ("5.3.4 ...").  All refusals are permanent.
class ContentCleaner {
 public:
  using Output = std::function<void(std::string_view)>;
  ContentCleaner(const CleanupSettings& settings, CleanupMessage message, Output out);

  bool feed(std::string_view text);
  bool finish();  // ends the message (a last line without LF gets one)
  bool failed() const { return !error_.empty(); }
  const std::string& error() const { return error_; }
  uint64_t input_size() const { return size_; }
  const std::string& message_id() const { return message_id_; }  // as added or found

 private:
  void line(std::string_view text);  // one line without its LF
  void end_header();
  void refuse(std::string reason);

  const CleanupSettings& settings_;
  CleanupMessage message_;
  Output out_;
  std::string error_;
  std::string partial_;  // an unfinished line
  uint64_t size_ = 0;
  bool in_header_ = true;
  bool body_mid_line_ = false;  // the body's last output did not end with LF
  std::vector<HeaderField> header_;
  uint64_t field_size_ = 0;
  std::string message_id_;
};

}  // namespace postern
