// Unit tests for the SASL server steps: PLAIN and LOGIN exchanges, initial
// responses, cancelling, and every kind of malformed client input; base64.
#include <catch2/catch.hpp>

#include <string>

#include "mail/sasl.h"

using namespace postern;
using namespace std::string_literals;

namespace {

std::string b64(const std::string& s) { return base64_encode(s); }

SaslCredentials credentials(const SaslStep& step) {
  REQUIRE(std::holds_alternative<SaslCredentials>(step));
  return std::get<SaslCredentials>(step);
}

SaslFailure failure(const SaslStep& step) {
  REQUIRE(std::holds_alternative<SaslFailure>(step));
  return std::get<SaslFailure>(step);
}

std::string challenge(const SaslStep& step) {
  REQUIRE(std::holds_alternative<SaslChallenge>(step));
  return std::get<SaslChallenge>(step).base64;
}

// The outcome of AUTH PLAIN with this initial response.
SaslStep plain(const std::string& decoded) {
  SaslExchange sasl(SaslMechanism::kPlain);
  return sasl.start(b64(decoded));
}

}  // namespace

TEST_CASE("base64 round trips and refuses what is not canonical base64", "[sasl]") {
  CHECK(base64_encode("") == "");
  CHECK(base64_encode("f") == "Zg==");
  CHECK(base64_encode("fo") == "Zm8=");
  CHECK(base64_encode("foo") == "Zm9v");
  CHECK(base64_encode("\0user\0pass"s) == "AHVzZXIAcGFzcw==");
  std::string all;
  for (int i = 0; i < 256; ++i) all += static_cast<char>(i);
  CHECK(base64_decode(base64_encode(all)) == all);
  CHECK(base64_decode("") == "");
  CHECK(base64_decode("Zm8=") == "fo");
  for (const char* bad : {"Zm8", "Zm=8", "Z===", "====", "Zm9v Zm8=", "Zm9v\r\n", "Zm9=", "Zg=A", "Zh==", "Zm$v",
                          "Zm8=Zm8="})
    CHECK_FALSE(base64_decode(bad).has_value());
}

TEST_CASE("mechanism names", "[sasl]") {
  CHECK(parse_sasl_mechanism("plain") == SaslMechanism::kPlain);
  CHECK(parse_sasl_mechanism("LOGIN") == SaslMechanism::kLogin);
  CHECK_FALSE(parse_sasl_mechanism("CRAM-MD5").has_value());
  CHECK_FALSE(parse_sasl_mechanism("").has_value());
}

TEST_CASE("PLAIN with an initial response", "[sasl]") {
  auto c = credentials(plain("\0alice\0secret word"s));
  CHECK(c.user == "alice");
  CHECK(c.password == "secret word");

  SECTION("an authzid equal to the login is accepted") {
    CHECK(credentials(plain("alice\0alice\0pw"s)).user == "alice");
  }
  SECTION("UTF-8 names and passwords") {
    auto u = credentials(plain("\0j\xc3\xbcrgen\0p\xe2\x82\xac"s));
    CHECK(u.user == "j\xc3\xbcrgen");
    CHECK(u.password == "p\xe2\x82\xac");
  }
}

TEST_CASE("PLAIN without an initial response asks with an empty challenge", "[sasl]") {
  SaslExchange sasl(SaslMechanism::kPlain);
  CHECK(challenge(sasl.start()) == "");
  auto c = credentials(sasl.respond(b64("\0bob\0pw"s)));
  CHECK(c.user == "bob");
  CHECK(c.password == "pw");
  CHECK(failure(sasl.respond(b64("\0bob\0pw"s))).kind == SaslFailure::kOutOfSequence);
}

TEST_CASE("malformed PLAIN responses", "[sasl]") {
  struct Case {
    std::string decoded;
    std::string reason;
  };
  const Case cases[] = {
      {"", "PLAIN response without NUL separators"},
      {"alice secret", "PLAIN response without NUL separators"},
      {"\0alice"s, "PLAIN response with one NUL separator"},
      {"\0\0secret"s, "empty user name"},
      {"\0alice\0"s, "empty password"},
      {"\0alice\0sec\0ret"s, "password contains NUL"},
      {"\0al\xffice\0pw"s, "user name is not UTF-8"},
      {"\0alice\0\xc0\xaf"s, "password is not UTF-8"},          // overlong '/'
      {"\0alice\0\xed\xa0\x80"s, "password is not UTF-8"},      // a surrogate
      {"\0alice\0\xe2\x82"s, "password is not UTF-8"},          // truncated
      {"\0"s + std::string(1025, 'a') + "\0pw"s, "user name too long"},
      {"\0alice\0"s + std::string(1025, 'p'), "password too long"},
  };
  for (const auto& c : cases) {
    INFO(c.reason);
    auto f = failure(plain(c.decoded));
    CHECK(f.kind == SaslFailure::kMalformed);
    CHECK(f.reason == c.reason);
  }
  CHECK(credentials(plain("\0"s + std::string(1024, 'a') + "\0"s + std::string(1024, 'p'))).user.size() == 1024);
}

TEST_CASE("PLAIN refuses to act as another user", "[sasl]") {
  auto f = failure(plain("root\0alice\0secret"s));
  CHECK(f.kind == SaslFailure::kAuthzidRefused);
  CHECK(f.reason == "user alice may not act as root");
  CHECK(sasl_failure_reply(f) == "535 5.7.8 Error: authentication failed: user alice may not act as root");
}

TEST_CASE("cancelling, bad base64 and the empty initial response", "[sasl]") {
  SaslExchange cancelled(SaslMechanism::kPlain);
  REQUIRE(challenge(cancelled.start()) == "");
  auto f = failure(cancelled.respond("*"));
  CHECK(f.kind == SaslFailure::kCancelled);
  CHECK(sasl_failure_reply(f) == "501 5.7.0 Authentication aborted");
  CHECK(failure(cancelled.respond(b64("\0a\0b"s))).kind == SaslFailure::kOutOfSequence);

  SaslExchange cancelled_at_once(SaslMechanism::kLogin);
  CHECK(failure(cancelled_at_once.start("*")).kind == SaslFailure::kCancelled);

  SaslExchange garbage(SaslMechanism::kPlain);
  auto g = failure(garbage.start("not base64!"));
  CHECK(g.kind == SaslFailure::kBadEncoding);
  CHECK(sasl_failure_reply(g) == "501 5.5.2 Cannot decode response");

  SaslExchange empty(SaslMechanism::kPlain);
  auto e = failure(empty.start("="));
  CHECK(e.kind == SaslFailure::kMalformed);
  CHECK(e.reason == "PLAIN response without NUL separators");

  SaslExchange never_started(SaslMechanism::kPlain);
  auto n = failure(never_started.respond(b64("\0a\0b"s)));
  CHECK(n.kind == SaslFailure::kOutOfSequence);
  CHECK(sasl_failure_reply(n) == "503 5.5.1 Error: no authentication in progress");

  SaslExchange twice(SaslMechanism::kPlain);
  (void)twice.start();
  CHECK(failure(twice.start()).kind == SaslFailure::kOutOfSequence);
}

TEST_CASE("LOGIN asks for the user name, then the password", "[sasl]") {
  SaslExchange sasl(SaslMechanism::kLogin);
  CHECK(base64_decode(challenge(sasl.start())) == "Username:");
  CHECK(base64_decode(challenge(sasl.respond(b64("carol")))) == "Password:");
  auto c = credentials(sasl.respond(b64("pass word")));
  CHECK(c.user == "carol");
  CHECK(c.password == "pass word");

  SECTION("with the user name as initial response") {
    SaslExchange ir(SaslMechanism::kLogin);
    CHECK(base64_decode(challenge(ir.start(b64("dave")))) == "Password:");
    CHECK(credentials(ir.respond(b64("pw"))).user == "dave");
  }
  SECTION("cancelled at the password") {
    SaslExchange half(SaslMechanism::kLogin);
    (void)half.start();
    (void)half.respond(b64("erin"));
    CHECK(failure(half.respond("*")).kind == SaslFailure::kCancelled);
  }
}

TEST_CASE("malformed LOGIN responses", "[sasl]") {
  SaslExchange empty_user(SaslMechanism::kLogin);
  (void)empty_user.start();
  CHECK(failure(empty_user.respond("")).reason == "empty user name");

  SaslExchange empty_initial(SaslMechanism::kLogin);
  CHECK(failure(empty_initial.start("=")).reason == "empty user name");

  SaslExchange nul_user(SaslMechanism::kLogin);
  (void)nul_user.start();
  CHECK(failure(nul_user.respond(b64("a\0b"s))).reason == "user name contains NUL");

  SaslExchange bad_password(SaslMechanism::kLogin);
  (void)bad_password.start();
  (void)bad_password.respond(b64("frank"));
  CHECK(failure(bad_password.respond(b64("\xff"))).reason == "password is not UTF-8");

  SaslExchange empty_password(SaslMechanism::kLogin);
  (void)empty_password.start();
  (void)empty_password.respond(b64("frank"));
  CHECK(failure(empty_password.respond("")).reason == "empty password");

  SaslExchange bad_base64(SaslMechanism::kLogin);
  (void)bad_base64.start();
  CHECK(failure(bad_base64.respond("ZnJhbmsK=")).kind == SaslFailure::kBadEncoding);
}
