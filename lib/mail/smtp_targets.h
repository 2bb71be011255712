// Where the smtp client connects for one nexthop: the MX hosts of a domain in
// preference order (equal preferences shuffled), the domain itself when it has no
// MX (implicit MX), or a [host] without MX lookup; then each host's IPv4 and IPv6
// addresses as inet_protocols allows.  A null MX (RFC 7505), NXDOMAIN, and MX hosts
// that are all ourselves end in a bounce; a DNS temporary failure in a deferral.
//
// Ourselves: an MX host named $myhostname, or one whose address is one of
// inet_interfaces.  As in Postfix, MX hosts with our preference or a worse one are
// dropped, so a backup MX (a relay_domains domain where we have a worse
// preference) only ever passes mail to better hosts and keeps it queued while they
// are down; when we are the best, the mail "loops back to myself".
#pragma once

#include <string>
#include <vector>

#include "mail/transport.h"
#include "util/dns.h"
#include "util/network.h"

namespace postern {

struct SmtpTarget {
  std::string host;     // for logs and texts: "mx.example.com"
  std::string address;  // numeric
  uint16_t port = 25;
};

struct TargetOptions {
  std::string myhostname;
  std::vector<IpAddress> own_addresses;  // inet_interfaces
  bool ipv4 = true;
  bool ipv6 = true;
  size_t address_limit = 0;  // smtp_mx_address_limit; 0 = every one
};

struct TargetList {
  enum class Outcome { kTargets, kDefer, kBounce } outcome = Outcome::kTargets;
  std::vector<SmtpTarget> targets;  // kTargets: never empty
  std::string dsn;                  // kDefer / kBounce
  std::string text;
};

TargetList find_targets(Resolver& resolver, const NextHop& hop, const TargetOptions& options);

}  // namespace postern
