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
//
// IncomingMessage is the one writer of new queue files in incoming, for cleanup
// (one message per protocol connection) and smtpd (in process, committed by its
// group-commit thread): envelope checks, qualification, the content through a
// ContentCleaner, into a QueueFileWriter.
// Not done yet: Resent-* variants, To: undisclosed-recipients, header rewriting,
// recipient extraction (sendmail -t does it before the queue).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "mail/cleanup_protocol.h"
#include "mail/queue_file.h"
#include "mail/submission.h"
#include "mail/virtual_alias.h"

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
  // A Received: field the caller made (smtpd), whole with its folding and final LF;
  // it goes first in the header.
  std::string received;
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

class Config;
CleanupSettings cleanup_settings(const Config& config);

// Why a message was not queued: "temp" (the system failed; try again) or "perm"
// (the message is wrong), with an enhanced status code in reason ("5.3.4 ...").
struct CleanupRefusal {
  std::string status;
  std::string reason;
};

// A message on its way into SPOOL/incoming.  Every method throws CleanupRefusal;
// a message destroyed without commit leaves nothing in the queue.
class IncomingMessage {
 public:
  // received: a Received: field for CleanupMessage::received, made by a caller
  // that needs the queue ID (given to it) in the field.
  using ReceivedMaker = std::function<std::string(const std::string& queue_id)>;
  IncomingMessage(const Config& config, const CleanupBegin& begin, const ReceivedMaker& received = {});
  IncomingMessage(const IncomingMessage&) = delete;  // the cleaner's output holds `this`
  IncomingMessage& operator=(const IncomingMessage&) = delete;

  const std::string& queue_id() const { return queue_id_; }
  void add_recipient(const CleanupRecipient& recipient);
  void add_content(std::string_view text);
  uint64_t content_size() const { return cleaner_->input_size(); }
  const std::string& message_id() const { return cleaner_->message_id(); }
  // Ends the content and checks the envelope; the writer is then ready to commit.
  QueueFileWriter& finish();
  // The writer, for a committer on another thread; the message is then spent.
  std::unique_ptr<QueueFileWriter> release();
  std::string incoming_folder() const { return spool_ + "/incoming"; }

 private:
  std::string spool_;
  std::string origin_;
  std::string rewrite_context_;
  CleanupSettings settings_;
  std::unique_ptr<QueueFileWriter> writer_;
  std::string queue_id_;
  std::unique_ptr<ContentCleaner> cleaner_;
  size_t recipients_ = 0;
  VirtualAliases* aliases_;  // virtual_alias_maps (virtual_alias.h)
};

// Pokes the queue manager through SPOOL/public/qmgr when it exists (a connect
// and close; failures are ignored: qmgr scans incoming on its own anyway).
void poke_qmgr(const std::string& spool);

}  // namespace postern
