// Unit tests for RFC 5321 address parsing, quoting and the relay-control checks.
#include <catch2/catch.hpp>

#include <string>

#include "mail/address.h"

using namespace postern;

namespace {

Address parse_ok(std::string_view text, const AddressOptions& options = {}) {
  INFO(text);
  auto r = parse_path(text, options);
  if (!r.ok()) FAIL("parse failed: " << r.error());
  CHECK(r->rest.empty());
  return r->address;
}

std::string parse_error(std::string_view text, const AddressOptions& options = {}) {
  INFO(text);
  auto r = parse_path(text, options);
  if (r.ok()) FAIL("parsed as " << to_path(r->address));
  return r.error();
}

AddressOptions with_null() {
  AddressOptions o;
  o.allow_null = true;
  return o;
}
AddressOptions utf8() {
  AddressOptions o;
  o.allow_utf8 = true;
  return o;
}

}  // namespace

TEST_CASE("plain paths parse into local part and lower-cased domain", "[address]") {
  CHECK(parse_ok("<user@example.com>") == Address{"user", "example.com"});
  CHECK(parse_ok("<User.Name@Mail.EXAMPLE.com>") == Address{"User.Name", "mail.example.com"});
  CHECK(parse_ok("<!#$%&'*+-/=?^_`{|}~@x-1.example>") == Address{"!#$%&'*+-/=?^_`{|}~", "x-1.example"});
  CHECK(parse_ok("<a@b>") == Address{"a", "b"});
  CHECK(parse_ok("<0@123.example>") == Address{"0", "123.example"});
}

TEST_CASE("the null sender", "[address]") {
  Address null = parse_ok("<>", with_null());
  CHECK(null.is_null());
  CHECK(to_string(null).empty());
  CHECK(to_path(null) == "<>");
  CHECK(parse_error("<>") == "null address <> not allowed here");
  auto r = parse_path("<> SIZE=10", with_null());
  REQUIRE(r.ok());
  CHECK(r->rest == "SIZE=10");
}

TEST_CASE("quoted local parts keep spaces, '@' and escaped characters", "[address]") {
  CHECK(parse_ok(R"(<"john doe"@example.com>)") == Address{"john doe", "example.com"});
  CHECK(parse_ok(R"(<"a@b"@example.com>)") == Address{"a@b", "example.com"});
  CHECK(parse_ok(R"(<"a\"b\\c"@example.com>)") == Address{"a\"b\\c", "example.com"});
  CHECK(parse_ok(R"(<"a>b"@example.com>)") == Address{"a>b", "example.com"});
  CHECK(parse_ok(R"(<"\a"@example.com>)") == Address{"a", "example.com"});
  CHECK(parse_ok(R"(<""@example.com>)") == Address{"", "example.com"});
  CHECK(parse_error(R"(<"unterminated@example.com>)") == "unterminated quoted local part");
  CHECK(parse_error("<\"a\x01\"@example.com>") == "control character 0x01 in quoted local part");
  CHECK(parse_error("<\"a\\\x7f\"@example.com>") == "bad character after backslash in local part");
  CHECK(parse_error(R"(<"a"b@example.com>)") == "bad character 'b' in local part");
}

TEST_CASE("dot-string local parts", "[address]") {
  CHECK(parse_error("<.user@example.com>") == "local part starts with a dot");
  CHECK(parse_error("<user.@example.com>") == "local part ends with a dot");
  CHECK(parse_error("<us..er@example.com>") == "two dots in a row in local part");
  CHECK(parse_error("<us er@example.com>") == "bad character space in local part");
  CHECK(parse_error("<us(er@example.com>") == "bad character '(' in local part");
  CHECK(parse_error("< user@example.com>") == "bad character space in local part");
}

TEST_CASE("domains follow the sub-domain grammar", "[address]") {
  CHECK(parse_error("<user@>") == "empty domain");
  CHECK(parse_error("<user@-x.example>") == "domain label starts or ends with a hyphen");
  CHECK(parse_error("<user@x-.example>") == "domain label starts or ends with a hyphen");
  CHECK(parse_error("<user@x..example>") == "two dots in a row in domain");
  CHECK(parse_error("<user@.example>") == "domain starts with a dot");
  CHECK(parse_error("<user@example.com.>") == "domain ends in a dot");
  CHECK(parse_error("<user@x_y.example>") == "bad character '_' in domain");
  CHECK(parse_error("<user@exa mple.com>") == "bad character space in domain");
  CHECK(parse_error("<user>") == "missing @domain");
  CHECK(parse_error("<user@example.com") == "missing '>' at the end of the address");
}

TEST_CASE("address literals", "[address]") {
  CHECK(parse_ok("<user@[192.0.2.1]>") == Address{"user", "[192.0.2.1]"});
  CHECK(parse_ok("<user@[0.0.0.0]>").domain == "[0.0.0.0]");
  CHECK(parse_ok("<user@[IPv6:2001:DB8::1]>") == Address{"user", "[IPv6:2001:db8::1]"});
  CHECK(parse_ok("<user@[ipv6:::1]>").domain == "[IPv6:::1]");
  CHECK(parse_ok("<user@[IPv6:::ffff:192.0.2.1]>").domain == "[IPv6:::ffff:192.0.2.1]");
  CHECK(parse_error("<user@[256.0.0.1]>") == "bad address literal");
  CHECK(parse_error("<user@[1.2.3]>") == "bad address literal");
  CHECK(parse_error("<user@[1.2.3.4.5]>") == "bad address literal");
  CHECK(parse_error("<user@[1234.2.3.4]>") == "bad address literal");
  CHECK(parse_error("<user@[]>") == "bad address literal");
  CHECK(parse_error("<user@[IPv6:2001:db8::g]>") == "bad IPv6 address literal");
  CHECK(parse_error("<user@[IPv6:192.0.2.1]>") == "bad IPv6 address literal");
  CHECK(parse_error("<user@[x400:c=us]>") == "unsupported address literal");
  CHECK(parse_error("<user@[192.0.2.1>") == "unterminated address literal");
  CHECK(parse_error("<user@[192.0.2.1]x>") == "missing '>' at the end of the address");
}

TEST_CASE("source routes are dropped, or refused when strict", "[address]") {
  CHECK(parse_ok("<@relay.example:user@example.com>") == Address{"user", "example.com"});
  CHECK(parse_ok("<@a.example,@b.example:user@example.com>") == Address{"user", "example.com"});
  AddressOptions strict;
  strict.reject_source_route = true;
  CHECK(parse_error("<@a.example:user@example.com>", strict) == "source routes are not accepted");
  CHECK(parse_ok("<user@example.com>", strict) == Address{"user", "example.com"});

  CHECK(parse_error("<@a.example>") == "source route not followed by ':' and a mailbox");
  CHECK(parse_error("<@a.example,b.example:user@example.com>") == "source route: expected '@' after ','");
  CHECK(parse_error("<@:user@example.com>") == "source route: empty domain");
  CHECK(parse_error("<@[192.0.2.1]:user@example.com>") == "source route: bad character '[' in domain");
  CHECK(parse_error("<@a.example:>") == "empty local part");
}

TEST_CASE("length limits of RFC 5321", "[address]") {
  std::string local64(64, 'l');
  CHECK(parse_ok("<" + local64 + "@example.com>").local == local64);
  CHECK(parse_error("<" + local64 + "l@example.com>") == "local part longer than 64 octets");
  // The limit counts the quoted form.
  CHECK(parse_error("<\"" + std::string(63, 'q') + "\"@example.com>") == "local part longer than 64 octets");

  std::string label63(63, 'd');
  CHECK(parse_ok("<u@" + label63 + ".example>").domain == label63 + ".example");
  CHECK(parse_error("<u@" + label63 + "d.example>") == "domain label longer than 63 octets");
  std::string domain256 = label63 + "." + label63 + "." + label63 + "." + std::string(62, 'd') + ".d";
  REQUIRE(domain256.size() == 256);
  CHECK(parse_error("<u@" + domain256 + ">") == "domain longer than 255 octets");

  // local@domain of 254 octets is the most a mailbox may have.
  std::string domain189 = label63 + "." + label63 + "." + std::string(61, 'd');
  REQUIRE(domain189.size() == 189);
  CHECK(parse_ok("<" + local64 + "@" + domain189 + ">").domain == domain189);
  CHECK(parse_error("<" + local64 + "@" + domain189 + "d>") == "address longer than 254 octets");

  // With a source route, the whole path may not pass 256.
  CHECK(parse_error("<@relay.example:" + local64 + "@" + domain189 + ">") == "address longer than 256 octets");
}

TEST_CASE("UTF-8 needs SMTPUTF8", "[address]") {
  CHECK(parse_ok("<用户@例子.广告>", utf8()) == Address{"用户", "例子.广告"});
  CHECK(parse_ok("<Jörg@Bücher.Example>", utf8()) == Address{"Jörg", "bücher.example"});
  CHECK(parse_ok("<\"ü ü\"@example.com>", utf8()).local == "ü ü");
  CHECK(parse_error("<用户@example.com>") == "non-ASCII character in local part without SMTPUTF8");
  CHECK(parse_error("<user@bücher.example>") == "non-ASCII character in domain without SMTPUTF8");
  CHECK(parse_error("<\"ü\"@example.com>") == "non-ASCII character in local part without SMTPUTF8");
  // Malformed UTF-8 is refused even with SMTPUTF8.
  CHECK(parse_error("<\xff@example.com>", utf8()) == "invalid UTF-8 in local part");
  CHECK(parse_error("<\xc0\xaf@example.com>", utf8()) == "invalid UTF-8 in local part");      // overlong '/'
  CHECK(parse_error("<\xed\xa0\x80@example.com>", utf8()) == "invalid UTF-8 in local part");  // surrogate
  CHECK(parse_error("<\xf4\x90\x80\x80@example.com>", utf8()) == "invalid UTF-8 in local part");  // > U+10FFFF
  CHECK(parse_error("<u@b\xc3.example>", utf8()) == "invalid UTF-8 in domain");
}

TEST_CASE("path followed by ESMTP parameters, and sloppy forms", "[address]") {
  auto r = parse_path("<a@example.com> SIZE=100 BODY=8BITMIME");
  REQUIRE(r.ok());
  CHECK(r->address == Address{"a", "example.com"});
  CHECK(r->rest == "SIZE=100 BODY=8BITMIME");
  auto quoted = parse_path(R"(<"x> y"@example.com> NOTIFY=NEVER)");
  REQUIRE(quoted.ok());
  CHECK(quoted->address.local == "x> y");
  CHECK(quoted->rest == "NOTIFY=NEVER");
  CHECK(parse_error("<a@example.com>SIZE=1") == "unexpected 'S' after the address");

  CHECK(parse_error("") == "empty address");
  CHECK(parse_error("a@example.com") == "address must be enclosed in <>");
  AddressOptions sloppy;
  sloppy.allow_no_brackets = true;
  auto bare = parse_path("a@example.com SIZE=5", sloppy);
  REQUIRE(bare.ok());
  CHECK(bare->address == Address{"a", "example.com"});
  CHECK(bare->rest == "SIZE=5");

  AddressOptions local_only;
  local_only.allow_local_only = true;
  CHECK(parse_ok("<Postmaster>", local_only) == Address{"Postmaster", ""});
  CHECK(parse_error("<\"\">", local_only) == "empty address");
}

TEST_CASE("parse_mailbox takes a whole mailbox without brackets", "[address]") {
  auto a = parse_mailbox("user@Example.org");
  REQUIRE(a.ok());
  CHECK(*a == Address{"user", "example.org"});
  CHECK(parse_mailbox(R"("a b"@example.org)")->local == "a b");
  CHECK(parse_mailbox("user@example.org ").error() == "bad character space in domain");
  CHECK(parse_mailbox(R"("a"x@example.org)").error() == "bad character 'x' in local part");
  CHECK(parse_mailbox("user").error() == "missing @domain");
  CHECK(parse_mailbox("").error() == "empty address");
  AddressOptions local_only;
  local_only.allow_local_only = true;
  CHECK(parse_mailbox("user", local_only)->local == "user");
}

TEST_CASE("quote_local_part quotes only when needed", "[address]") {
  CHECK(quote_local_part("user") == "user");
  CHECK(quote_local_part("first.last") == "first.last");
  CHECK(quote_local_part("Jörg") == "Jörg");
  CHECK(quote_local_part("john doe") == R"("john doe")");
  CHECK(quote_local_part("a\"b\\c") == R"("a\"b\\c")");
  CHECK(quote_local_part("") == R"("")");
  CHECK(quote_local_part(".a") == R"(".a")");
  CHECK(quote_local_part("a.") == R"("a.")");
  CHECK(quote_local_part("a..b") == R"("a..b")");
  CHECK(quote_local_part("a@b") == R"("a@b")");
}

TEST_CASE("to_string and to_path give a form that parses back the same", "[address]") {
  for (std::string_view text : {"<user@example.com>", R"(<"john doe"@example.com>)", R"(<"a\"b\\c"@x.example>)",
                                R"(<"a@b"@x.example>)", "<u@[IPv6:2001:db8::1]>", "<u@[192.0.2.1]>"}) {
    INFO(text);
    Address a = parse_ok(text);
    CHECK(to_path(a) == text);
    CHECK(parse_ok(to_path(a)) == a);
  }
  CHECK(to_string(Address{"john doe", "example.com"}) == R"("john doe"@example.com)");
  CHECK(to_string(Address{"postmaster", ""}) == "postmaster");
  CHECK(to_path(Address{"a", "b.example"}) == "<a@b.example>");
}

TEST_CASE("split_address splits internal forms at the last '@'", "[address]") {
  CHECK(split_address("user@Example.COM") == Address{"user", "example.com"});
  CHECK(split_address("a@b@relay.example") == Address{"a@b", "relay.example"});
  CHECK(split_address("Local") == Address{"Local", ""});
  CHECK(split_address("user@") == Address{"user", ""});
  CHECK(split_address("") == Address{"", ""});
}

TEST_CASE("relay-control checks spot routing tricks", "[address]") {
  Address percent = parse_ok("<user%elsewhere.example@relay.example>");
  CHECK(has_percent_hack(percent.local));
  CHECK(has_routing_in_local_part(percent.local));

  Address bang = parse_ok("<elsewhere.example!user@relay.example>");
  CHECK(has_bang_path(bang.local));
  CHECK(has_routing_in_local_part(bang.local));

  Address quoted_at = parse_ok(R"(<"user@elsewhere.example"@relay.example>)");
  CHECK(has_routing_in_local_part(quoted_at.local));
  CHECK_FALSE(has_percent_hack(quoted_at.local));
  CHECK_FALSE(has_bang_path(quoted_at.local));

  Address plain = parse_ok("<user.name+tag@relay.example>");
  CHECK_FALSE(has_percent_hack(plain.local));
  CHECK_FALSE(has_bang_path(plain.local));
  CHECK_FALSE(has_routing_in_local_part(plain.local));

  CHECK(has_trailing_dot(split_address("user@example.com.").domain));
  CHECK_FALSE(has_trailing_dot("example.com"));
  CHECK_FALSE(has_trailing_dot(""));
}
