// Password hashes as auth_password_maps and /etc/shadow hold them, through
// crypt(3) from libxcrypt.  Only strong schemes are ever compared: yescrypt
// ("$y$"), bcrypt ("$2b$", "$2y$") and SHA-512 crypt ("$6$"), bare or behind one
// of Dovecot's scheme prefixes ({CRYPT}, {SHA512-CRYPT}, {BLF-CRYPT}).  Anything
// else (plain text, {PLAIN}, {MD5}, MD5 crypt, DES, an empty hash) is refused
// without a comparison, so a weak entry can never let anyone in.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "util/result.h"

namespace postern {

enum class HashScheme { kYescrypt, kBcrypt, kSha512Crypt };

// "yescrypt", "bcrypt" (also Dovecot's "BLF-CRYPT"), "sha512-crypt" (also
// "SHA512-CRYPT"), case-insensitive.
std::optional<HashScheme> parse_hash_scheme(std::string_view name);

// A new hash with a fresh random salt and libxcrypt's default cost, such as
// "$y$j9T$...".  Fails for a password crypt(3) cannot take (NUL, over 512 bytes).
Result<std::string> hash_password(std::string_view password, HashScheme scheme);

struct PasswordCheck {
  enum Outcome {
    kMatch,
    kMismatch,
    kLocked,   // a locked account ("!" or "*" in front): no login, nothing to warn about
    kRefused,  // weak, unknown or malformed: never compared; the administrator should fix it
  };
  Outcome outcome;
  std::string reason;  // for kLocked and kRefused; never contains the password or the hash
};

// Compares password with a stored hash, in time that does not depend on where
// they differ.
PasswordCheck check_password(std::string_view password, std::string_view stored);

// Spends the time of one check against a hash of the default scheme, so that an
// unknown user takes as long to refuse as a wrong password.
void check_password_decoy(std::string_view password);

}  // namespace postern
