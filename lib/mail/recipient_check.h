// Which class of destination a domain belongs to, as Postfix resolves it
// (mydestination and this machine's [IP] literals, virtual_alias_domains,
// virtual_mailbox_domains, relay_domains, or elsewhere), and whether an address
// is a known recipient of its class: local users (the password file through
// unix:passwd.byname, alias_maps and whatever else local_recipient_maps names),
// virtual_alias_maps, virtual_mailbox_maps, relay_recipient_maps. smtpd's
// reject_unlisted_recipient / reject_unlisted_sender and relay control use it.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "mail/config.h"
#include "mail/table.h"

namespace postern {

// Opens a table that main.cf names for smtpd (what: "relay_domains", or
// "smtpd_client_restrictions: check_client_access"). A spec that is wrong in main.cf
// itself (no type, an unknown type, a bad inline: or static: table) throws
// ConfigError at file:line. A table kept elsewhere that cannot be opened (a missing
// .db file, an unreadable or broken source) is logged and replaced, as Postfix does,
// by one whose every lookup fails temporarily: mail waits (4xx) rather than being
// refused or let through, and the server keeps serving what does not need it.
std::unique_ptr<Table> open_table_or_stand_in(std::string_view spec, const std::string& file, int line,
                                              const std::string& what);

enum class DomainClass { kLocal, kVirtualAlias, kVirtualMailbox, kRelay, kOther };

struct DomainClassResult {
  DomainClass domain_class = DomainClass::kOther;
  bool temp_fail = false;  // a table of domains could not answer
  std::string error;       // why, when temp_fail
};

struct RecipientVerdict {
  enum class Status { kKnown, kUnknown, kTempFail } status = Status::kKnown;
  int code = 0;        // for kUnknown: the *_reject_code of the table that did not know it
  std::string reason;  // "User unknown in local recipient table", or the lookup failure
};

class RecipientCheck {
 public:
  // Opens every table the check needs; throws ConfigError naming main.cf:line for a bad one.
  explicit RecipientCheck(const Config& config);
  ~RecipientCheck();
  RecipientCheck(const RecipientCheck&) = delete;
  RecipientCheck& operator=(const RecipientCheck&) = delete;

  // The class of a domain (lower case; one trailing dot is ignored; "" is local,
  // as a bare user name is).
  DomainClassResult classify(std::string_view domain) const;
  // Whether the address (internal form) is known in its domain's class; addresses
  // of other domains are always known (that is relay control's business).
  RecipientVerdict check(std::string_view address) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace postern
