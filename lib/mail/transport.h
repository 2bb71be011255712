// Where a recipient goes: the transport (a master.cf service: local, smtp, relay,
// virtual, error) and its nexthop, as Postfix's trivial-rewrite resolves them.
//
// 1. transport_maps, searched with Postfix's order for transport(5):
//      user+ext@domain, user@domain, domain, .parent.domain ... .tld, *
//    A found "transport:nexthop" overrides the class default below; an empty
//    transport keeps the class's transport, an empty nexthop with a transport
//    resets the nexthop to the recipient domain, and ":" alone changes nothing.
// 2. The address class of the domain (mail/recipient_check.h):
//      local (mydestination, our [IP])  local_transport   ("local:$myhostname")
//      virtual alias domains            error: the address should have been rewritten
//      virtual mailbox domains          virtual_transport
//      relay_domains                    relay_transport, nexthop relayhost or the domain
//      anything else                    default_transport, nexthop relayhost or the domain
//    A transport value with its own nexthop ("smtp:[gw]:2525") wins over relayhost.
//
// A table that cannot answer is a temporary failure: the recipient is deferred.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "mail/config.h"
#include "util/result.h"

namespace postern {

struct Route {
  std::string transport;  // the master.cf service name ("smtp", "local", "error", ...)
  std::string nexthop;    // a domain, a host, "[host]:port"; for error, the reason text
  bool operator==(const Route&) const = default;
};

// "transport:nexthop" split at the first colon ("smtp:[::1]:25" keeps its nexthop);
// a value without a colon is all transport.
Route parse_route(std::string_view value);

// A nexthop as the smtp client reads it: "[host]:port" is that host without an MX
// lookup; "host:port" and "host" are looked up as a mail domain (MX, else the
// host's own addresses).  The port is a number or an /etc/services name.
struct NextHop {
  std::string host;  // lower case, without brackets
  uint16_t port = 25;
  bool mx_lookup = true;
};
Result<NextHop> parse_nexthop(std::string_view nexthop, uint16_t default_port);

// The keys transport_maps is searched with, in order (lower case).
std::vector<std::string> transport_keys(std::string_view address, std::string_view delimiters);

class Router {
 public:
  // Opens transport_maps and the domain class tables; throws ConfigError naming a bad one.
  explicit Router(const Config& config);
  ~Router();
  Router(const Router&) = delete;
  Router& operator=(const Router&) = delete;

  // The route of one recipient (internal form), or a temporary failure saying why.
  Result<Route> route(std::string_view address);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace postern
