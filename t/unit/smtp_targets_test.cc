// Tests of the smtp client's connection targets (lib/mail/smtp_targets.h) against
// a real DNS server: MX order, implicit MX, [host] without MX lookup, null MX,
// NXDOMAIN, temporary failures, ourselves among the MX hosts, address limits.
#include <catch2/catch.hpp>

#include <set>
#include <string>

#include "dns_server.h"
#include "mail/smtp_targets.h"

using namespace postern;

namespace {

const char* kZone = R"({
  "example.net": {"MX": [[20, "mx2.example.net"], [10, "mx1.example.net"]]},
  "mx1.example.net": {"A": ["192.0.2.1", "192.0.2.2"], "AAAA": ["2001:db8::1"]},
  "mx2.example.net": {"A": ["192.0.2.3"]},
  "nomx.example": {"A": ["192.0.2.9"]},
  "nullmx.example": {"MX": [[0, "."]]},
  "broken.example": {"rcode": "SERVFAIL"},
  "brokenhost.example": {"MX": [[10, "servfail.example"]]},
  "servfail.example": {"rcode": "SERVFAIL"},
  "equal.example": {"MX": [[10, "a.equal.example"], [10, "b.equal.example"]]},
  "a.equal.example": {"A": ["192.0.2.11"]},
  "b.equal.example": {"A": ["192.0.2.12"]},
  "backup.example": {"MX": [[10, "primary.backup.example"], [20, "us.backup.example"], [30, "worse.backup.example"]]},
  "primary.backup.example": {"A": ["192.0.2.21"]},
  "us.backup.example": {"A": ["198.51.100.1"]},
  "worse.backup.example": {"A": ["192.0.2.23"]},
  "self.example": {"MX": [[10, "mail.example.com"]]},
  "mail.example.com": {"A": ["192.0.2.99"]}
})";

TargetOptions options() {
  TargetOptions o;
  o.myhostname = "mail.example.com";
  o.own_addresses = {*parse_ip("198.51.100.1")};
  return o;
}

std::vector<std::string> addresses(const TargetList& list) {
  std::vector<std::string> out;
  for (const auto& t : list.targets) out.push_back(t.host + "/" + t.address + ":" + std::to_string(t.port));
  return out;
}

NextHop hop(const std::string& host, bool mx = true, uint16_t port = 25) { return NextHop{host, port, mx}; }

}  // namespace

TEST_CASE("smtp_targets: MX hosts in preference order, every address of each", "[smtp_targets]") {
  test::DnsServer server(kZone);
  Resolver resolver({server.conf()});
  TargetList list = find_targets(resolver, hop("example.net", true, 2525), options());
  REQUIRE(list.outcome == TargetList::Outcome::kTargets);
  CHECK(addresses(list) == std::vector<std::string>{"mx1.example.net/192.0.2.1:2525", "mx1.example.net/192.0.2.2:2525",
                                                    "mx1.example.net/2001:db8::1:2525",
                                                    "mx2.example.net/192.0.2.3:2525"});
  TargetOptions v4 = options();
  v4.ipv6 = false;
  v4.address_limit = 2;
  CHECK(addresses(find_targets(resolver, hop("example.net"), v4)) ==
        std::vector<std::string>{"mx1.example.net/192.0.2.1:25", "mx1.example.net/192.0.2.2:25"});
}

TEST_CASE("smtp_targets: implicit MX and [host] without MX lookup", "[smtp_targets]") {
  test::DnsServer server(kZone);
  Resolver resolver({server.conf()});
  CHECK(addresses(find_targets(resolver, hop("nomx.example"), options())) ==
        std::vector<std::string>{"nomx.example/192.0.2.9:25"});
  // [example.net] is the host example.net (which has no address), not its MX hosts.
  TargetList bracketed = find_targets(resolver, hop("example.net", false), options());
  CHECK(bracketed.outcome == TargetList::Outcome::kBounce);
  CHECK(addresses(find_targets(resolver, hop("mx2.example.net", false), options())) ==
        std::vector<std::string>{"mx2.example.net/192.0.2.3:25"});
  CHECK(addresses(find_targets(resolver, hop("192.0.2.50", false), options())) ==
        std::vector<std::string>{"192.0.2.50/192.0.2.50:25"});
}

TEST_CASE("smtp_targets: null MX and NXDOMAIN bounce, DNS failures defer", "[smtp_targets]") {
  test::DnsServer server(kZone);
  Resolver resolver({server.conf()});
  TargetList null_mx = find_targets(resolver, hop("nullmx.example"), options());
  CHECK(null_mx.outcome == TargetList::Outcome::kBounce);
  CHECK(null_mx.dsn == "5.1.10");
  TargetList nx = find_targets(resolver, hop("nosuch.example"), options());
  CHECK(nx.outcome == TargetList::Outcome::kBounce);
  CHECK(nx.dsn == "5.4.4");
  CHECK(nx.text.find("nosuch.example") != std::string::npos);
  TargetList servfail = find_targets(resolver, hop("broken.example"), options());
  CHECK(servfail.outcome == TargetList::Outcome::kDefer);
  CHECK(servfail.dsn == "4.4.3");
  CHECK(find_targets(resolver, hop("brokenhost.example"), options()).outcome == TargetList::Outcome::kDefer);
}

TEST_CASE("smtp_targets: ourselves among the MX hosts", "[smtp_targets]") {
  test::DnsServer server(kZone);
  Resolver resolver({server.conf()});
  // A backup MX passes mail only to better hosts.
  CHECK(addresses(find_targets(resolver, hop("backup.example"), options())) ==
        std::vector<std::string>{"primary.backup.example/192.0.2.21:25"});
  // The best MX is us (by name): the mail loops.
  TargetList loop = find_targets(resolver, hop("self.example"), options());
  CHECK(loop.outcome == TargetList::Outcome::kBounce);
  CHECK(loop.text == "mail for self.example loops back to myself");
}

TEST_CASE("smtp_targets: equal preferences come in either order", "[smtp_targets]") {
  test::DnsServer server(kZone);
  Resolver resolver({server.conf()});
  std::set<std::string> firsts;
  for (int i = 0; i < 40 && firsts.size() < 2; ++i) {
    TargetList list = find_targets(resolver, hop("equal.example"), options());
    REQUIRE(list.targets.size() == 2);
    firsts.insert(list.targets[0].host);
  }
  CHECK(firsts.size() == 2);
}
