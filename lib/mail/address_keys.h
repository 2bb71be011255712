// Postfix's search order for an address in a lookup table, kept in this one place.
// For "user+ext@domain" (with "+" in recipient_delimiter) the keys are, in order:
//   1. user+ext@domain
//   2. user@domain                 only when there is an extension
//   3. user+ext                    when local_part: the domain is one of ours
//   4. user                        when local_part, and only when there is an extension
//   5. @domain                     when catch_all
// An address without '@' (a bare local part, as aliases are looked up) gives keys 3
// and 4 only. Keys are in lower case. The extension begins at the first character of
// the local part that is in delimiters; there is none when delimiters is empty, when
// the delimiter is the first character, for postmaster and mailer-daemon, and,
// when '-' is a delimiter, for owner-list and list-request (mailing list names).
// A list of tables is searched key by key: every table for key 1, then key 2, ...
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "mail/table.h"

namespace postern {

struct AddressKeyOptions {
  std::string delimiters;  // recipient_delimiter
  bool local_part = false;  // also try the local part alone (local domains, aliases)
  bool catch_all = false;   // also try @domain
};

std::vector<std::string> address_keys(std::string_view address, const AddressKeyOptions& options);

// Tries address_keys() in order; the first found or temporary failure answers.
LookupResult lookup_address(TableList& tables, std::string_view address, const AddressKeyOptions& options);

}  // namespace postern
