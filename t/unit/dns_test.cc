// Tests of lib/util/dns.h against a real DNS server on the wire (dns_server.h).
#include <catch2/catch.hpp>

#include <chrono>

#include "dns_server.h"
#include "temp_dir.h"
#include "util/dns.h"
#include "util/error.h"

using namespace postern;

namespace {

const char* kZone = R"({
  "example.com": {"A": ["192.0.2.1", "192.0.2.2"], "AAAA": ["2001:db8::1"],
                  "MX": [[20, "mx2.example.com"], [10, "MX1.Example.COM."], [20, "mx3.example.com"]],
                  "TXT": ["v=spf1 -all"]},
  "long-txt.example.com": {"TXT": ["%LONG%"]},
  "alias.example.com": {"CNAME": "example.com"},
  "alias2.example.com": {"CNAME": "alias.example.com"},
  "bare-alias.example.com": {"CNAME": "example.com", "alias_only": true},
  "loop1.example.com": {"CNAME": "loop2.example.com"},
  "loop2.example.com": {"CNAME": "loop1.example.com"},
  "nullmx.example.com": {"MX": [[0, "."]]},
  "a-only.example.com": {"A": ["192.0.2.9"]},
  "broken.example": {"rcode": "SERVFAIL"},
  "refused.example": {"rcode": "REFUSED"},
  "slow.example": {"drop": true},
  "1.2.0.192.in-addr.arpa": {"PTR": ["host.example.com"]},
  "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa": {"PTR": ["v6.example.com"]}
})";

std::string zone() {
  std::string text = kZone;
  text.replace(text.find("%LONG%"), 6, std::string(300, 'x'));
  return text;
}

}  // namespace

TEST_CASE("dns: A, AAAA, TXT and PTR answers come back as text", "[dns]") {
  test::DnsServer server(zone());
  Resolver resolver({server.conf()});
  auto a = resolver.lookup("example.com", DnsType::kA);
  REQUIRE(a.found());
  CHECK(a.records == std::vector<std::string>{"192.0.2.1", "192.0.2.2"});
  auto aaaa = resolver.lookup("EXAMPLE.com.", DnsType::kAaaa);
  REQUIRE(aaaa.found());
  CHECK(aaaa.records == std::vector<std::string>{"2001:db8::1"});
  auto txt = resolver.lookup("example.com", DnsType::kTxt);
  REQUIRE(txt.found());
  CHECK(txt.records == std::vector<std::string>{"v=spf1 -all"});
  // A TXT record longer than 255 octets arrives as several strings, joined.
  auto long_txt = resolver.lookup("long-txt.example.com", DnsType::kTxt);
  REQUIRE(long_txt.found());
  CHECK(long_txt.records == std::vector<std::string>{std::string(300, 'x')});
  auto ptr = resolver.lookup_ptr("192.0.2.1");
  REQUIRE(ptr.found());
  CHECK(ptr.records == std::vector<std::string>{"host.example.com"});
  auto ptr6 = resolver.lookup_ptr("2001:db8::1");
  REQUIRE(ptr6.found());
  CHECK(ptr6.records == std::vector<std::string>{"v6.example.com"});
}

TEST_CASE("dns: MX hosts are sorted by preference, lower case, no trailing dot", "[dns]") {
  test::DnsServer server(zone());
  Resolver resolver({server.conf()});
  auto mx = resolver.lookup_mx("example.com");
  REQUIRE(mx.found());
  CHECK(mx.records ==
        std::vector<MxHost>{{10, "mx1.example.com"}, {20, "mx2.example.com"}, {20, "mx3.example.com"}});
  auto null_mx = resolver.lookup_mx("nullmx.example.com");
  REQUIRE(null_mx.found());
  CHECK(null_mx.records == std::vector<MxHost>{{0, ""}});
}

TEST_CASE("dns: CNAMEs are followed, in the answer and by asking again", "[dns]") {
  test::DnsServer server(zone());
  Resolver resolver({server.conf()});
  auto mx = resolver.lookup_mx("alias2.example.com");
  REQUIRE(mx.found());
  CHECK(mx.records.front() == MxHost{10, "mx1.example.com"});
  auto a = resolver.lookup("bare-alias.example.com", DnsType::kA);
  REQUIRE(a.found());
  CHECK(a.records.size() == 2);
  auto loop = resolver.lookup("loop1.example.com", DnsType::kA);
  CHECK_FALSE(loop.found());
}

TEST_CASE("dns: NXDOMAIN and NODATA are not found; SERVFAIL, REFUSED and silence fail temporarily", "[dns]") {
  test::DnsServer server(zone());
  Resolver resolver({server.conf()});
  auto nx = resolver.lookup("nowhere.example", DnsType::kA);
  CHECK(nx.status == DnsStatus::kNotFound);
  CHECK(nx.records.empty());
  auto nodata = resolver.lookup_mx("a-only.example.com");
  CHECK(nodata.status == DnsStatus::kNotFound);
  CHECK(resolver.lookup("broken.example", DnsType::kA).status == DnsStatus::kTempFail);
  CHECK(resolver.lookup("refused.example", DnsType::kMx).status == DnsStatus::kTempFail);
  auto start = std::chrono::steady_clock::now();
  auto slow = resolver.lookup("slow.example", DnsType::kA);
  CHECK(slow.status == DnsStatus::kTempFail);
  // timeout:1 attempts:1 in the conf file bound the wait.
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(4));
  CHECK(resolver.lookup_ptr("not an address").status == DnsStatus::kNotFound);
  CHECK(resolver.lookup("", DnsType::kA).status == DnsStatus::kNotFound);
}

TEST_CASE("dns: a server that is not there is a temporary failure", "[dns]") {
  test::TempDir dir;
  // A port nobody listens on: ICMP port unreachable or a timeout, never "not found".
  std::string conf = dir.write("resolv.conf", "nameserver 127.0.0.1\nport 9\noptions timeout:1 attempts:1\n");
  Resolver resolver({conf});
  CHECK(resolver.lookup("example.com", DnsType::kA).status == DnsStatus::kTempFail);
}

TEST_CASE("dns: a bad resolver file is refused with file and line", "[dns]") {
  test::TempDir dir;
  auto refused = [&](const std::string& text, const std::string& what) {
    std::string conf = dir.write("resolv.conf", text);
    try {
      Resolver resolver({conf});
      FAIL("accepted: " << text);
    } catch (const ConfigError& e) {
      CHECK_THAT(e.what(), Catch::Contains(what));
    }
  };
  refused("nameserver 127.0.0.1\nnameserver example.com\n", "resolv.conf:2: nameserver must be an IPv4 address");
  refused("port 70000\n", "resolv.conf:1: bad port");
  refused("options timeout:0\n", "resolv.conf:1: unknown or bad option");
  refused("# comment\nbogus line\n", "resolv.conf:2: expected nameserver");
  CHECK_THROWS_AS(Resolver({dir.path + "/missing"}), ConfigError);
}

TEST_CASE("dns: reverse labels of IPv4 and IPv6 addresses", "[dns]") {
  CHECK(reverse_address_labels("192.0.2.10") == "10.2.0.192");
  CHECK(reverse_address_labels("2001:db8::1") ==
        "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2");
  CHECK(reverse_address_labels("192.0.2") == "");
  CHECK(reverse_address_labels("example.com") == "");
}
