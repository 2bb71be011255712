// One SMTP session of the smtp client with one server address: connection,
// greeting, EHLO (HELO for servers without ESMTP), STARTTLS as
// smtp_tls_security_level asks, AUTH with smtp_sasl_password_maps, then any number
// of mail transactions (RSET between them when the session is reused).
//
// A transaction gives each recipient a result.  Recipients left pending (a 4xx
// to MAIL FROM, DATA or the end of data, a lost connection before the end of
// data, a timeout) are for the caller to try at the next MX host; per-recipient
// 4xx and 5xx replies are final for this attempt.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "mail/config.h"
#include "mail/delivery_protocol.h"
#include "mail/smtp_client.h"
#include "mail/table.h"
#include "mail/transport.h"
#include "targets.h"
#include "util/tls.h"

namespace postern {

enum class TlsLevel { kNone, kMay, kEncrypt, kVerify, kSecure };

// The smtp_* parameters a session follows, read once per process.
struct SmtpSettings {
  explicit SmtpSettings(const Config& config);

  std::string helo_name;
  std::string myhostname;
  SmtpTimeout connect_timeout, helo_timeout, mail_timeout, rcpt_timeout, data_init_timeout, data_xfer_timeout,
      data_done_timeout, quit_timeout;
  TlsLevel tls_level = TlsLevel::kNone;
  SslCtxPtr tls_context;  // for the level; none for kNone
  std::vector<std::string> verify_match, secure_match;
  std::unique_ptr<TableList> sasl_passwords;  // when smtp_sasl_auth_enable
};

// What one recipient came to; status empty while it is still pending.
struct RecipientOutcome {
  const DeliveryRecipient* recipient = nullptr;
  std::string status;
  std::string dsn;
  std::string text;
  bool pending() const { return status.empty(); }
};

// The message as the session sends it.
struct OutgoingMessage {
  std::string queue_id;
  std::string sender;
  std::string content;  // from the queue file, LF line ends
  MailFromOptions mail_options;
  bool needs_smtputf8 = false;  // non-ASCII envelope addresses
};

// Why a session could not be set up or went bad.
struct SessionFailure {
  std::string dsn;   // "4.4.1", "5.4.6", ...
  std::string text;  // "connect to mx.example.com[192.0.2.1]:25: Connection refused"
  bool bounce = false;           // final for every recipient (a loop to ourselves)
  bool retry_plaintext = false;  // opportunistic TLS failed in the handshake: try again without
};

class SmtpSession {
 public:
  // Connects and says hello.  plaintext: no STARTTLS even where the level may use it.
  static std::variant<std::unique_ptr<SmtpSession>, SessionFailure> open(const SmtpTarget& target,
                                                                         const NextHop& hop,
                                                                         const SmtpSettings& settings,
                                                                         bool plaintext = false);

  // Sends the message to the pending recipients; returns false when the session is
  // no longer usable (lost, timed out, out of step).
  bool deliver(const OutgoingMessage& message, std::vector<RecipientOutcome>& recipients);
  // For a reused session: RSET, true when the server is still with us.
  bool reset();
  void quit();

  const SmtpTarget& target() const { return target_; }
  // "Verified TLS connection established to ...", or empty without TLS.
  const std::string& tls_summary() const { return tls_summary_; }

 private:
  SmtpSession(SmtpConnection conn, const SmtpTarget& target, const SmtpSettings& settings)
      : conn_(std::move(conn)), target_(target), settings_(settings) {}
  std::optional<SessionFailure> hello(const NextHop& hop, bool plaintext);
  std::optional<SessionFailure> authenticate(const NextHop& hop);
  std::string said(const SmtpReply& reply, std::string_view command) const;
  std::string lost(std::string_view error, std::string_view while_doing) const;

  SmtpConnection conn_;
  SmtpTarget target_;
  const SmtpSettings& settings_;
  EhloExtensions ext_;
  std::string tls_summary_;
};

}  // namespace postern
