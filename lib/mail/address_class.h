// Postfix's address classes are exclusive: a domain is local (mydestination), a
// virtual alias domain, a virtual mailbox domain, a relay domain, or none of
// them. recipient_check.h decides the class of a domain for mail; this file finds
// configurations that put one domain in two classes, for `postern check`.
#pragma once

#include <string>
#include <vector>

#include "mail/config.h"

namespace postern {

// One message per domain found in two classes, "main.cf:LINE: domain example.com
// is in both virtual_mailbox_domains and mydestination". Domains are compared as
// names: those listed in main.cf and the keys of tables that can be listed (hash:,
// btree:, texthash:, inline:) are looked up in every other class, tables of any
// type included (a lookup that fails is reported, once per class). Keys with '@' (address
// tables such as the default virtual_mailbox_domains = $virtual_mailbox_maps) are
// not domains and are skipped. Throws ConfigError for a table that cannot be opened.
std::vector<std::string> domain_class_conflicts(const Config& config);

}  // namespace postern
