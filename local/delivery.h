// local's building blocks: the outcome of one delivery, the accounts whose
// rights a delivery has, and running a mailbox or file write with those rights
// in a child process (local itself stays root for the next recipient).
#pragma once

#include <sys/types.h>

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "mail/delivery_protocol.h"
#include "mail/mailbox.h"

namespace postern {

struct Outcome {
  std::string status = std::string(kDeliveryOk);
  std::string dsn = "2.0.0";
  std::string text = "delivered";
  bool needs_sync = false;  // not recognisable on a retry (mbox, file, command): mark done with fdatasync
};

Outcome defer(std::string dsn, std::string text);
Outcome bounce(std::string dsn, std::string text);
Outcome outcome_of(const MailboxResult& result);
// The worse of two: defer over bounce over ok (a defer is retried; both keep the message).
Outcome worse(const Outcome& a, const Outcome& b);

struct Account {
  uid_t uid = 0;
  gid_t gid = 0;
  std::string name, home, shell;
};

// A passwd lookup: the account, nothing (unknown), or an error (try again later).
struct AccountLookup {
  std::optional<Account> account;
  std::string error;
};

AccountLookup account_by_name(const std::string& name);
AccountLookup account_by_uid(uid_t uid);

// Switches this process's effective IDs (and groups) to the account while a
// user's file is opened and read (.forward, :include:), and back to root when
// it ends.  Does nothing when local does not run as root.
class EffectiveIds {
 public:
  explicit EffectiveIds(const Account& account);
  ~EffectiveIds();
  EffectiveIds(const EffectiveIds&) = delete;
  EffectiveIds& operator=(const EffectiveIds&) = delete;

 private:
  void restore();
  bool switched_ = false;
  std::vector<gid_t> saved_groups_;
};

// Runs write in this process with the account's effective uid and gid (as
// Postfix's local does): for Maildir deliveries, which run no code of the user's
// and need no lock, so the fork of in_child_as is not worth its cost.
Outcome in_process_as(const Account& account, const std::function<MailboxResult()>& write);

// Runs write in a child process with the account's uid and gid plus the extra
// groups (root's own deliveries stay root); prepare, when given, runs first in the
// child while it is still root.  The result comes back over a socket pair.
Outcome in_child_as(const Account& account, const std::vector<gid_t>& extra_groups,
                    const std::function<MailboxResult()>& prepare, const std::function<MailboxResult()>& write);

}  // namespace postern
