// Envelope addresses as SMTP carries them (RFC 5321 §4.1.2): parsing the path
// after MAIL FROM: and RCPT TO:, quoting a local part back into external form,
// splitting internal forms, and the tests relay control needs.
//
// Internal form: the local part unquoted ("john doe", not "\"john doe\""), the
// domain in lower case.  Local parts are case-sensitive and are never folded.
// Parse failures carry a reason fit for the text of a 501 5.1.3 / 5.1.7 reply.
#pragma once

#include <string>
#include <string_view>

#include "util/result.h"

namespace postern {

struct Address {
  std::string local;   // unquoted
  std::string domain;  // lower case, "[192.0.2.1]" or "[IPv6:2001:db8::1]" for literals;
                       // empty for the null sender and for a bare local name
  bool is_null() const { return local.empty() && domain.empty(); }
  bool operator==(const Address&) const = default;
};

struct AddressOptions {
  bool allow_null = false;           // accept "<>" (a Reverse-path: MAIL FROM)
  bool allow_utf8 = false;           // SMTPUTF8 (RFC 6531): UTF-8 in local part and domain
  bool reject_source_route = false;  // refuse "<@a,@b:user@d>" rather than drop the route
  bool allow_local_only = false;     // accept a mailbox without "@domain" ("<postmaster>")
  bool allow_no_brackets = false;    // accept "user@domain" without < >, as sloppy clients send
};

// Limits from RFC 5321 §4.5.3.1, in octets of the external form.
inline constexpr size_t kMaxLocalPart = 64;
inline constexpr size_t kMaxDomain = 255;
inline constexpr size_t kMaxMailbox = 254;  // local@domain (RFC 5321 erratum 1690)
inline constexpr size_t kMaxPath = 256;     // with the brackets and any source route

struct ParsedPath {
  Address address;
  std::string_view rest;  // what followed the path (ESMTP parameters), leading spaces removed
};

// Parses the path at the start of text, e.g. "<a@example.com> SIZE=100".  A
// source route is dropped (RFC 5321 §4.1.1.3) unless options reject it.  The
// path must be followed by a space or the end.
Result<ParsedPath> parse_path(std::string_view text, const AddressOptions& options = {});
// Parses a Mailbox ("local@domain", no brackets) that must fill all of text.
Result<Address> parse_mailbox(std::string_view text, const AddressOptions& options = {});

// The local part as it must be written in an address: unchanged when it is a
// Dot-string, otherwise quoted with '"' and '\' escaped.
std::string quote_local_part(std::string_view local);
// External form "local@domain" (quoted where needed); "" for the null sender.
std::string to_string(const Address& address);
// The path form "<local@domain>", "<>" for the null sender.
std::string to_path(const Address& address);
// Splits an internal form at its last '@' (a local part may hold '@', a domain
// cannot); without '@' the whole is the local part.  The domain is lower-cased.
Address split_address(std::string_view internal);

// For relay control: forms that route mail through the named host on to
// somewhere else, which an open relay check must treat as remote.
bool has_percent_hack(std::string_view local);   // "user%elsewhere" @ relay
bool has_bang_path(std::string_view local);      // "elsewhere!user" @ relay
bool has_trailing_dot(std::string_view domain);  // "example.com."
// Any of '@', '%' or '!' in the local part.
bool has_routing_in_local_part(std::string_view local);

}  // namespace postern
