// Mailbox writers for the local and virtual delivery agents: one message into a
// Maildir or appended to an mbox file.  The agent has already switched to the
// recipient's uid; these functions only write files, and say whether a failure
// is worth another try later (4.x.x) or not (5.x.x).
//
// Maildir (the qmail Maildir layout with the Maildir++ size tag)
//   The message is written to tmp/<unique>, fsync'ed, hard-linked to
//   new/<unique>,S=<bytes> (rename without overwrite where the file system has
//   no hard links), and new/ is fsync'ed: two fsyncs per delivery, more only
//   when folders had to be created.  <unique> is
//     <seconds>.M<microseconds>P<pid>Q<count>R<random>.<host>
//   with '/', ':' and ',' in the host name written as \057, \072 and \054 so
//   that the name stays one path component and the ":2," info and ",S=" tags
//   stay unambiguous.  A missing maildir and its tmp/, new/, cur/ are created
//   with mode 0700 (missing parents too, as Postfix does).
//
//   Redelivery detection (optional): with MaildirOptions::queue_id and
//   ::recipient set, the name in new/ is deterministic,
//     <queue-id seconds>.K<queue-id>_<hash of recipient>.<host>,S=<bytes>
//   and a file of that name in new/ or cur/ (where a reader may already have
//   moved it, with an info suffix) means an earlier attempt got through before
//   a crash kept the queue from recording it: the delivery then reports success
//   with already_delivered set and writes nothing.  It costs a scan of new/
//   and cur/ per delivery, so use it for retries, not for every first attempt.
//
// mbox (mbox(5), the "mboxo" quoting by default, like Postfix)
//   The file is opened with O_APPEND and without following a symbolic link,
//   and must be a regular file with one hard link; a missing one is created
//   with mode 0600 when allowed.  It is locked with a dot-lock (<path>.lock,
//   O_EXCL; one older than stale_lock_age is removed) and an fcntl lock, both
//   waited for with a bounded back-off.  Written: the separator line
//     From <sender> <asctime date>        (MAILER-DAEMON for the null sender)
//   the prefix headers, the message with lines that begin with "From " quoted
//   as ">From " (FromQuoting::kMboxrd also turns ">From " into ">>From "),
//   and one blank line.  A mailbox whose last message lacks its final newline
//   or blank line gets them first.  One fsync per delivery (two when the file
//   was created).  On any failure the file is truncated back to the size it
//   had under the lock, so a reader never sees half a message.
//
// Content: CRLF line ends become LF in both formats; a message that does not
// end with a newline gets one.  Size limits (mailbox_size_limit semantics):
// for mbox the file may not grow past the limit, for Maildir the one message
// file may not exceed it; either failure is a permanent 5.2.2.
#pragma once

#include <chrono>
#include <cstdint>
#include <ctime>
#include <sys/types.h>
#include <string>
#include <string_view>

namespace postern {

struct DeliveryContent {
  std::string sender;          // envelope sender in external form; "" is the null sender
  std::string prefix_headers;  // e.g. "Delivered-To: u@d\nReturn-Path: <s@d>\n"; CRLF or LF
  std::string_view message;    // header and body as queued (not copied: keep it alive)
};

enum class DeliveryStatus { kDelivered, kTemporary, kPermanent };

struct [[nodiscard]] MailboxResult {
  DeliveryStatus status = DeliveryStatus::kDelivered;
  std::string dsn = "2.0.0";   // enhanced status code (RFC 3463)
  std::string text;            // why, for the log and the defer/bounce reason
  std::string file;            // Maildir: the delivered file's path
  bool already_delivered = false;  // Maildir redelivery found an earlier copy

  bool ok() const noexcept { return status == DeliveryStatus::kDelivered; }
  bool temporary() const noexcept { return status == DeliveryStatus::kTemporary; }
  bool permanent() const noexcept { return status == DeliveryStatus::kPermanent; }
};

// How a system error is reported: EDQUOT 4.2.2, ENOSPC 4.3.1, EIO 4.3.0,
// EFBIG 5.2.2 (a size limit), a path that is not what it must be (ENOTDIR,
// EISDIR, ELOOP, ENAMETOOLONG) 5.2.0, anything else, permission problems
// included, 4.2.0: a mistake an administrator can fix should not bounce mail.
MailboxResult mailbox_error(int err, const std::string& what);

struct MaildirOptions {
  uint64_t size_limit = 0;  // most bytes of the message file; 0 means no limit
  std::string hostname;     // "" means gethostname()
  std::string queue_id;     // with recipient: deterministic name, see above
  std::string recipient;
};

MailboxResult deliver_to_maildir(const std::string& maildir, const DeliveryContent& msg,
                                 const MaildirOptions& options = {});

enum class FromQuoting {
  kMboxo,   // "From " -> ">From " only (Postfix, most readers)
  kMboxrd,  // any ">*From " gets one more '>' so a reader can undo it exactly
};

struct MboxOptions {
  uint64_t size_limit = 0;  // most bytes the file may reach; 0 means no limit
  bool create = true;       // create a missing mailbox (mode 0600)
  FromQuoting quoting = FromQuoting::kMboxo;
  std::chrono::milliseconds lock_wait{20000};  // how long to wait for both locks
  std::chrono::seconds stale_lock_age{300};    // an older dot-lock is removed
  time_t from_time = 0;     // date of the separator line, local time; 0 means now
};

MailboxResult deliver_to_mbox(const std::string& path, const DeliveryContent& msg,
                              const MboxOptions& options = {});

// The separator line "From <sender> <asctime date>\n" (local time); local also
// gives it to commands as their first line.
std::string mbox_from_line(const std::string& sender, time_t when);

// A mailbox in a spool the user cannot write to (Debian's /var/mail, root:mail
// 2775), made ready by the privileged caller before the user's delivery: a
// missing one is created without following a link (O_EXCL|O_NOFOLLOW), mode
// 0600, and given to uid:gid; an existing one must be a regular file with one
// link, owned by uid.  A symbolic link or another owner's file is refused as a
// temporary 4.2.0 (an administrator should look), and never opened.
MailboxResult prepare_spool_mailbox(const std::string& path, uid_t uid, gid_t gid);

}  // namespace postern
