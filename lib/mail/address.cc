// RFC 5321 path and mailbox parsing, RFC 6531 UTF-8 extensions, and quoting.
#include "mail/address.h"

#include <arpa/inet.h>

#include <cstdio>

namespace postern {

namespace {

bool is_alpha(unsigned char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool is_digit(unsigned char c) { return c >= '0' && c <= '9'; }

// atext of RFC 5322 §3.2.3.
bool is_atext(unsigned char c) {
  static constexpr std::string_view kSpecials = "!#$%&'*+-/=?^_`{|}~";
  return is_alpha(c) || is_digit(c) || kSpecials.find(static_cast<char>(c)) != std::string_view::npos;
}

char ascii_lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

std::string ascii_lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = ascii_lower(c);
  return out;
}

// The length of the well-formed UTF-8 sequence of a non-ASCII character at the
// start of s (RFC 3629 §4: no overlong forms, no surrogates, nothing past U+10FFFF), or 0.
size_t utf8_sequence(std::string_view s) {
  auto byte = [&](size_t i) { return i < s.size() ? static_cast<unsigned char>(s[i]) : 0u; };
  auto cont = [&](size_t i, unsigned lo = 0x80, unsigned hi = 0xbf) { return byte(i) >= lo && byte(i) <= hi; };
  unsigned lead = byte(0);
  if (lead >= 0xc2 && lead <= 0xdf) return cont(1) ? 2 : 0;
  if (lead == 0xe0) return cont(1, 0xa0) && cont(2) ? 3 : 0;
  if (lead == 0xed) return cont(1, 0x80, 0x9f) && cont(2) ? 3 : 0;
  if (lead >= 0xe1 && lead <= 0xef) return cont(1) && cont(2) ? 3 : 0;
  if (lead == 0xf0) return cont(1, 0x90) && cont(2) && cont(3) ? 4 : 0;
  if (lead >= 0xf1 && lead <= 0xf3) return cont(1) && cont(2) && cont(3) ? 4 : 0;
  if (lead == 0xf4) return cont(1, 0x80, 0x8f) && cont(2) && cont(3) ? 4 : 0;
  return 0;
}

std::string describe(char c) {
  auto u = static_cast<unsigned char>(c);
  if (u > 0x20 && u < 0x7f) return std::string("'") + c + "'";
  if (u == ' ') return "space";
  char buf[8];
  std::snprintf(buf, sizeof(buf), "0x%02x", u);
  return buf;
}

// A non-ASCII character at the start of in: its length, or the reason it is not allowed.
Result<size_t> non_ascii(std::string_view in, const AddressOptions& options, const char* where) {
  if (!options.allow_utf8) return fail(std::string("non-ASCII character in ") + where + " without SMTPUTF8");
  size_t n = utf8_sequence(in);
  if (n == 0) return fail(std::string("invalid UTF-8 in ") + where);
  return n;
}

bool is_terminator(std::string_view in, std::string_view terminators) {
  return in.empty() || terminators.find(in.front()) != std::string_view::npos;
}

Result<std::string> parse_quoted_local(std::string_view& in, const AddressOptions& options) {
  std::string out;
  in.remove_prefix(1);
  for (;;) {
    if (in.empty()) return fail("unterminated quoted local part");
    auto c = static_cast<unsigned char>(in.front());
    if (c == '"') {
      in.remove_prefix(1);
      return out;
    }
    if (c == '\\') {
      // quoted-pairSMTP: a backslash and one printable ASCII character or space.
      if (in.size() < 2 || in[1] < 32 || in[1] > 126) return fail("bad character after backslash in local part");
      out += in[1];
      in.remove_prefix(2);
    } else if (c >= 32 && c <= 126) {
      out += in.front();
      in.remove_prefix(1);
    } else if (c >= 0x80) {
      auto n = non_ascii(in, options, "local part");
      if (!n) return n.failure();
      out += in.substr(0, *n);
      in.remove_prefix(*n);
    } else {
      return fail("control character " + describe(in.front()) + " in quoted local part");
    }
  }
}

Result<std::string> parse_dot_string(std::string_view& in, const AddressOptions& options) {
  std::string out;
  for (;;) {
    size_t atom = 0;
    for (;;) {
      if (in.empty()) break;
      auto c = static_cast<unsigned char>(in.front());
      size_t n = 1;
      if (c >= 0x80) {
        auto len = non_ascii(in, options, "local part");
        if (!len) return len.failure();
        n = *len;
      } else if (!is_atext(c)) {
        break;
      }
      out += in.substr(0, n);
      in.remove_prefix(n);
      atom += n;
    }
    if (atom == 0) {
      bool dot_next = !in.empty() && in.front() == '.';
      if (out.empty()) {
        if (dot_next) return fail("local part starts with a dot");
        if (in.empty() || in.front() == '@' || in.front() == '>') return fail("empty local part");
        return fail("bad character " + describe(in.front()) + " in local part");
      }
      return fail(dot_next ? "two dots in a row in local part" : "local part ends with a dot");
    }
    if (in.empty() || in.front() != '.') return out;
    out += '.';
    in.remove_prefix(1);
  }
}

bool is_ipv4_literal(std::string_view s) {
  for (int part = 0; part < 4; ++part) {
    size_t digits = 0;
    unsigned value = 0;
    while (digits < s.size() && is_digit(s[digits]) && digits < 4) value = value * 10 + (s[digits++] - '0');
    if (digits == 0 || digits > 3 || value > 255) return false;
    s.remove_prefix(digits);
    if (part < 3) {
      if (s.empty() || s.front() != '.') return false;
      s.remove_prefix(1);
    }
  }
  return s.empty();
}

Result<std::string> check_address_literal(std::string_view literal) {
  std::string_view inner = literal.substr(1, literal.size() - 2);
  if (is_ipv4_literal(inner)) return std::string(literal);
  constexpr std::string_view kTag = "ipv6:";
  if (inner.size() > kTag.size() && ascii_lower(inner.substr(0, kTag.size())) == kTag) {
    std::string address(inner.substr(kTag.size()));
    struct in6_addr parsed {};
    if (::inet_pton(AF_INET6, address.c_str(), &parsed) != 1) return fail("bad IPv6 address literal");
    return "[IPv6:" + ascii_lower(address) + "]";
  }
  if (inner.find(':') != std::string_view::npos) return fail("unsupported address literal");
  return fail("bad address literal");
}

// A Domain (RFC 5321 sub-domains, or U-labels under SMTPUTF8), lower-cased.
Result<std::string> check_domain(std::string_view domain, const AddressOptions& options) {
  if (domain.empty()) return fail("empty domain");
  if (domain.size() > kMaxDomain) return fail("domain longer than 255 octets");
  if (domain.front() == '.') return fail("domain starts with a dot");
  if (domain.back() == '.') return fail("domain ends in a dot");
  std::string_view rest = domain;
  while (!rest.empty()) {
    size_t dot = rest.find('.');
    std::string_view label = rest.substr(0, dot);
    rest = dot == std::string_view::npos ? std::string_view() : rest.substr(dot + 1);
    if (label.empty()) return fail("two dots in a row in domain");
    if (label.size() > 63) return fail("domain label longer than 63 octets");
    if (label.front() == '-' || label.back() == '-') return fail("domain label starts or ends with a hyphen");
    for (size_t i = 0; i < label.size();) {
      auto c = static_cast<unsigned char>(label[i]);
      if (c >= 0x80) {
        auto n = non_ascii(label.substr(i), options, "domain");
        if (!n) return n.failure();
        i += *n;
      } else if (is_alpha(c) || is_digit(c) || c == '-') {
        ++i;
      } else {
        return fail("bad character " + describe(label[i]) + " in domain");
      }
    }
  }
  return ascii_lower(domain);
}

// A Domain or address literal at the start of in, up to a terminator.
Result<std::string> parse_domain(std::string_view& in, std::string_view terminators, const AddressOptions& options,
                                 bool literal_allowed) {
  if (literal_allowed && !in.empty() && in.front() == '[') {
    size_t close = in.find(']');
    if (close == std::string_view::npos) return fail("unterminated address literal");
    auto literal = check_address_literal(in.substr(0, close + 1));
    in.remove_prefix(close + 1);
    return literal;
  }
  size_t end = 0;
  while (!is_terminator(in.substr(end), terminators)) ++end;
  auto domain = check_domain(in.substr(0, end), options);
  in.remove_prefix(end);
  return domain;
}

Result<Address> parse_mailbox_at(std::string_view& in, std::string_view terminators, const AddressOptions& options) {
  size_t before = in.size();
  bool quoted = !in.empty() && in.front() == '"';
  auto local = quoted ? parse_quoted_local(in, options) : parse_dot_string(in, options);
  if (!local) return local.failure();
  if (before - in.size() > kMaxLocalPart) return fail("local part longer than 64 octets");
  Address address{std::move(*local), {}};
  if (!in.empty() && in.front() == '@') {
    in.remove_prefix(1);
    auto domain = parse_domain(in, terminators, options, true);
    if (!domain) return domain.failure();
    address.domain = std::move(*domain);
  } else if (is_terminator(in, terminators)) {
    if (!options.allow_local_only) return fail("missing @domain");
    if (address.local.empty()) return fail("empty address");
  } else {
    return fail("bad character " + describe(in.front()) + " in local part");
  }
  if (before - in.size() > kMaxMailbox) return fail("address longer than 254 octets");
  return address;
}

// A source route "@a,@b:" at the start of in: checked, then dropped.
Result<void> skip_source_route(std::string_view& in, const AddressOptions& options) {
  if (options.reject_source_route) return fail("source routes are not accepted");
  for (;;) {
    in.remove_prefix(1);  // the '@'
    auto domain = parse_domain(in, ",:>", options, false);
    if (!domain) return fail("source route: " + domain.error());
    if (in.empty() || in.front() == '>') return fail("source route not followed by ':' and a mailbox");
    char separator = in.front();
    in.remove_prefix(1);
    if (separator == ':') return {};
    if (in.empty() || in.front() != '@') return fail("source route: expected '@' after ','");
  }
}

}  // namespace

Result<ParsedPath> parse_path(std::string_view text, const AddressOptions& options) {
  std::string_view in = text;
  ParsedPath parsed;
  if (in.empty()) return fail("empty address");
  if (in.front() != '<') {
    if (!options.allow_no_brackets) return fail("address must be enclosed in <>");
    auto address = parse_mailbox_at(in, " ", options);
    if (!address) return address.failure();
    parsed.address = std::move(*address);
  } else {
    in.remove_prefix(1);
    if (!in.empty() && in.front() == '>') {
      if (!options.allow_null) return fail("null address <> not allowed here");
    } else {
      if (!in.empty() && in.front() == '@') {
        if (auto route = skip_source_route(in, options); !route) return route.failure();
      }
      auto address = parse_mailbox_at(in, ">", options);
      if (!address) return address.failure();
      parsed.address = std::move(*address);
    }
    if (in.empty() || in.front() != '>') return fail("missing '>' at the end of the address");
    in.remove_prefix(1);
    if (text.size() - in.size() > kMaxPath) return fail("address longer than 256 octets");
  }
  if (!in.empty() && in.front() != ' ') return fail("unexpected " + describe(in.front()) + " after the address");
  while (!in.empty() && in.front() == ' ') in.remove_prefix(1);
  parsed.rest = in;
  return parsed;
}

Result<Address> parse_mailbox(std::string_view text, const AddressOptions& options) {
  std::string_view in = text;
  if (in.empty()) return fail("empty address");
  auto address = parse_mailbox_at(in, "", options);
  if (!address) return address;
  if (!in.empty()) return fail("unexpected " + describe(in.front()) + " after the address");
  return address;
}

std::string quote_local_part(std::string_view local) {
  bool dot_string = !local.empty() && local.front() != '.' && local.back() != '.' &&
                    local.find("..") == std::string_view::npos;
  for (char c : local) {
    auto u = static_cast<unsigned char>(c);
    if (!(is_atext(u) || c == '.' || u >= 0x80)) dot_string = false;
  }
  if (dot_string) return std::string(local);
  std::string out = "\"";
  for (char c : local) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  out += '"';
  return out;
}

std::string to_string(const Address& address) {
  if (address.is_null()) return {};
  std::string out = quote_local_part(address.local);
  if (!address.domain.empty()) out += "@" + address.domain;
  return out;
}

std::string to_path(const Address& address) { return "<" + to_string(address) + ">"; }

Address split_address(std::string_view internal) {
  size_t at = internal.rfind('@');
  if (at == std::string_view::npos) return Address{std::string(internal), {}};
  return Address{std::string(internal.substr(0, at)), ascii_lower(internal.substr(at + 1))};
}

bool has_percent_hack(std::string_view local) { return local.find('%') != std::string_view::npos; }
bool has_bang_path(std::string_view local) { return local.find('!') != std::string_view::npos; }
bool has_trailing_dot(std::string_view domain) { return !domain.empty() && domain.back() == '.'; }
bool has_routing_in_local_part(std::string_view local) {
  return local.find_first_of("@%!") != std::string_view::npos;
}

}  // namespace postern
