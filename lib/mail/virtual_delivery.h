// Delivery to virtual mailboxes, as Postfix's virtual(8) does it, with Maildir++
// quotas: the part of the virtual agent that needs no queue file, so that it can
// be tested alone and smtpd can ask whether a user is over quota.
//
// For a recipient (internal form), looked up with address_keys() (the address,
// the address without its recipient_delimiter extension, then @domain):
//   virtual_mailbox_maps     the mailbox, relative to virtual_mailbox_base; a path
//                            ending in '/' is a Maildir, else an mbox file. Not
//                            found: bounce 5.1.1. A path that is absolute or has a
//                            ".." component: defer 4.3.0 (a table to fix, not mail to lose).
//   virtual_uid_maps,        the owner the mailbox is written as ("static:5000" or a
//   virtual_gid_maps         table); a missing, non-numeric or below
//                            virtual_minimum_uid uid defers 4.3.0; uid 0 never
//                            passes (virtual_minimum_uid is at least 1).
//   virtual_mailbox_limit_maps the user's Maildir++ quota (maildir_quota.h), else
//                            virtual_mailbox_quota; a value that does not parse defers.
// Any table that fails temporarily defers 4.3.0: never a bounce, never a drop.
//
// Writing (in a process that already runs as the mailbox's owner):
//   Maildir: a missing Maildir is created (mode 0700, parents too). With a quota,
//   the message must fit (maildir_quota.h) or the recipient is deferred 4.2.2
//   ("mailbox full"), or bounced 5.2.2 with virtual_overquota_bounce = yes; a
//   delivered message is added to maildirsize. virtual_mailbox_limit bounds the
//   one message file. With virtual_extension_folders = yes, mail for user+name@domain
//   goes into the Maildir++ folder ".name" when that folder exists, else the inbox.
//   mbox: appended under virtual_mailbox_limit (mailbox.h); quotas are for Maildirs.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>
#include <string_view>

#include "mail/config.h"
#include "mail/delivery_protocol.h"
#include "mail/mailbox.h"
#include "mail/maildir_quota.h"
#include "mail/table.h"

namespace postern {

// Where one recipient's mail goes.
struct VirtualMailbox {
  std::string path;        // virtual_mailbox_base/value, without the trailing '/'
  bool maildir = false;
  uid_t uid = 0;
  gid_t gid = 0;
  MaildirQuota quota;
  std::string folder;      // ".name" with virtual_extension_folders, else ""
};

// The answer of a lookup: a mailbox, or a deferral or bounce with its reason.
struct VirtualLookup {
  std::string status = std::string(kDeliveryOk);  // kDeliveryOk, kDeliveryDefer, kDeliveryBounce
  std::string dsn;
  std::string text;
  VirtualMailbox mailbox;
  bool ok() const { return status == kDeliveryOk; }
};

enum class QuotaCheck { kFits, kOver, kUnknown };

class VirtualMailboxes {
 public:
  // Opens the tables; throws ConfigError naming main.cf:line for a bad one.
  explicit VirtualMailboxes(const Config& config);
  ~VirtualMailboxes();
  VirtualMailboxes(const VirtualMailboxes&) = delete;
  VirtualMailboxes& operator=(const VirtualMailboxes&) = delete;

  VirtualLookup find(std::string_view recipient);

  // Writes one message into the mailbox; run it with the mailbox owner's credentials.
  // options carries the redelivery name (queue ID, recipient); its size limit is set here.
  MailboxResult write(const VirtualMailbox& mailbox, const DeliveryContent& content, MaildirOptions options) const;

  // For smtpd at RCPT time: whether a message of size bytes (0: any message)
  // still fits the recipient's quota, from maildirsize as it stands (never
  // rewritten here). kUnknown when that cannot be told (not a virtual user, no
  // quota, a table or file that cannot be read): the message is then accepted
  // and the delivery agent decides.
  QuotaCheck check_quota(std::string_view recipient, uint64_t size = 0);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace postern
