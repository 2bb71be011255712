// The lookup keys of an address in Postfix's order (see address_keys.h).
#include "mail/address_keys.h"

#include "util/strings.h"

namespace postern {
namespace {

// Where the extension of a (lower-case) local part begins, or npos.
size_t extension_start(std::string_view local, std::string_view delimiters) {
  if (delimiters.empty() || local == "postmaster" || local == "mailer-daemon") return std::string_view::npos;
  if (delimiters.find('-') != std::string_view::npos &&
      (local.starts_with("owner-") || local.ends_with("-request")))
    return std::string_view::npos;
  size_t at = local.find_first_of(delimiters);
  return at == 0 ? std::string_view::npos : at;
}

}  // namespace

std::vector<std::string> address_keys(std::string_view address, const AddressKeyOptions& options) {
  std::string lower = lowercase(address);
  size_t at = lower.rfind('@');
  bool has_domain = at != std::string::npos;
  std::string_view local = std::string_view(lower).substr(0, has_domain ? at : lower.size());
  std::string_view domain = has_domain ? std::string_view(lower).substr(at) : std::string_view();  // with '@'
  size_t ext = extension_start(local, options.delimiters);
  std::string_view user = local.substr(0, ext);

  std::vector<std::string> keys;
  if (lower.empty()) return keys;
  if (has_domain) {
    keys.push_back(lower);
    if (ext != std::string_view::npos) keys.push_back(std::string(user) + std::string(domain));
  }
  if (options.local_part || !has_domain) {
    if (!local.empty()) keys.emplace_back(local);
    if (ext != std::string_view::npos) keys.emplace_back(user);
  }
  if (options.catch_all && has_domain && !local.empty() && domain.size() > 1) keys.emplace_back(domain);
  return keys;
}

LookupResult lookup_address(TableList& tables, std::string_view address, const AddressKeyOptions& options) {
  for (const std::string& key : address_keys(address, options)) {
    LookupResult r = tables.lookup(key);
    if (r.status != LookupStatus::kNotFound) return r;
  }
  return LookupResult::not_found();
}

}  // namespace postern
