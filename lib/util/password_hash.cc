// Password hashing and checking through libxcrypt (see password_hash.h).
#include "util/password_hash.h"

#include <crypt.h>
#include <openssl/crypto.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <memory>

#include "util/strings.h"

namespace postern {
namespace {

struct SchemeInfo {
  HashScheme scheme;
  std::string_view prefix;  // the crypt(3) setting prefix of new hashes
};
constexpr std::array<SchemeInfo, 3> kSchemes{{
    {HashScheme::kYescrypt, "$y$"},
    {HashScheme::kBcrypt, "$2b$"},
    {HashScheme::kSha512Crypt, "$6$"},
}};

// Which crypt families a stored hash may use, by its Dovecot prefix.
bool family_allowed(std::string_view scheme_prefix, std::string_view hash) {
  bool yescrypt = hash.starts_with("$y$");
  bool bcrypt = hash.starts_with("$2b$") || hash.starts_with("$2y$");
  bool sha512 = hash.starts_with("$6$");
  if (scheme_prefix.empty() || scheme_prefix == "CRYPT") return yescrypt || bcrypt || sha512;
  if (scheme_prefix == "SHA512-CRYPT") return sha512;
  if (scheme_prefix == "BLF-CRYPT") return bcrypt;
  return false;
}

// crypt(3) with its own scratch area; nothing for a password or setting it refuses.
std::optional<std::string> run_crypt(std::string_view password, const std::string& setting) {
  if (password.size() >= CRYPT_MAX_PASSPHRASE_SIZE || password.find('\0') != std::string_view::npos)
    return std::nullopt;
  auto data = std::make_unique<crypt_data>();
  std::memset(data.get(), 0, sizeof(crypt_data));
  std::string phrase(password);
  const char* out = crypt_rn(phrase.c_str(), setting.c_str(), data.get(), sizeof(crypt_data));
  OPENSSL_cleanse(phrase.data(), phrase.size());
  std::optional<std::string> result;
  if (out && out[0] != '*') result = out;
  OPENSSL_cleanse(data.get(), sizeof(crypt_data));
  return result;
}

const std::string& decoy_hash() {
  static const std::string hash = [] {
    auto h = hash_password("decoy password", HashScheme::kYescrypt);
    return h ? *h : std::string();
  }();
  return hash;
}

}  // namespace

std::optional<HashScheme> parse_hash_scheme(std::string_view name) {
  if (iequals(name, "yescrypt")) return HashScheme::kYescrypt;
  if (iequals(name, "bcrypt") || iequals(name, "blf-crypt")) return HashScheme::kBcrypt;
  if (iequals(name, "sha512-crypt")) return HashScheme::kSha512Crypt;
  return std::nullopt;
}

Result<std::string> hash_password(std::string_view password, HashScheme scheme) {
  std::string_view prefix;
  for (const auto& s : kSchemes)
    if (s.scheme == scheme) prefix = s.prefix;
  char setting[CRYPT_GENSALT_OUTPUT_SIZE];
  // No random bytes given: libxcrypt takes them from the system's generator.
  if (!crypt_gensalt_rn(std::string(prefix).c_str(), 0, nullptr, 0, setting, sizeof setting))
    return fail(std::string("cannot make a salt: ") + std::strerror(errno));
  auto hash = run_crypt(password, setting);
  if (!hash) return fail("crypt(3) cannot hash this password (NUL or over 511 bytes)");
  return *hash;
}

PasswordCheck check_password(std::string_view password, std::string_view stored) {
  std::string_view hash = stored;
  std::string scheme;
  if (hash.starts_with("{")) {
    size_t close = hash.find('}');
    if (close == std::string_view::npos) return {PasswordCheck::kRefused, "malformed scheme prefix"};
    scheme = hash.substr(1, close - 1);
    std::transform(scheme.begin(), scheme.end(), scheme.begin(), [](unsigned char c) { return std::toupper(c); });
    hash.remove_prefix(close + 1);
  }
  if (hash.starts_with("!") || hash.starts_with("*")) return {PasswordCheck::kLocked, "account locked"};
  if (hash.empty()) return {PasswordCheck::kRefused, "empty password hash"};
  if (!family_allowed(scheme, hash)) {
    std::string what = scheme.empty() || scheme == "CRYPT" ? "not a yescrypt, bcrypt or SHA-512 crypt hash"
                                                           : "scheme {" + scheme + "} is weak or unsupported";
    return {PasswordCheck::kRefused, what};
  }
  std::string setting(hash);
  auto computed = run_crypt(password, setting);
  if (!computed) {
    // A malformed hash makes crypt fail whatever the password; a password crypt
    // cannot take simply does not match.
    if (!run_crypt("x", setting)) return {PasswordCheck::kRefused, "malformed hash"};
    return {PasswordCheck::kMismatch, {}};
  }
  // Any password gives a hash as long as a complete stored one; a different length
  // means the entry is a bare setting or truncated.
  bool complete = computed->size() == hash.size();
  bool same = complete && CRYPTO_memcmp(computed->data(), hash.data(), hash.size()) == 0;
  OPENSSL_cleanse(computed->data(), computed->size());
  if (!complete) return {PasswordCheck::kRefused, "malformed hash"};
  return {same ? PasswordCheck::kMatch : PasswordCheck::kMismatch, {}};
}

void check_password_decoy(std::string_view password) {
  if (!decoy_hash().empty()) (void)run_crypt(password, decoy_hash());
}

}  // namespace postern
