// Routing of recipients to transports and nexthops (see transport.h).
#include "mail/transport.h"

#include <netdb.h>

#include <charconv>

#include "mail/address.h"
#include "mail/address_keys.h"
#include "mail/recipient_check.h"
#include "mail/table.h"
#include "util/strings.h"

namespace postern {

Route parse_route(std::string_view value) {
  value = trim(value);
  size_t colon = value.find(':');
  if (colon == std::string_view::npos) return {std::string(value), ""};
  return {std::string(trim(value.substr(0, colon))), std::string(trim(value.substr(colon + 1)))};
}

Result<NextHop> parse_nexthop(std::string_view text, uint16_t default_port) {
  NextHop hop;
  hop.port = default_port;
  std::string_view rest = trim(text);
  std::string_view port;
  if (rest.starts_with("[")) {
    size_t close = rest.find(']');
    if (close == std::string_view::npos) return fail("missing ']' in nexthop \"" + std::string(text) + "\"");
    hop.host = lowercase(rest.substr(1, close - 1));
    hop.mx_lookup = false;
    rest = rest.substr(close + 1);
    if (!rest.empty()) {
      if (rest[0] != ':') return fail("junk after ']' in nexthop \"" + std::string(text) + "\"");
      port = rest.substr(1);
    }
  } else {
    size_t colon = rest.rfind(':');
    hop.host = lowercase(rest.substr(0, colon));
    if (colon != std::string_view::npos) port = rest.substr(colon + 1);
  }
  if (hop.host.empty()) return fail("no host in nexthop \"" + std::string(text) + "\"");
  if (hop.host.starts_with("ipv6:")) hop.host = hop.host.substr(5);
  if (!port.empty()) {
    unsigned number = 0;
    auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), number);
    if (ec == std::errc() && end == port.data() + port.size() && number > 0 && number < 65536) {
      hop.port = static_cast<uint16_t>(number);
    } else if (const servent* service = ::getservbyname(std::string(port).c_str(), "tcp")) {
      hop.port = ntohs(static_cast<uint16_t>(service->s_port));
    } else {
      return fail("unknown port \"" + std::string(port) + "\" in nexthop \"" + std::string(text) + "\"");
    }
  }
  return hop;
}

std::vector<std::string> transport_keys(std::string_view address, std::string_view delimiters) {
  std::vector<std::string> keys;
  std::string lower = lowercase(address);
  size_t at = lower.rfind('@');
  if (at != std::string::npos && at + 1 < lower.size()) {
    keys = address_keys(lower, {std::string(delimiters), false, false});
    std::string domain = lower.substr(at + 1);
    keys.push_back(domain);
    for (size_t dot = domain.find('.'); dot != std::string::npos; dot = domain.find('.', dot + 1))
      keys.push_back(domain.substr(dot));
  }
  keys.push_back("*");
  return keys;
}

// The configuration the domain classes are read from, without the recipient
// tables: routing needs only the lists of domains, and must not depend on (or
// open) local_recipient_maps or relay_recipient_maps.
Config domains_only(const Config& config) {
  Config copy = config;
  copy.set("local_recipient_maps", "", "transport.cc", 0);
  copy.set("relay_recipient_maps", "", "transport.cc", 0);
  return copy;
}

struct Router::Impl {
  explicit Impl(const Config& config)
      : classes(domains_only(config)),
        transport_maps(config.str("transport_maps")),
        delimiters(config.str("recipient_delimiter")),
        local(parse_route(config.str("local_transport"))),
        virtual_mailbox(parse_route(config.str("virtual_transport"))),
        relay(parse_route(config.str("relay_transport"))),
        fallback(parse_route(config.str("default_transport"))),
        relayhost(config.str("relayhost")) {}

  // The class default for a domain (lower case), or a temporary failure.
  Result<Route> by_class(const std::string& domain) {
    DomainClassResult found = classes.classify(domain);
    if (found.temp_fail) return fail("domain class lookup failed: " + found.error);
    auto or_domain = [&](Route route, bool use_relayhost) {
      if (route.nexthop.empty()) route.nexthop = use_relayhost && !relayhost.empty() ? relayhost : domain;
      return route;
    };
    switch (found.domain_class) {
      case DomainClass::kLocal:
        return local;
      case DomainClass::kVirtualAlias:
        return Route{"error", "5.1.1 User unknown in virtual alias table"};
      case DomainClass::kVirtualMailbox:
        return or_domain(virtual_mailbox, false);
      case DomainClass::kRelay:
        return or_domain(relay, true);
      case DomainClass::kOther:
        break;
    }
    return or_domain(fallback, true);
  }

  RecipientCheck classes;
  TableList transport_maps;
  std::string delimiters;
  Route local, virtual_mailbox, relay, fallback;
  std::string relayhost;
};

Router::Router(const Config& config) : impl_(std::make_unique<Impl>(config)) {}
Router::~Router() = default;

Result<Route> Router::route(std::string_view address) {
  std::string domain = split_address(address).domain;
  if (!domain.empty() && domain.back() == '.') domain.pop_back();
  auto by_class = impl_->by_class(domain);
  if (!by_class) return by_class;
  if (impl_->transport_maps.empty()) return by_class;
  for (const std::string& key : transport_keys(address, impl_->delimiters)) {
    LookupResult found = impl_->transport_maps.lookup(key);
    if (found.is_temp_fail()) return fail("transport_maps lookup of " + key + " failed: " + found.error);
    if (!found.is_found()) continue;
    Route entry = parse_route(found.value);
    Route route = *by_class;
    if (!entry.transport.empty()) {
      route.transport = entry.transport;
      route.nexthop = entry.nexthop.empty() ? domain : entry.nexthop;
    } else if (!entry.nexthop.empty()) {
      route.nexthop = entry.nexthop;
    }
    return route;
  }
  return by_class;
}

}  // namespace postern
