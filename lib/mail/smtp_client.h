// The SMTP client's protocol pieces (RFC 5321 and its extensions), apart from
// the smtp daemon's policy so they can be tested on their own: replies (multi-line,
// enhanced status codes), the EHLO extension list, MAIL FROM and RCPT TO with
// their parameters (SIZE, BODY, SMTPUTF8, RET, ENVID, NOTIFY, ORCPT), the message
// content as DATA sends it, the texts that quote a remote reply in bounces, and a
// blocking connection (TCP, then STARTTLS) with a deadline for each step.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "mail/queue_file.h"
#include "util/fd.h"
#include "util/result.h"
#include "util/tls.h"

namespace postern {

struct SmtpReply {
  int code = 0;
  std::string enhanced;            // "5.1.1" when the reply carries one, else empty
  std::vector<std::string> lines;  // the text of each line, without code and separator
  bool positive() const { return code >= 200 && code < 400; }
  bool temporary() const { return code >= 400 && code < 500; }
  // "550 5.1.1 <x@example.com>: user unknown" (lines joined with a space).
  std::string text() const;
  // The reply's enhanced code, else one made from its class ("4.0.0", "5.0.0").
  std::string dsn() const;
};

// Parses one complete reply from its lines (CRLF or LF removed); fails on a line that
// is not "NNN[ -]text", or codes that differ between lines.
Result<SmtpReply> parse_reply(const std::vector<std::string>& lines);

struct EhloExtensions {
  bool pipelining = false;
  bool eightbitmime = false;
  bool smtputf8 = false;
  bool dsn = false;
  bool starttls = false;
  std::optional<uint64_t> size;     // SIZE announced; 0 means no limit given
  std::vector<std::string> auth;    // AUTH mechanisms, upper case
  std::string greeting_name;        // the first word of the first line (the server's name)
};
EhloExtensions parse_ehlo(const SmtpReply& reply);

// xtext (RFC 3461 section 4): '+', '=', controls, space and non-ASCII as "+XX".
std::string xtext_encode(std::string_view text);

struct MailFromOptions {
  uint64_t size = 0;            // announced when the server has SIZE
  bool eightbit = false;        // BODY=8BITMIME when the server has 8BITMIME
  bool smtputf8 = false;        // SMTPUTF8 (only when the server has it)
  DsnRet ret = DsnRet::kUnspecified;  // RET= when the server has DSN
  std::string envid;                   // ENVID= when the server has DSN
};
std::string mail_from_command(std::string_view sender, const MailFromOptions& options,
                              const EhloExtensions& server);
// NOTIFY= and ORCPT= only when the server has DSN.
std::string rcpt_to_command(std::string_view recipient, uint8_t notify, std::string_view orcpt,
                            const EhloExtensions& server);

// The message as DATA sends it: every line ending CRLF, lines beginning with '.'
// doubled, then ".\r\n".
std::string data_content(std::string_view message);

// What a sender reads in a bounce or delay notice about a remote answer, as Postfix
// words it: "host mx.example.com[192.0.2.1] said: 550 5.1.1 <x@example.com>: user
// unknown (in reply to RCPT TO command)".
std::string remote_said(std::string_view host, std::string_view address, const SmtpReply& reply,
                        std::string_view command);

using SmtpTimeout = std::chrono::milliseconds;

// One SMTP connection: plain TCP, then possibly TLS. Every call waits at most the
// connection's current timeout (set before each protocol step, as the smtp_*_timeout
// parameters say).
class SmtpConnection {
 public:
  // Connects to a numeric IPv4 or IPv6 address.
  static Result<SmtpConnection> connect(const std::string& address, uint16_t port, SmtpTimeout timeout);

  void set_timeout(SmtpTimeout timeout) { timeout_ = timeout; }
  Result<void> send(std::string_view data);
  // Reads one whole reply (all its lines; at most 1000 lines of 2048 bytes).
  Result<SmtpReply> read_reply();
  // A command and its reply.
  Result<SmtpReply> command(std::string_view line);
  // TLS on the connection (after "220" to STARTTLS, or at once for wrapper mode).
  Result<void> start_tls(SslPtr ssl);
  const TlsStream* tls() const { return tls_ ? &*tls_ : nullptr; }
  // Whether the server closed its side (or sent something unasked) while idle.
  bool peer_closed();

 private:
  explicit SmtpConnection(UniqueFd fd) : fd_(std::move(fd)) {}
  Result<std::string> read_line();

  UniqueFd fd_;                   // until TLS takes it over
  std::optional<TlsStream> tls_;
  std::string buffer_;            // read but not yet used
  SmtpTimeout timeout_{std::chrono::seconds(300)};
};

}  // namespace postern
