// smtpd's restriction engine: Postfix's smtpd_*_restrictions lists (client, helo,
// sender, relay, recipient, data, end-of-data) evaluated against one SMTP session,
// with smtpd_delay_reject, the unlisted-recipient check, access tables, DNS-based
// checks and relay control.  smtpd calls check() at every stage and, on a reject
// or defer, answers "CODE DSN TEXT" and logs `log`.
//
// Restrictions (Postfix's names and replies): permit, reject, defer, dunno,
// permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination,
// defer_unauth_destination, reject_unlisted_recipient (also spelt
// reject_unknown_recipient), reject_unlisted_sender, reject_non_fqdn_sender,
// reject_non_fqdn_recipient, reject_non_fqdn_helo_hostname, reject_invalid_helo_hostname,
// reject_unknown_sender_domain, reject_unknown_recipient_domain,
// reject_unknown_client_hostname, reject_unknown_reverse_client_hostname,
// check_client_access, check_helo_access, check_sender_access and
// check_recipient_access type:table, reject_rbl_client domain[=d.d.d.d],
// reject_sender_login_mismatch, reject_authenticated_sender_login_mismatch,
// reject_unauth_pipelining.  A table or DNS lookup that fails temporarily
// answers "451 4.3.0 <what>: Temporary lookup failure", never 5xx or accept.
// mynetworks, when unset, follows mynetworks_style, which defaults to host (only
// this machine's addresses), as in Postfix 3.
#pragma once

#include <memory>
#include <string>

#include "mail/config.h"

namespace postern {

struct SmtpdSession {
  std::string client_address;
  std::string client_name;  // verified reverse name or "unknown"
  std::string helo_name;
  std::string sasl_username;
  std::string sender;  // internal form, "" = null sender
  std::string recipient;
  bool tls = false;
  std::string tls_protocol, tls_cipher;
  int recipient_count = 0;
  // Postern additions, for reject_unauth_pipelining and the log line:
  bool unauth_pipelining = false;  // the client sent commands ahead of a reply without PIPELINING
  std::string protocol;            // "SMTP" or "ESMTP" (proto= in the log), empty: left out
};

enum class SmtpdStage { kConnect, kHelo, kMail, kRcpt, kData, kEndOfData };

// A reject or defer carries the reply ("CODE DSN TEXT") and `log`, Postfix's
// "reject: RCPT from name[addr]: CODE DSN TEXT; from=<s> to=<r> proto=P helo=<h>"
// followed by " restriction=LIST:NAME" (which rule said no); smtpd puts the queue
// ID or "NOQUEUE: " in front.
struct PolicyVerdict {
  enum class Kind { kAccept, kReject, kDefer } kind = Kind::kAccept;
  int code = 0;
  std::string dsn, text, log;
  bool is_accept() const { return kind == Kind::kAccept; }
};

class SmtpdPolicy {
 public:
  explicit SmtpdPolicy(const Config& config);  // throws ConfigError on a bad list
  ~SmtpdPolicy();
  SmtpdPolicy(SmtpdPolicy&&) noexcept;
  SmtpdPolicy& operator=(SmtpdPolicy&&) noexcept;

  PolicyVerdict check(SmtpdStage stage, const SmtpdSession& session) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace postern
