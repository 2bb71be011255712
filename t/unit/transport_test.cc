// Tests of recipient routing (lib/mail/transport.h): the address classes,
// relayhost, transport_maps with Postfix's search order and its empty-field rules,
// nexthop syntax, and a table that fails temporarily.
#include <catch2/catch.hpp>

#include <string>

#include "mail/config.h"
#include "mail/transport.h"
#include "temp_dir.h"

using namespace postern;
using postern::test::TempDir;

namespace {

const char* kBase =
    "myhostname = mail.example.com\n"
    "mydestination = example.com, $myhostname\n"
    "inet_interfaces = 127.0.0.1\n"
    "local_recipient_maps =\n"
    "relay_domains = backup.example\n"
    "virtual_mailbox_domains = hosted.example\n"
    "virtual_alias_domains = aliased.example\n";

Route route_of(const TempDir& dir, const std::string& extra, const std::string& address) {
  Config config = Config::parse(dir.path, std::string(kBase) + extra);
  Router router(config);
  auto r = router.route(address);
  REQUIRE(r.ok());
  return *r;
}

}  // namespace

TEST_CASE("transport: each address class goes to its transport", "[transport]") {
  TempDir dir;
  CHECK(route_of(dir, "", "joe@example.com") == Route{"local", "mail.example.com"});
  CHECK(route_of(dir, "", "joe") == Route{"local", "mail.example.com"});
  CHECK(route_of(dir, "", "joe@[127.0.0.1]") == Route{"local", "mail.example.com"});
  CHECK(route_of(dir, "", "joe@hosted.example") == Route{"virtual", "hosted.example"});
  CHECK(route_of(dir, "", "joe@backup.example") == Route{"relay", "backup.example"});
  CHECK(route_of(dir, "", "joe@Elsewhere.ORG") == Route{"smtp", "elsewhere.org"});
  CHECK(route_of(dir, "", "joe@aliased.example").transport == "error");
}

TEST_CASE("transport: relayhost takes relayed and other mail, not local", "[transport]") {
  TempDir dir;
  std::string relayhost = "relayhost = [10.0.0.1]:2525\n";
  CHECK(route_of(dir, relayhost, "joe@elsewhere.org") == Route{"smtp", "[10.0.0.1]:2525"});
  CHECK(route_of(dir, relayhost, "joe@backup.example") == Route{"relay", "[10.0.0.1]:2525"});
  CHECK(route_of(dir, relayhost, "joe@example.com") == Route{"local", "mail.example.com"});
  // A transport with its own nexthop wins over relayhost.
  CHECK(route_of(dir, relayhost + "default_transport = smtp:[gw.example]\n", "joe@elsewhere.org") ==
        Route{"smtp", "[gw.example]"});
}

TEST_CASE("transport: transport_maps in Postfix's search order", "[transport]") {
  TempDir dir;
  std::string maps = "recipient_delimiter = +\ntransport_maps = inline:{"
                     "{joe@one.example = smtp:[10.0.0.1]}, "
                     "{one.example = relay:[10.0.0.2]}, "
                     "{.sub.example = smtp:[10.0.0.3]:2525}, "
                     "{keep.example = :}, "
                     "{nexthop-only.example = :[10.0.0.4]}, "
                     "{transport-only.example = relay:}, "
                     "{example.com = smtp:[10.0.0.5]}}\n";
  CHECK(route_of(dir, maps, "joe@one.example") == Route{"smtp", "[10.0.0.1]"});
  CHECK(route_of(dir, maps, "joe+ext@one.example") == Route{"smtp", "[10.0.0.1]"});
  CHECK(route_of(dir, maps, "ann@one.example") == Route{"relay", "[10.0.0.2]"});
  // .domain matches subdomains at any depth, but not the domain itself.
  CHECK(route_of(dir, maps, "ann@a.b.sub.example") == Route{"smtp", "[10.0.0.3]:2525"});
  CHECK(route_of(dir, maps, "ann@sub.example") == Route{"smtp", "sub.example"});
  // Empty fields: ":" changes nothing; an empty transport keeps the class's; an
  // empty nexthop after a transport is the recipient domain.
  CHECK(route_of(dir, maps, "ann@keep.example") == Route{"smtp", "keep.example"});
  CHECK(route_of(dir, maps, "ann@nexthop-only.example") == Route{"smtp", "[10.0.0.4]"});
  CHECK(route_of(dir, maps + "relayhost = [10.9.9.9]\n", "ann@transport-only.example") ==
        Route{"relay", "transport-only.example"});
  // transport_maps also applies to local domains.
  CHECK(route_of(dir, maps, "ann@example.com") == Route{"smtp", "[10.0.0.5]"});
  // "*" catches what nothing else matched.
  CHECK(route_of(dir, "transport_maps = inline:{{* = smtp:[10.0.0.9]}}\n", "x@else.org") ==
        Route{"smtp", "[10.0.0.9]"});
}

TEST_CASE("transport: the keys of transport_maps", "[transport]") {
  CHECK(transport_keys("Joe+Ext@A.B.Example", "+") ==
        std::vector<std::string>{"joe+ext@a.b.example", "joe@a.b.example", "a.b.example", ".b.example", ".example",
                                 "*"});
  CHECK(transport_keys("joe", "+") == std::vector<std::string>{"*"});
}

TEST_CASE("transport: a table that fails temporarily is a temporary failure, never a guess", "[transport]") {
  TempDir dir;
  std::string dead = dir.write("dead.cf", "hosts = unix:" + dir.path + "/no-server.sock\nuser = u\n"
                                          "password = p\ndbname = d\nquery = SELECT v FROM t WHERE k = '%s'\n",
                               0600);
  for (const std::string& extra : {"transport_maps = mysql:" + dead + "\n", "relay_domains = mysql:" + dead + "\n"}) {
    Config config = Config::parse(dir.path, std::string(kBase) + extra);
    Router router(config);
    auto r = router.route("joe@elsewhere.org");
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().find("failed") != std::string::npos);
  }
}

TEST_CASE("transport: a table that does not exist is a configuration error", "[transport]") {
  TempDir dir;
  Config config = Config::parse(dir.path, std::string(kBase) + "transport_maps = nosuchtype:/x\n");
  CHECK_THROWS(Router(config));
}

TEST_CASE("transport: nexthop syntax", "[transport]") {
  auto hop = parse_nexthop("[10.0.0.1]:2525", 25);
  REQUIRE(hop.ok());
  CHECK(hop->host == "10.0.0.1");
  CHECK(hop->port == 2525);
  CHECK_FALSE(hop->mx_lookup);
  hop = parse_nexthop("[IPv6:2001:db8::1]", 25);
  REQUIRE(hop.ok());
  CHECK(hop->host == "2001:db8::1");
  CHECK(hop->port == 25);
  hop = parse_nexthop("Example.COM", 2525);
  REQUIRE(hop.ok());
  CHECK(hop->host == "example.com");
  CHECK(hop->port == 2525);
  CHECK(hop->mx_lookup);
  hop = parse_nexthop("example.com:smtp", 2525);
  REQUIRE(hop.ok());
  CHECK(hop->port == 25);
  CHECK(parse_route("smtp:[::1]:25") == Route{"smtp", "[::1]:25"});
  CHECK(parse_route("relay") == Route{"relay", ""});
  CHECK_FALSE(parse_nexthop("[10.0.0.1", 25).ok());
  CHECK_FALSE(parse_nexthop("[10.0.0.1]x", 25).ok());
  CHECK_FALSE(parse_nexthop("example.com:nosuchservice", 25).ok());
  CHECK_FALSE(parse_nexthop("example.com:70000", 25).ok());
  CHECK_FALSE(parse_nexthop("", 25).ok());
}
