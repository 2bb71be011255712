// The SMTP server's command grammar, apart from the daemon so it can be tested
// alone: splitting a command line into verb and argument, the ESMTP parameters of
// MAIL FROM (SIZE, BODY, SMTPUTF8, RET, ENVID, AUTH; RFC 1870, 6152, 3030, 6531,
// 3461, 4954) and RCPT TO (NOTIFY, ORCPT; RFC 3461), xtext (RFC 3461 §4), and
// replies with their enhanced status codes (RFC 3463), multi-line included.
//
// A parameter error is returned as the whole reply line the server sends
// ("501 5.5.4 Bad SIZE= syntax", "555 5.5.4 Unsupported option: FOO=1"), so the
// server never has to choose a code for a parser's failure.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "util/result.h"

namespace postern {

struct SmtpCommand {
  std::string verb;       // upper case: "MAIL", "EHLO"
  std::string_view args;  // what followed the verb and one space, trailing blanks removed
};
// Splits a command line (without its line end).  The verb is what comes before
// the first space, folded to upper case.
SmtpCommand parse_smtp_command(std::string_view line);

// The part of MAIL/RCPT after "FROM:" / "TO:" (case-insensitive), leading spaces
// allowed as Postfix does; nothing when the keyword is missing.
bool strip_path_keyword(std::string_view args, std::string_view keyword, std::string_view& rest);

// What the server offers, which decides what the parameters may say.
struct SmtpExtensions {
  uint64_t size_limit = 0;  // 0: SIZE without a limit
  bool chunking = true;     // BODY=BINARYMIME needs BDAT
  bool smtputf8 = true;
  bool dsn = true;
  bool auth = false;        // AUTH= accepted (and ignored unless authenticated)
};

enum class BodyType { kUnspecified, k7Bit, k8BitMime, kBinaryMime };
const char* body_type_name(BodyType type);  // "7BIT", "8BITMIME", "BINARYMIME", ""

struct MailParameters {
  uint64_t size = 0;  // SIZE=, 0 if not given
  BodyType body = BodyType::kUnspecified;
  bool smtputf8 = false;
  std::string ret;    // "F", "H" or ""
  std::string envid;  // decoded from xtext
  std::string auth;   // AUTH= mailbox, decoded from xtext ("<>" kept as it is)
};
Result<MailParameters> parse_mail_parameters(std::string_view text, const SmtpExtensions& offered);

struct RcptParameters {
  uint8_t notify = 0;  // DsnNotify bits (queue_file.h)
  std::string orcpt;   // "addr-type;address", the address decoded from xtext
};
Result<RcptParameters> parse_rcpt_parameters(std::string_view text, const SmtpExtensions& offered);

// RFC 3461 xtext: "+XX" is a byte in upper-case hex; anything else outside
// '!'..'~' or a bare '=' is an error.
Result<std::string> decode_xtext(std::string_view text);

// One reply: "250 2.1.0 Ok\r\n".  dsn may be empty (the 220 greeting, 354).
// Several lines become "250-first\r\n250-second\r\n250 last\r\n", each with the code.
std::string smtp_reply(int code, std::string_view dsn, std::string_view text);
std::string smtp_reply(int code, std::string_view dsn, const std::vector<std::string>& lines);

}  // namespace postern
