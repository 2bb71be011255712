// Virtual alias expansion (virtual_alias_maps), as Postfix's cleanup does it for
// every recipient whatever its domain's class: one address becomes one or more.
//
// Lookup keys, in order (address_keys.h): user+ext@domain, user@domain, then
// user+ext and user for addresses of local domains only, then the catch-all
// @domain.  A value is a list of addresses separated by commas or white space;
// one without a domain is qualified with myorigin.  When the key that matched
// had no extension, the recipient's extension is carried onto results that
// have none (user+ext@a -> other+ext@b), as propagate_unmatched_extensions does.
// Every result is looked up again, up to max_depth levels:
//   - an address that maps to a list holding itself is final there
//     ("a@d -> a@d, b@d" keeps a copy for a@d), as in Postfix;
//   - an address met again on its own expansion path (a -> b -> a) is a loop:
//     the recipient bounces (5.4.6), never silently dropped;
//   - the same final address reached twice is delivered once;
//   - more than max_depth levels or more than max_size final addresses bounce (5.4.6);
//   - a table that fails temporarily defers (4.3.0): the recipient keeps its place.
#pragma once

#include <cstddef>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "mail/config.h"
#include "mail/table.h"

namespace postern {

struct VirtualAliasOptions {
  std::string delimiters;  // recipient_delimiter
  std::string myorigin;    // qualifies results without a domain
  size_t max_depth = 1000;  // virtual_alias_recursion_limit
  size_t max_size = 1000;   // virtual_alias_expansion_limit
  // Whether a domain is local (mydestination): only then are bare local parts looked up.
  std::function<bool(std::string_view domain)> is_local_domain;
};

struct AliasExpansion {
  enum class Status { kExpanded, kDefer, kBounce } status = Status::kExpanded;
  std::vector<std::string> addresses;  // final recipients, in order, without repeats
  bool changed = false;                // false when the address is not an alias (addresses = it)
  std::string dsn;                     // for kDefer / kBounce: "4.3.0", "5.4.6"
  std::string reason;                  // why, for the log and the bounce text

  bool expanded() const { return status == Status::kExpanded; }
};

// Expands one recipient (internal form) through maps. An empty maps list gives the
// address back unchanged.
AliasExpansion expand_virtual_aliases(TableList& maps, std::string_view address, const VirtualAliasOptions& options);

// virtual_alias_maps as main.cf sets it up (recipient_delimiter, myorigin,
// mydestination, virtual_alias_recursion_limit, virtual_alias_expansion_limit),
// for cleanup and smtpd's IncomingMessage.
class VirtualAliases {
 public:
  // Opens the tables; throws ConfigError naming main.cf:line for a bad one.
  explicit VirtualAliases(const Config& config);
  // Safe to call from several threads (lookups take turns).
  AliasExpansion expand(std::string_view address);

 private:
  std::mutex mutex_;
  TableList maps_;
  VirtualAliasOptions options_;
};

// The process's VirtualAliases, opened on first use and kept (mysql: connections
// stay open; hash: tables follow rebuilds). A failed open throws and is tried again.
VirtualAliases& process_virtual_aliases(const Config& config);

}  // namespace postern
