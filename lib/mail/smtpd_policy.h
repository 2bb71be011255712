// smtpd's restriction engine: Postfix's smtpd_*_restrictions lists (client, helo,
// sender, relay, recipient, data, end-of-data) evaluated against one SMTP session,
// with smtpd_delay_reject, the unlisted-recipient check, access tables, DNS-based
// checks and relay control.  smtpd calls check() at every stage and, on a reject
// or defer, answers "CODE DSN TEXT" and logs `log`.
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
  SmtpdPolicy(const SmtpdPolicy&) = delete;
  SmtpdPolicy& operator=(const SmtpdPolicy&) = delete;

  PolicyVerdict check(SmtpdStage stage, const SmtpdSession& session) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace postern
