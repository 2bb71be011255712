// IP addresses and networks (see network.h).
#include "util/network.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>

#include <algorithm>
#include <cstring>
#include <memory>

#include "util/strings.h"

namespace postern {

namespace {

int bits_of(int family) { return family == AF_INET ? 32 : 128; }

IpAddress masked(IpAddress address, int prefix) {
  int length = bits_of(address.family) / 8;
  for (int i = 0; i < length; ++i) {
    int keep = std::clamp(prefix - i * 8, 0, 8);
    address.bytes[i] &= static_cast<uint8_t>(0xff00 >> keep);
  }
  return address;
}

std::optional<IpAddress> from_sockaddr(const sockaddr* sa) {
  if (!sa) return std::nullopt;
  IpAddress address;
  address.family = sa->sa_family;
  if (sa->sa_family == AF_INET) {
    std::memcpy(address.bytes.data(), &reinterpret_cast<const sockaddr_in*>(sa)->sin_addr, 4);
  } else if (sa->sa_family == AF_INET6) {
    std::memcpy(address.bytes.data(), &reinterpret_cast<const sockaddr_in6*>(sa)->sin6_addr, 16);
  } else {
    return std::nullopt;
  }
  return address;
}

int prefix_of_mask(const IpAddress& mask) {
  int prefix = 0;
  for (int i = 0; i < bits_of(mask.family) / 8; ++i) prefix += __builtin_popcount(mask.bytes[i]);
  return prefix;
}

}  // namespace

std::optional<IpAddress> parse_ip(std::string_view text) {
  if (text.size() >= 2 && text.front() == '[' && text.back() == ']') text = text.substr(1, text.size() - 2);
  bool tagged_v6 = text.size() > 5 && iequals(text.substr(0, 5), "IPv6:");
  if (tagged_v6) text = text.substr(5);
  std::string s(text);
  IpAddress address;
  if (!tagged_v6 && inet_pton(AF_INET, s.c_str(), address.bytes.data()) == 1) {
    address.family = AF_INET;
    return address;
  }
  if (inet_pton(AF_INET6, s.c_str(), address.bytes.data()) == 1) {
    static const uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (std::memcmp(address.bytes.data(), kMapped, 12) == 0) {
      std::memmove(address.bytes.data(), address.bytes.data() + 12, 4);
      std::fill(address.bytes.begin() + 4, address.bytes.end(), 0);
      address.family = AF_INET;
    } else {
      address.family = AF_INET6;
    }
    return address;
  }
  return std::nullopt;
}

std::string to_string(const IpAddress& address) {
  char text[INET6_ADDRSTRLEN] = {};
  inet_ntop(address.family, address.bytes.data(), text, sizeof text);
  return text;
}

bool IpNetwork::contains(const IpAddress& other) const {
  return other.family == address.family && masked(other, prefix) == address;
}

std::optional<IpNetwork> parse_network(std::string_view text, std::string* error) {
  auto failed = [&](std::string why) -> std::optional<IpNetwork> {
    if (error) *error = std::move(why);
    return std::nullopt;
  };
  size_t slash = text.find('/');
  auto address = parse_ip(text.substr(0, slash));
  if (!address) return failed("not an IP address: " + std::string(text.substr(0, slash)));
  IpNetwork network{*address, bits_of(address->family)};
  if (slash != std::string_view::npos) {
    auto prefix = parse_int(text.substr(slash + 1));
    if (!prefix || *prefix < 0 || *prefix > network.prefix)
      return failed("bad network prefix length: " + std::string(text));
    network.prefix = static_cast<int>(*prefix);
  }
  if (masked(network.address, network.prefix) != network.address)
    return failed("host bits set in network: " + std::string(text) + " (did you mean " +
                  to_string(IpNetwork{masked(network.address, network.prefix), network.prefix}) + "?)");
  return network;
}

std::string to_string(const IpNetwork& network) {
  std::string address = to_string(network.address);
  if (network.address.family == AF_INET6) address = "[" + address + "]";
  return address + "/" + std::to_string(network.prefix);
}

std::vector<IpNetwork> local_networks(NetworkStyle style) {
  std::vector<IpNetwork> networks;
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) return networks;
  std::unique_ptr<ifaddrs, decltype(&freeifaddrs)> owner(list, freeifaddrs);
  for (ifaddrs* i = list; i; i = i->ifa_next) {
    if (!(i->ifa_flags & IFF_UP)) continue;
    auto address = from_sockaddr(i->ifa_addr);
    if (!address) continue;
    int prefix = bits_of(address->family);
    if (style == NetworkStyle::kClass && address->family == AF_INET) {
      uint8_t first = address->bytes[0];
      prefix = first < 128 ? 8 : first < 192 ? 16 : first < 224 ? 24 : 32;
    } else if (style != NetworkStyle::kHost) {
      if (auto mask = from_sockaddr(i->ifa_netmask); mask && mask->family == address->family)
        prefix = prefix_of_mask(*mask);
    }
    IpNetwork network{masked(*address, prefix), prefix};
    if (std::find(networks.begin(), networks.end(), network) == networks.end()) networks.push_back(network);
  }
  return networks;
}

std::vector<IpAddress> interface_addresses(const std::vector<std::string>& inet_interfaces) {
  std::vector<IpAddress> out;
  for (const std::string& item : inet_interfaces) {
    if (item == "all") {
      for (const IpNetwork& network : local_networks(NetworkStyle::kHost)) out.push_back(network.address);
    } else if (item == "loopback-only") {
      out.push_back(*parse_ip("127.0.0.1"));
      out.push_back(*parse_ip("::1"));
    } else if (auto ip = parse_ip(item)) {
      out.push_back(*ip);
    }
  }
  return out;
}

}  // namespace postern
