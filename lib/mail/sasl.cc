// SASL PLAIN and LOGIN, server side (see sasl.h).
#include "mail/sasl.h"

#include <array>
#include <cstdint>

#include "util/strings.h"

namespace postern {
namespace {

constexpr std::string_view kBase64Alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

// The LOGIN mechanism's customary prompts, which clients expect verbatim.
constexpr std::string_view kUsernamePrompt = "Username:";
constexpr std::string_view kPasswordPrompt = "Password:";

// Well-formed UTF-8 (RFC 3629: no overlong forms, no surrogates, nothing past U+10FFFF).
bool valid_utf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    auto c = static_cast<unsigned char>(s[i]);
    size_t extra;
    uint32_t cp;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      extra = 1;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      extra = 2;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      extra = 3;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + extra >= s.size()) return false;  // truncated sequence
    for (size_t k = 1; k <= extra; ++k) {
      auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    static constexpr std::array<uint32_t, 4> kMin{0, 0x80, 0x800, 0x10000};
    if (cp < kMin[extra] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += extra + 1;
  }
  return true;
}

SaslFailure malformed(std::string reason) { return {SaslFailure::kMalformed, std::move(reason)}; }

// A user name or password as the mechanisms allow it: not empty, no NUL, UTF-8, bounded.
std::optional<SaslFailure> check_field(std::string_view value, std::string_view what) {
  if (value.empty()) return malformed("empty " + std::string(what));
  if (value.size() > SaslExchange::kMaxField) return malformed(std::string(what) + " too long");
  if (value.find('\0') != std::string_view::npos) return malformed(std::string(what) + " contains NUL");
  if (!valid_utf8(value)) return malformed(std::string(what) + " is not UTF-8");
  return std::nullopt;
}

// RFC 4616: message = [authzid] NUL authcid NUL passwd
SaslStep parse_plain(std::string_view message) {
  size_t first = message.find('\0');
  if (first == std::string_view::npos) return malformed("PLAIN response without NUL separators");
  size_t second = message.find('\0', first + 1);
  if (second == std::string_view::npos) return malformed("PLAIN response with one NUL separator");
  std::string_view authzid = message.substr(0, first);
  std::string_view authcid = message.substr(first + 1, second - first - 1);
  std::string_view password = message.substr(second + 1);
  if (auto bad = check_field(authcid, "user name")) return *bad;
  if (auto bad = check_field(password, "password")) return *bad;
  if (!authzid.empty() && authzid != authcid)
    return SaslFailure{SaslFailure::kAuthzidRefused,
                       "user " + std::string(authcid) + " may not act as " + std::string(authzid)};
  return SaslCredentials{std::string(authcid), std::string(password)};
}

}  // namespace

std::optional<SaslMechanism> parse_sasl_mechanism(std::string_view name) {
  if (iequals(name, "PLAIN")) return SaslMechanism::kPlain;
  if (iequals(name, "LOGIN")) return SaslMechanism::kLogin;
  return std::nullopt;
}

std::string sasl_failure_reply(const SaslFailure& failure) {
  switch (failure.kind) {
    case SaslFailure::kCancelled: return "501 5.7.0 Authentication aborted";
    case SaslFailure::kBadEncoding: return "501 5.5.2 Cannot decode response";
    case SaslFailure::kOutOfSequence: return "503 5.5.1 Error: no authentication in progress";
    case SaslFailure::kMalformed:
    case SaslFailure::kAuthzidRefused: break;
  }
  return "535 5.7.8 Error: authentication failed: " + failure.reason;
}

SaslStep SaslExchange::start(std::optional<std::string_view> initial_response) {
  if (state_ != State::kNew) return finish(SaslFailure{SaslFailure::kOutOfSequence, "exchange already started"});
  state_ = State::kWaiting;
  if (!initial_response) {
    if (mechanism_ == SaslMechanism::kLogin) return SaslChallenge{base64_encode(kUsernamePrompt)};
    return SaslChallenge{};
  }
  // "=" is an empty initial response (RFC 4954); "*" still cancels.
  if (*initial_response == "=") return finish(take(""));
  return respond(*initial_response);
}

SaslStep SaslExchange::respond(std::string_view line) {
  if (state_ == State::kNew || state_ == State::kDone)
    return finish(SaslFailure{SaslFailure::kOutOfSequence, "no challenge was sent"});
  if (line == "*") return finish(SaslFailure{SaslFailure::kCancelled, "cancelled by the client"});
  auto decoded = base64_decode(line);
  if (!decoded) return finish(SaslFailure{SaslFailure::kBadEncoding, "invalid base64 in response"});
  return finish(take(*decoded));
}

SaslStep SaslExchange::take(std::string_view decoded) {
  if (mechanism_ == SaslMechanism::kPlain) return parse_plain(decoded);
  if (state_ == State::kWaiting) {
    if (auto bad = check_field(decoded, "user name")) return *bad;
    user_ = decoded;
    state_ = State::kWaitingPassword;
    return SaslChallenge{base64_encode(kPasswordPrompt)};
  }
  if (auto bad = check_field(decoded, "password")) return *bad;
  return SaslCredentials{std::move(user_), std::string(decoded)};
}

// Any step but a challenge ends the exchange.
SaslStep SaslExchange::finish(SaslStep step) {
  if (!std::holds_alternative<SaslChallenge>(step)) state_ = State::kDone;
  return step;
}

std::string base64_encode(std::string_view data) {
  std::string out;
  out.reserve((data.size() + 2) / 3 * 4);
  for (size_t i = 0; i < data.size(); i += 3) {
    uint32_t n = static_cast<unsigned char>(data[i]) << 16;
    if (i + 1 < data.size()) n |= static_cast<unsigned char>(data[i + 1]) << 8;
    if (i + 2 < data.size()) n |= static_cast<unsigned char>(data[i + 2]);
    out += kBase64Alphabet[(n >> 18) & 63];
    out += kBase64Alphabet[(n >> 12) & 63];
    out += i + 1 < data.size() ? kBase64Alphabet[(n >> 6) & 63] : '=';
    out += i + 2 < data.size() ? kBase64Alphabet[n & 63] : '=';
  }
  return out;
}

std::optional<std::string> base64_decode(std::string_view text) {
  if (text.size() % 4 != 0) return std::nullopt;
  std::string out;
  out.reserve(text.size() / 4 * 3);
  for (size_t i = 0; i < text.size(); i += 4) {
    bool last = i + 4 == text.size();
    uint32_t n = 0;
    int padding = 0;
    for (size_t k = 0; k < 4; ++k) {
      char c = text[i + k];
      if (c == '=' && last && k >= 2) {
        ++padding;
        n <<= 6;
        continue;
      }
      size_t value = kBase64Alphabet.find(c);
      if (value == std::string_view::npos || padding > 0) return std::nullopt;
      n = (n << 6) | static_cast<uint32_t>(value);
    }
    // The bits that padding leaves over must be zero (a canonical encoding).
    if ((padding == 1 && (n & 0xFF) != 0) || (padding == 2 && (n & 0xFFFF) != 0)) return std::nullopt;
    out += static_cast<char>((n >> 16) & 0xFF);
    if (padding < 2) out += static_cast<char>((n >> 8) & 0xFF);
    if (padding < 1) out += static_cast<char>(n & 0xFF);
  }
  return out;
}

}  // namespace postern
