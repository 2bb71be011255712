// Maildir++ quotas: the maildirsize file that Courier, Dovecot and other Maildir++
// readers keep, so that a user's usage means the same to all of them.
//
// maildirsize, at the top of the Maildir:
//   line 1      the quota: "<bytes>S,<count>C", either part left out when it has no
//               limit ("10000000S", "500C")
//   lines 2..   "<bytes> <count>" changes, negative for removals; each appended with
//               one write(2) on an O_APPEND descriptor so that writers never mix
// The usage is the sum of the lines after the first.  The file is rebuilt from a
// scan of the mailbox (cur/ and new/ of the Maildir and of every .folder,
// Trash included, as Dovecot counts it; a size from the ",S=" tag of the file name,
// else from stat) written to tmp/ and renamed over the old one, when:
//   it is missing or unreadable, its first line is not the current quota, it has
//   grown past 5120 bytes, or the message being delivered would not fit by it and
//   it is older than 15 minutes (a reader may have removed mail without recording it).
// A message fits when usage + its size <= the byte quota and usage + 1 <= the
// count quota: a mailbox may be filled exactly to its limit, never past it.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "mail/mailbox.h"
#include "util/result.h"

namespace postern {

struct MaildirQuota {
  uint64_t bytes = 0;     // 0: no limit
  uint64_t messages = 0;  // 0: no limit
  bool unlimited() const { return bytes == 0 && messages == 0; }
  bool operator==(const MaildirQuota&) const = default;
};

struct MaildirUsage {
  int64_t bytes = 0;
  int64_t messages = 0;
  bool operator==(const MaildirUsage&) const = default;
};

// Parses a quota as tables give it: "<bytes>", "<bytes>S", "<count>C" or
// "<bytes>S,<count>C" (either order); "0" or "" is no quota.
Result<MaildirQuota> parse_maildir_quota(std::string_view text);
// The maildirsize form: "1000S,10C", "1000S", "10C"; "" when unlimited.
std::string format_maildir_quota(const MaildirQuota& quota);

// The bytes deliver_to_maildir writes for content (LF line ends, a final newline).
uint64_t maildir_message_size(const DeliveryContent& content);

// Scans the Maildir (cur/ and new/ of it and of its .folders).
Result<MaildirUsage> scan_maildir_usage(const std::string& maildir);

// The usage maildirsize records, rebuilding the file first when the rules above say so.
// The Maildir must exist. Failures are system errors worth a retry. With may_rebuild
// false (a reader that must not write, like smtpd's RCPT check) a file that would
// need rebuilding is a failure instead. adding is the size of the message about to
// be delivered (0: none), for the staleness rule.
Result<MaildirUsage> maildir_usage(const std::string& maildir, const MaildirQuota& quota, bool may_rebuild = true,
                                   uint64_t adding = 0);

// Whether one more message of size bytes fits.
bool fits_quota(const MaildirUsage& usage, const MaildirQuota& quota, uint64_t size);

// Appends "<bytes> <messages>" to maildirsize (when the file exists: without one
// there is nothing to keep in step, and the next maildir_usage() scans).
Result<void> record_maildir_usage(const std::string& maildir, int64_t bytes, int64_t messages);

}  // namespace postern
