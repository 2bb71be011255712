// Unit tests for the address-class check: a domain in two classes is reported
// with the main.cf line, in names and in tables; separate classes pass.
#include <catch2/catch.hpp>

#include "temp_dir.h"

#include "mail/address_class.h"
#include "mail/config.h"
#include "util/error.h"

using namespace postern;
using postern::test::TempDir;

TEST_CASE("address classes: separate domains pass", "[virtual_class]") {
  TempDir d;
  std::string vmail = d.write("vdomains", "a.example OK\nb.example OK\n");
  Config config = Config::parse(d.path, "myhostname = mail.example.com\nmydestination = localhost, $myhostname\n"
                                        "virtual_mailbox_domains = texthash:" + vmail + "\n"
                                        "virtual_alias_domains = c.example\nrelay_domains = d.example\n");
  CHECK(domain_class_conflicts(config).empty());
}

TEST_CASE("address classes: a domain in two classes is an error naming main.cf:line", "[virtual_class]") {
  TempDir d;
  std::string vmail = d.write("vdomains", "a.example OK\nmail.example.com OK\n");
  Config config = Config::parse(d.path, "myhostname = mail.example.com\nmydestination = localhost, $myhostname\n"
                                        "virtual_mailbox_domains = texthash:" + vmail + "\n"
                                        "virtual_alias_domains = c.example A.example\n");
  std::vector<std::string> problems = domain_class_conflicts(config);
  REQUIRE(problems.size() == 2);
  CHECK(problems[0] == d.path + "/main.cf:2: domain mail.example.com is in both mydestination and "
                                "virtual_mailbox_domains (a domain belongs to one address class only)");
  CHECK(problems[1] == d.path + "/main.cf:4: domain a.example is in both virtual_alias_domains and "
                                "virtual_mailbox_domains (a domain belongs to one address class only)");
}

TEST_CASE("address classes: address tables are not domain lists; lookups that fail are reported",
          "[virtual_class]") {
  TempDir d;
  std::string mailboxes = d.write("vmailbox", "ann@a.example a/ann/\n");
  std::string cf = d.write("d.cf", "hosts = unix:" + d.path + "/no.sock\nuser = u\npassword = p\ndbname = d\n"
                                   "query = SELECT domain FROM domains WHERE domain='%s'\n", 0600);
  Config quiet = Config::parse(d.path, "virtual_mailbox_maps = texthash:" + mailboxes + "\nrelay_domains = a.example\n");
  CHECK(domain_class_conflicts(quiet).empty());
  Config down = Config::parse(d.path, "mydestination =\nvirtual_mailbox_domains = mysql:" + cf + "\nrelay_domains = r.example\n");
  std::vector<std::string> problems = domain_class_conflicts(down);
  REQUIRE(problems.size() == 1);
  CHECK(problems[0].find(d.path + "/main.cf:2: cannot tell whether r.example is in virtual_mailbox_domains") == 0);
  Config bad = Config::parse(d.path, "relay_domains = hash:" + d.path + "/missing\n");
  CHECK_THROWS_AS(domain_class_conflicts(bad), ConfigError);
}
