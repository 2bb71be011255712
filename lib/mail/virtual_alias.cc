// Virtual alias expansion (see virtual_alias.h).
#include "mail/virtual_alias.h"

#include <algorithm>
#include <memory>
#include <set>

#include "mail/address.h"
#include "mail/address_keys.h"
#include "util/error.h"
#include "util/strings.h"

namespace postern {
namespace {

class Expander {
 public:
  Expander(TableList& maps, const VirtualAliasOptions& options) : maps_(maps), options_(options) {}

  AliasExpansion run(std::string_view address) {
    if (maps_.empty()) out_.addresses = {std::string(address)};
    else expand(std::string(address), 0);
    if (out_.expanded()) out_.changed = !(out_.addresses.size() == 1 && out_.addresses[0] == address);
    return std::move(out_);
  }

 private:
  // False once the whole expansion has failed.
  bool expand(const std::string& address, size_t depth) {
    std::string lower = lowercase(address);
    if (std::find(path_.begin(), path_.end(), lower) != path_.end())
      return stop(AliasExpansion::Status::kBounce, "5.4.6", "virtual alias loop: " + describe_loop(lower));
    if (depth > options_.max_depth)
      return stop(AliasExpansion::Status::kBounce, "5.4.6",
                  "unreasonable virtual_alias_maps nesting for " + path_.front());
    Address parts = split_address(address);
    bool local = !parts.domain.empty() && options_.is_local_domain && options_.is_local_domain(parts.domain);
    std::vector<std::string> keys = address_keys(address, {options_.delimiters, local, true});
    std::string matched;
    LookupResult found;
    for (const std::string& key : keys) {
      found = maps_.lookup(key);
      if (found.is_temp_fail())
        return stop(AliasExpansion::Status::kDefer, "4.3.0",
                    "virtual_alias_maps lookup of " + key + " failed: " + found.error);
      if (found.is_found()) {
        matched = key;
        break;
      }
    }
    if (!found.is_found()) return add_final(address);
    std::vector<std::string> targets = split_list(found.value);
    if (targets.empty())
      return stop(AliasExpansion::Status::kBounce, "5.4.6", "virtual alias " + matched + " has no targets");
    std::string extension = unmatched_extension(address, lower, matched, local);
    path_.push_back(lower);
    for (std::string target : targets) {
      target = qualify(with_extension(target, extension));
      bool ok = lowercase(target) == lower ? add_final(target) : expand(target, depth + 1);
      if (!ok) return false;
    }
    path_.pop_back();
    return true;
  }

  // The recipient's extension ("+tag") when the key that matched did not hold it.
  std::string unmatched_extension(const std::string& address, const std::string& lower, const std::string& matched,
                                  bool local) const {
    std::vector<std::string> plain = address_keys(address, {options_.delimiters, false, false});
    if (plain.size() < 2) return "";  // no extension
    size_t user_len = plain[1].rfind('@');
    Address parts = split_address(address);
    bool matched_with_extension = matched == lower || (local && matched == lowercase(parts.local));
    return matched_with_extension ? "" : parts.local.substr(user_len);
  }

  std::string with_extension(const std::string& target, const std::string& extension) const {
    if (extension.empty()) return target;
    Address parts = split_address(target);
    if (parts.local.find_first_of(options_.delimiters) != std::string::npos) return target;
    size_t at = target.rfind('@');
    return at == std::string::npos ? target + extension : target.substr(0, at) + extension + target.substr(at);
  }

  std::string qualify(const std::string& target) const {
    if (target.find('@') != std::string::npos || options_.myorigin.empty()) return target;
    return target + "@" + options_.myorigin;
  }

  bool add_final(const std::string& address) {
    if (!seen_.insert(lowercase(address)).second) return true;
    out_.addresses.push_back(address);
    if (out_.addresses.size() > options_.max_size)
      return stop(AliasExpansion::Status::kBounce, "5.4.6",
                  "unreasonable virtual_alias_maps expansion size for " +
                      (path_.empty() ? address : path_.front()));
    return true;
  }

  std::string describe_loop(const std::string& again) const {
    std::string text;
    auto from = std::find(path_.begin(), path_.end(), again);
    for (auto it = from; it != path_.end(); ++it) text += *it + " -> ";
    return text + again;
  }

  bool stop(AliasExpansion::Status status, std::string dsn, std::string reason) {
    out_.status = status;
    out_.dsn = std::move(dsn);
    out_.reason = std::move(reason);
    out_.addresses.clear();
    return false;
  }

  TableList& maps_;
  const VirtualAliasOptions& options_;
  AliasExpansion out_;
  std::vector<std::string> path_;  // the addresses being expanded, outermost first (lower case)
  std::set<std::string> seen_;     // final addresses so far (lower case)
};

}  // namespace

AliasExpansion expand_virtual_aliases(TableList& maps, std::string_view address, const VirtualAliasOptions& options) {
  return Expander(maps, options).run(address);
}

VirtualAliases::VirtualAliases(const Config& config) {
  maps_ = tables_of(config, "virtual_alias_maps");
  options_.delimiters = config.str("recipient_delimiter");
  options_.myorigin = config.str("myorigin");
  options_.max_depth = size_t(config.integer("virtual_alias_recursion_limit"));
  options_.max_size = size_t(config.integer("virtual_alias_expansion_limit"));
  std::set<std::string> local;
  for (const std::string& domain : config.list("mydestination")) local.insert(lowercase(domain));
  options_.is_local_domain = [local](std::string_view domain) { return local.count(std::string(domain)) > 0; };
}

AliasExpansion VirtualAliases::expand(std::string_view address) {
  std::lock_guard<std::mutex> lock(mutex_);
  return expand_virtual_aliases(maps_, address, options_);
}

VirtualAliases& process_virtual_aliases(const Config& config) {
  static std::mutex opening;
  static std::unique_ptr<VirtualAliases> aliases;
  std::lock_guard<std::mutex> lock(opening);
  if (!aliases) aliases = std::make_unique<VirtualAliases>(config);
  return *aliases;
}

}  // namespace postern
