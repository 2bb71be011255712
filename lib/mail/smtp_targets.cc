// The smtp client's connection targets for a nexthop (see smtp_targets.h).
#include "mail/smtp_targets.h"

#include <sys/socket.h>

#include <algorithm>
#include <random>

#include "util/strings.h"

namespace postern {
namespace {

TargetList finish(TargetList::Outcome outcome, std::string dsn, std::string text) {
  TargetList list;
  list.outcome = outcome;
  list.dsn = std::move(dsn);
  list.text = std::move(text);
  return list;
}

// Shuffles runs of equal preference, so load spreads over equal MX hosts.
void shuffle_equal(std::vector<MxHost>& hosts) {
  static std::mt19937 random{std::random_device{}()};
  for (size_t begin = 0; begin < hosts.size();) {
    size_t end = begin;
    while (end < hosts.size() && hosts[end].preference == hosts[begin].preference) ++end;
    std::shuffle(hosts.begin() + long(begin), hosts.begin() + long(end), random);
    begin = end;
  }
}

bool is_own(const TargetOptions& options, const std::string& address) {
  auto ip = parse_ip(address);
  return ip && std::find(options.own_addresses.begin(), options.own_addresses.end(), *ip) !=
                   options.own_addresses.end();
}

struct HostAddresses {
  std::vector<std::string> addresses;
  bool temp_fail = false;
  std::string error;
};

HostAddresses addresses_of(Resolver& resolver, const std::string& host, const TargetOptions& options) {
  HostAddresses out;
  if (parse_ip(host)) {
    out.addresses.push_back(host);
    return out;
  }
  for (auto [wanted, type, name] : {std::tuple{options.ipv4, DnsType::kA, "A"}, {options.ipv6, DnsType::kAaaa, "AAAA"}}) {
    if (!wanted) continue;
    auto found = resolver.lookup(host, type);
    if (found.found()) {
      out.addresses.insert(out.addresses.end(), found.records.begin(), found.records.end());
    } else if (found.temp_fail()) {
      out.temp_fail = true;
      out.error = "Host or domain name not found. Name service error for name=" + host + " type=" + name +
                  ": Host not found, try again";
    } else if (out.error.empty()) {
      out.error = "Host or domain name not found. Name service error for name=" + host + " type=" + name +
                  ": Host not found";
    }
  }
  return out;
}

}  // namespace

TargetList find_targets(Resolver& resolver, const NextHop& hop, const TargetOptions& options) {
  std::vector<MxHost> hosts;
  if (!hop.mx_lookup || parse_ip(hop.host)) {
    hosts.push_back({0, hop.host});
  } else {
    auto mx = resolver.lookup_mx(hop.host);
    if (mx.temp_fail())
      return finish(TargetList::Outcome::kDefer, "4.4.3",
                    "Host or domain name not found. Name service error for name=" + hop.host +
                        " type=MX: Host not found, try again");
    if (mx.found()) {
      if (mx.records.size() == 1 && mx.records[0].host.empty())
        return finish(TargetList::Outcome::kBounce, "5.1.10",
                      "Domain " + hop.host + " does not accept mail (nullMX)");
      hosts = mx.records;
      shuffle_equal(hosts);
    } else {
      hosts.push_back({0, hop.host});  // implicit MX: the domain's own addresses
    }
  }

  // Our own preference: MX hosts from it on are dropped.
  std::vector<std::pair<MxHost, HostAddresses>> resolved;
  int own_preference = -1;
  bool temp_fail = false;
  std::string last_error;
  for (const MxHost& mx : hosts) {
    if (mx.host.empty()) continue;  // a null MX among others is ignored
    if (own_preference >= 0 && mx.preference >= own_preference) break;
    HostAddresses found = addresses_of(resolver, mx.host, options);
    bool ours = lowercase(mx.host) == lowercase(options.myhostname) ||
                std::any_of(found.addresses.begin(), found.addresses.end(),
                            [&](const std::string& a) { return is_own(options, a); });
    if (ours) {
      own_preference = mx.preference;
      continue;
    }
    temp_fail = temp_fail || found.temp_fail;
    if (found.addresses.empty()) last_error = found.error;
    resolved.emplace_back(mx, std::move(found));
  }
  if (own_preference >= 0)
    std::erase_if(resolved, [&](const auto& entry) { return entry.first.preference >= own_preference; });
  TargetList list;
  for (const auto& [mx, found] : resolved) {
    for (const std::string& address : found.addresses) {
      if (options.address_limit > 0 && list.targets.size() >= options.address_limit) break;
      list.targets.push_back({mx.host, address, hop.port});
    }
  }
  if (!list.targets.empty()) return list;
  if (own_preference >= 0 && resolved.empty())
    return finish(TargetList::Outcome::kBounce, "5.4.6", "mail for " + hop.host + " loops back to myself");
  if (temp_fail) return finish(TargetList::Outcome::kDefer, "4.4.3", last_error);
  return finish(TargetList::Outcome::kBounce, "5.4.4", last_error);
}

}  // namespace postern
