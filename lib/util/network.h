// IP networks as Postfix writes them in mynetworks and access lists:
// "192.0.2.0/24", "192.0.2.1", "[2001:db8::]/32", "[::1]", and the networks of
// this machine's interfaces for mynetworks_style (host, subnet, class).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace postern {

struct IpAddress {
  int family = 0;                   // AF_INET or AF_INET6
  std::array<uint8_t, 16> bytes{};  // 4 used for IPv4
  bool operator==(const IpAddress&) const = default;
};

// "192.0.2.1", "2001:db8::1", also "[...]" and "IPv6:" forms as in address literals.
// An IPv4-mapped IPv6 address (::ffff:192.0.2.1) is returned as IPv4.
std::optional<IpAddress> parse_ip(std::string_view text);
std::string to_string(const IpAddress& address);

struct IpNetwork {
  IpAddress address;  // with the host bits cleared
  int prefix = 0;
  bool contains(const IpAddress& address) const;
  bool operator==(const IpNetwork&) const = default;
};

// "net/prefix" or a bare address (the whole length). A network with host bits
// set ("192.0.2.1/24") is refused, as Postfix does, since it is most often a typo.
// The reason is returned in error.
std::optional<IpNetwork> parse_network(std::string_view text, std::string* error = nullptr);
std::string to_string(const IpNetwork& network);

enum class NetworkStyle { kHost, kSubnet, kClass };
// The networks of this machine's up interfaces: each address alone (host), its
// interface subnet (subnet), or its class A/B/C network (class; IPv6 as subnet).
std::vector<IpNetwork> local_networks(NetworkStyle style);

// The addresses inet_interfaces names ("all": every interface's, "loopback-only";
// names that are no address are skipped).
std::vector<IpAddress> interface_addresses(const std::vector<std::string>& inet_interfaces);

}  // namespace postern
