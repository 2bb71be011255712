// Unit tests for password hashes: new hashes of each scheme check, stored hashes
// made by other tools check, Dovecot prefixes, and weak or malformed entries are
// refused without a comparison.
#include <catch2/catch.hpp>

#include <string>

#include "util/password_hash.h"

using namespace postern;

namespace {

// Made by openssl passwd -6 and by libxcrypt through Python, not by the code under test.
constexpr const char* kSha512 =
    "$6$abcdefgh$ltjgWl6579NluT/Vi1nwEvcil.G5Nbc4NiXZaNGStk8PSwGfQv72N2CKPPrVACtLtip/cZ/1GM/O6IND4WQhG.";
constexpr const char* kBcrypt = "$2b$05$abcdefghijklmnopqrstuuOQiyCxlgf/oeuTqixKmWdcYUh4Hjl0a";
constexpr const char* kYescrypt = "$y$j9T$F5Jx5fExrKuPp53xLKQ..1$GmcwIgvdUC9qLWcKCi6gklUa1dM3ziD43YxYNURLKy0";

PasswordCheck::Outcome outcome(std::string_view password, std::string_view stored) {
  return check_password(password, stored).outcome;
}

}  // namespace

TEST_CASE("stored hashes of the three strong schemes check", "[password]") {
  for (const char* stored : {kSha512, kBcrypt, kYescrypt}) {
    INFO(stored);
    CHECK(outcome("secret", stored) == PasswordCheck::kMatch);
    CHECK(outcome("Secret", stored) == PasswordCheck::kMismatch);
    CHECK(outcome("", stored) == PasswordCheck::kMismatch);
    CHECK(outcome("secret ", stored) == PasswordCheck::kMismatch);
  }
  // $2y$ is the same algorithm as $2b$.
  std::string y = kBcrypt;
  y[2] = 'y';
  CHECK(outcome("secret", y) == PasswordCheck::kMatch);
}

TEST_CASE("new hashes of each scheme check and are salted", "[password]") {
  for (auto [name, prefix] : {std::pair{"yescrypt", "$y$"}, {"bcrypt", "$2b$"}, {"SHA512-CRYPT", "$6$"},
                              {"blf-crypt", "$2b$"}}) {
    INFO(name);
    auto scheme = parse_hash_scheme(name);
    REQUIRE(scheme.has_value());
    auto a = hash_password("correct horse", *scheme);
    auto b = hash_password("correct horse", *scheme);
    REQUIRE(a.ok());
    REQUIRE(b.ok());
    CHECK(a->starts_with(prefix));
    CHECK(*a != *b);
    CHECK(outcome("correct horse", *a) == PasswordCheck::kMatch);
    CHECK(outcome("correct horsf", *a) == PasswordCheck::kMismatch);
  }
  CHECK_FALSE(parse_hash_scheme("md5-crypt").has_value());
  CHECK_FALSE(parse_hash_scheme("plain").has_value());
  CHECK_FALSE(hash_password(std::string("a\0b", 3), HashScheme::kYescrypt).ok());
  CHECK_FALSE(hash_password(std::string(512, 'a'), HashScheme::kYescrypt).ok());
}

TEST_CASE("Dovecot's scheme prefixes", "[password]") {
  CHECK(outcome("secret", std::string("{CRYPT}") + kYescrypt) == PasswordCheck::kMatch);
  CHECK(outcome("secret", std::string("{crypt}") + kBcrypt) == PasswordCheck::kMatch);
  CHECK(outcome("secret", std::string("{SHA512-CRYPT}") + kSha512) == PasswordCheck::kMatch);
  CHECK(outcome("secret", std::string("{BLF-CRYPT}") + kBcrypt) == PasswordCheck::kMatch);
  // A prefix that names another scheme than the hash is refused, not guessed.
  auto wrong = check_password("secret", std::string("{BLF-CRYPT}") + kSha512);
  CHECK(wrong.outcome == PasswordCheck::kRefused);
  CHECK(wrong.reason == "scheme {BLF-CRYPT} is weak or unsupported");
}

TEST_CASE("weak and malformed entries are refused, never compared", "[password]") {
  struct Case {
    std::string stored;
    std::string reason;
  };
  const Case cases[] = {
      {"secret", "not a yescrypt, bcrypt or SHA-512 crypt hash"},                // plain text
      {"{PLAIN}secret", "scheme {PLAIN} is weak or unsupported"},
      {"{CLEARTEXT}secret", "scheme {CLEARTEXT} is weak or unsupported"},
      {"{MD5}Xr4ilOzQ4PCOq3aQ0qbuaQ==", "scheme {MD5} is weak or unsupported"},
      {"{PLAIN-MD5}5ebe2294ecd0e0f08eab7690d2a6ee69", "scheme {PLAIN-MD5} is weak or unsupported"},
      {"{SSHA512}abc", "scheme {SSHA512} is weak or unsupported"},
      {"$1$myqO4uY3$IuLR40U8XVNY3hOaDWP/d0", "not a yescrypt, bcrypt or SHA-512 crypt hash"},  // MD5 crypt
      {"{CRYPT}$1$myqO4uY3$IuLR40U8XVNY3hOaDWP/d0", "not a yescrypt, bcrypt or SHA-512 crypt hash"},
      {"abNANd1rDfiNc", "not a yescrypt, bcrypt or SHA-512 crypt hash"},       // DES
      {"{CRYPT}abNANd1rDfiNc", "not a yescrypt, bcrypt or SHA-512 crypt hash"},
      {"$5$abcdefgh$x", "not a yescrypt, bcrypt or SHA-512 crypt hash"},
      {"$2a$05$abcdefghijklmnopqrstuuOQiyCxlgf/oeuTqixKmWdcYUh4Hjl0a", "not a yescrypt, bcrypt or SHA-512 crypt hash"},
      {"", "empty password hash"},
      {"{CRYPT}", "empty password hash"},
      {"{SHA512-CRYPT", "malformed scheme prefix"},
      {"$6$", "malformed hash"},
      {"$y$garbage", "malformed hash"},
      {"$6$abcdefgh$ltjgWl6579NluT/Vi1nwEvcil", "malformed hash"},  // truncated
      {"$2b$99$abcdefghijklmnopqrstuuOQiyCxlgf/oeuTqixKmWdcYUh4Hjl0a", "malformed hash"},
  };
  for (const auto& c : cases) {
    INFO(c.stored);
    auto check = check_password("secret", c.stored);
    CHECK(check.outcome == PasswordCheck::kRefused);
    CHECK(check.reason == c.reason);
  }
  // Even the exact plain text does not get in.
  CHECK(outcome("secret", "secret") == PasswordCheck::kRefused);
}

TEST_CASE("locked accounts and passwords crypt cannot take", "[password]") {
  auto locked = check_password("secret", std::string("!") + kSha512);
  CHECK(locked.outcome == PasswordCheck::kLocked);
  CHECK(outcome("secret", "*") == PasswordCheck::kLocked);
  CHECK(outcome("secret", "!") == PasswordCheck::kLocked);
  CHECK(outcome("secret", "{CRYPT}!$6$x") == PasswordCheck::kLocked);
  CHECK(outcome(std::string("secret\0", 7), kSha512) == PasswordCheck::kMismatch);
  CHECK(outcome(std::string(600, 'a'), kSha512) == PasswordCheck::kMismatch);
  check_password_decoy("anything");  // must simply return
}
