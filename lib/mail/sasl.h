// The server side of SASL PLAIN (RFC 4616) and LOGIN, with the framing SMTP AUTH
// (RFC 4954), IMAP AUTHENTICATE (RFC 9051) and POP3 AUTH (RFC 5034) share: every
// challenge and response is one line of base64, "*" cancels, and an initial
// response of "=" is an empty one.  Pure: no I/O, no password checks.  A server
// feeds it the client's lines and gets back a challenge to send, a failure, or the
// credentials to verify (with the auth service, auth_client.h).
//
//   SaslExchange sasl(SaslMechanism::kPlain);
//   SaslStep step = sasl.start(initial_response);     // AUTH PLAIN [initial-response]
//   while (auto* c = std::get_if<SaslChallenge>(&step)) {
//     send("334 " + c->base64);                        // "+ " in IMAP and POP3
//     step = sasl.respond(read_line());
//   }
//   if (auto* f = std::get_if<SaslFailure>(&step)) ...  // reply as sasl_failure_reply() says
//   auto& creds = std::get<SaslCredentials>(step);      // verify creds.user / creds.password
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <variant>

namespace postern {

enum class SaslMechanism { kPlain, kLogin };

// "PLAIN" or "LOGIN" in any case; nothing for a mechanism we do not offer.
std::optional<SaslMechanism> parse_sasl_mechanism(std::string_view name);
// The mechanisms to announce (EHLO "AUTH ...", IMAP "AUTH=..."), in preference order.
inline constexpr std::string_view kSaslMechanisms = "PLAIN LOGIN";

// Send this to the client and wait for its next line.
struct SaslChallenge {
  std::string base64;  // may be empty ("334 " / "+ ")
};

// Who logs in.  An authorization identity that is not the login itself is refused,
// so only one name comes out.
struct SaslCredentials {
  std::string user;
  std::string password;
};

// Why an exchange ended without credentials.  The reason is the same in every
// protocol; how to say it differs (sasl_failure_reply gives SMTP's words).
struct SaslFailure {
  enum Kind {
    kCancelled,          // the client sent "*"
    kBadEncoding,        // a line that is not base64
    kMalformed,          // decoded, but not what the mechanism expects (missing or empty fields, NUL, not UTF-8, too long)
    kAuthzidRefused,     // asked to act as another user
    kOutOfSequence,      // a response after the exchange had ended
  };
  Kind kind;
  std::string reason;  // for logs, never containing the password
};

using SaslStep = std::variant<SaslChallenge, SaslCredentials, SaslFailure>;

// The SMTP reply for a failure (RFC 4954): "501 5.0.0 ...", "501 5.5.2 ...", "535 5.7.8 ...".
std::string sasl_failure_reply(const SaslFailure& failure);

// One exchange, from AUTH to credentials or failure.
class SaslExchange {
 public:
  explicit SaslExchange(SaslMechanism mechanism) : mechanism_(mechanism) {}

  // Starts the exchange; initial_response is the text after the mechanism name
  // (nothing when the client sent none, "=" for an empty one).
  SaslStep start(std::optional<std::string_view> initial_response = std::nullopt);
  // The client's answer to the last challenge (the line without its CRLF).
  SaslStep respond(std::string_view line);

  // The longest user name and password accepted (RFC 4616 asks for at least 255 octets).
  static constexpr size_t kMaxField = 1024;

 private:
  SaslStep take(std::string_view decoded);
  SaslStep finish(SaslStep step);

  SaslMechanism mechanism_;
  enum class State { kNew, kWaiting, kWaitingPassword, kDone } state_ = State::kNew;
  std::string user_;  // LOGIN: the user name while its password is asked for
};

// Base64 (RFC 4648, with padding, no white space), as SASL lines carry it.
std::string base64_encode(std::string_view data);
std::optional<std::string> base64_decode(std::string_view text);

}  // namespace postern
