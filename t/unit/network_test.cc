// Tests of lib/util/network.h: addresses, networks as mynetworks writes them, and
// this machine's own networks.
#include <catch2/catch.hpp>

#include <sys/socket.h>

#include "util/network.h"

using namespace postern;

TEST_CASE("network: addresses in their written forms", "[network]") {
  auto v4 = parse_ip("192.0.2.1");
  REQUIRE(v4);
  CHECK(v4->family == AF_INET);
  CHECK(to_string(*v4) == "192.0.2.1");
  CHECK(parse_ip("[192.0.2.1]") == v4);
  CHECK(parse_ip("::ffff:192.0.2.1") == v4);  // IPv4-mapped is the IPv4 address
  auto v6 = parse_ip("[IPv6:2001:DB8::1]");
  REQUIRE(v6);
  CHECK(v6->family == AF_INET6);
  CHECK(to_string(*v6) == "2001:db8::1");
  for (const char* bad : {"", "192.0.2", "192.0.2.256", "example.com", "[192.0.2.1", "2001:db8:::1", "IPv6:1.2.3.4"})
    CHECK_FALSE(parse_ip(bad));
}

TEST_CASE("network: CIDR networks and what they contain", "[network]") {
  auto net = parse_network("192.0.2.0/24");
  REQUIRE(net);
  CHECK(net->contains(*parse_ip("192.0.2.255")));
  CHECK_FALSE(net->contains(*parse_ip("192.0.3.0")));
  CHECK_FALSE(net->contains(*parse_ip("::ffff:192.0.3.1")));
  CHECK(to_string(*net) == "192.0.2.0/24");
  auto v6 = parse_network("[2001:db8::]/32");
  REQUIRE(v6);
  CHECK(v6->contains(*parse_ip("2001:db8:ffff::1")));
  CHECK_FALSE(v6->contains(*parse_ip("2001:db9::1")));
  CHECK_FALSE(v6->contains(*parse_ip("192.0.2.1")));
  CHECK(to_string(*v6) == "[2001:db8::]/32");
  auto host = parse_network("198.51.100.7");
  REQUIRE(host);
  CHECK(host->prefix == 32);
  CHECK(parse_network("0.0.0.0/0")->contains(*parse_ip("203.0.113.1")));
  CHECK(parse_network("10.0.0.0/9")->contains(*parse_ip("10.127.255.255")));
  CHECK_FALSE(parse_network("10.0.0.0/9")->contains(*parse_ip("10.128.0.0")));

  std::string error;
  CHECK_FALSE(parse_network("192.0.2.1/24", &error));
  CHECK(error == "host bits set in network: 192.0.2.1/24 (did you mean 192.0.2.0/24?)");
  CHECK_FALSE(parse_network("192.0.2.0/33", &error));
  CHECK(error == "bad network prefix length: 192.0.2.0/33");
  CHECK_FALSE(parse_network("[::1]/129", &error));
  CHECK_FALSE(parse_network("example.com/24", &error));
  CHECK(error == "not an IP address: example.com");
}

TEST_CASE("network: this machine's networks by mynetworks_style", "[network]") {
  auto loopback = *parse_ip("127.0.0.1");
  auto host = local_networks(NetworkStyle::kHost);
  bool has_loopback = false;
  for (const IpNetwork& n : host) {
    CHECK(n.prefix == (n.address.family == AF_INET ? 32 : 128));
    has_loopback = has_loopback || n.contains(loopback);
  }
  CHECK(has_loopback);
  bool subnet_has_loopback_net = false;
  for (const IpNetwork& n : local_networks(NetworkStyle::kSubnet))
    subnet_has_loopback_net = subnet_has_loopback_net || (n.contains(*parse_ip("127.0.0.2")) && n.prefix == 8);
  CHECK(subnet_has_loopback_net);
  bool class_a = false;
  for (const IpNetwork& n : local_networks(NetworkStyle::kClass))
    class_a = class_a || (n.contains(loopback) && n.prefix == 8);
  CHECK(class_a);
}
