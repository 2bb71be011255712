// Tests of smtpd's restriction engine (lib/mail/smtpd_policy.h) and the recipient
// check under it, with real tables (inline:, texthash:, hash: built by the library,
// mysql: at a dead socket for temporary failures) and a real DNS server on the wire
// for the DNS-based restrictions.
#include <catch2/catch.hpp>

#include <pwd.h>

#include <string>

#include "dns_server.h"
#include "mail/address.h"
#include "mail/config.h"
#include "mail/recipient_check.h"
#include "mail/smtpd_policy.h"
#include "mail/table_build.h"
#include "temp_dir.h"
#include "util/error.h"

using namespace postern;
using postern::test::TempDir;

namespace {

// A server for example.com (local), with aliases in a texthash: table, trusting
// 192.0.2.0/24 and 2001:db8::/32; `extra` main.cf lines come last and win.
struct Site {
  TempDir dir;
  std::string main_cf;

  explicit Site(const std::string& extra = "") {
    dir.write("aliases", "postmaster root\nsales root\n");  // postmap format, as texthash: reads
    main_cf = "myhostname = mx.example.com\n"
              "mydestination = example.com, localhost\n"
              "inet_interfaces = 127.0.0.1\n"
              "mynetworks = 192.0.2.0/24 [2001:db8::]/32\n"
              "alias_maps = texthash:" + dir.path + "/aliases\n" + extra;
  }
  Config config() const { return Config::parse(dir.path, main_cf); }
  SmtpdPolicy policy() const { return SmtpdPolicy(config()); }
};

// An outside client without authentication, in the middle of RCPT TO.
SmtpdSession outsider(const std::string& recipient, const std::string& sender = "someone@example.net") {
  SmtpdSession s;
  s.client_address = "198.51.100.7";
  s.client_name = "unknown";
  s.helo_name = "client.example.net";
  s.sender = sender;
  s.recipient = recipient;
  s.protocol = "ESMTP";
  return s;
}

// "ACCEPT" or the reply as smtpd would send it.
std::string answer(const PolicyVerdict& v) {
  if (v.is_accept()) return "ACCEPT";
  CHECK((v.kind == PolicyVerdict::Kind::kDefer) == (v.code / 100 == 4));
  return std::to_string(v.code) + " " + v.dsn + " " + v.text;
}

std::string rcpt(const SmtpdPolicy& policy, const SmtpdSession& session) {
  return answer(policy.check(SmtpdStage::kRcpt, session));
}

std::string config_error(const Site& site) {
  try {
    SmtpdPolicy policy(site.config());
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "(no error)";
}

// The internal form smtpd would hand over for a RCPT TO path. Some tricks the
// parser already refuses; the policy must refuse them too, should they get through.
std::string internal(const std::string& path) {
  auto parsed = parse_path(path);
  if (!parsed.ok()) return path.substr(1, path.size() - 2);
  const Address& a = parsed->address;
  return a.domain.empty() ? a.local : a.local + "@" + a.domain;
}

// A user every Debian system has, found through getpwnam.
const char* kSystemUser = "root";

}  // namespace

TEST_CASE("smtpd_policy: the defaults relay for mynetworks and authenticated clients only", "[smtpd_policy]") {
  Site site;
  SmtpdPolicy policy = site.policy();
  SmtpdSession s = outsider("friend@elsewhere.example");
  CHECK(rcpt(policy, s) == "454 4.7.1 <friend@elsewhere.example>: Relay access denied");
  s.client_address = "192.0.2.44";
  CHECK(rcpt(policy, s) == "ACCEPT");
  s.client_address = "2001:db8::25";
  CHECK(rcpt(policy, s) == "ACCEPT");
  s = outsider("friend@elsewhere.example");
  s.sasl_username = "alice";
  CHECK(rcpt(policy, s) == "ACCEPT");
  // Our own users are reachable from anywhere.
  CHECK(rcpt(policy, outsider(std::string(kSystemUser) + "@example.com")) == "ACCEPT");
  CHECK(rcpt(policy, outsider("sales@Example.COM")) == "ACCEPT");
  // Until RCPT TO, with smtpd_delay_reject = yes, nothing is refused.
  CHECK(answer(policy.check(SmtpdStage::kConnect, s)) == "ACCEPT");
  CHECK(answer(policy.check(SmtpdStage::kHelo, s)) == "ACCEPT");
  CHECK(answer(policy.check(SmtpdStage::kMail, s)) == "ACCEPT");
  CHECK(answer(policy.check(SmtpdStage::kData, s)) == "ACCEPT");
  CHECK(answer(policy.check(SmtpdStage::kEndOfData, s)) == "ACCEPT");
}

TEST_CASE("smtpd_policy: the log line names the client, the envelope and the restriction", "[smtpd_policy]") {
  Site site;
  SmtpdSession s = outsider("friend@elsewhere.example");
  s.client_name = "host.example.net";
  PolicyVerdict v = site.policy().check(SmtpdStage::kRcpt, s);
  CHECK(v.kind == PolicyVerdict::Kind::kDefer);
  CHECK(v.log ==
        "reject: RCPT from host.example.net[198.51.100.7]: 454 4.7.1 <friend@elsewhere.example>: Relay access "
        "denied; from=<someone@example.net> to=<friend@elsewhere.example> proto=ESMTP helo=<client.example.net> "
        "restriction=smtpd_relay_restrictions:defer_unauth_destination");
}

TEST_CASE("smtpd_policy: unknown local recipients are refused even when permitted", "[smtpd_policy]") {
  Site site;
  SmtpdPolicy policy = site.policy();
  CHECK(rcpt(policy, outsider("nobody-here@example.com")) ==
        "550 5.1.1 <nobody-here@example.com>: Recipient address rejected: User unknown in local recipient table");
  SmtpdSession s = outsider("nobody-here@localhost");
  s.client_address = "192.0.2.1";  // permit_mynetworks does not skip the check
  CHECK(rcpt(policy, s) ==
        "550 5.1.1 <nobody-here@localhost>: Recipient address rejected: User unknown in local recipient table");
  PolicyVerdict v = policy.check(SmtpdStage::kRcpt, s);
  CHECK_THAT(v.log, Catch::EndsWith(" restriction=smtpd_reject_unlisted_recipient"));

  // Turned off, or with local_recipient_maps empty, anything goes for a local domain.
  CHECK(rcpt(Site("smtpd_reject_unlisted_recipient = no\n").policy(), s) == "ACCEPT");
  CHECK(rcpt(Site("local_recipient_maps =\n").policy(), s) == "ACCEPT");
  // The explicit restriction and its other spelling apply from a list too.
  Site explicit_check("smtpd_reject_unlisted_recipient = no\n"
                      "smtpd_recipient_restrictions = reject_unknown_recipient\n");
  CHECK(rcpt(explicit_check.policy(), s) ==
        "550 5.1.1 <nobody-here@localhost>: Recipient address rejected: User unknown in local recipient table");
  CHECK(rcpt(Site("unknown_local_recipient_reject_code = 450\n").policy(), s) ==
        "450 4.1.1 <nobody-here@localhost>: Recipient address rejected: User unknown in local recipient table");
}

TEST_CASE("smtpd_policy: address extensions find the user", "[smtpd_policy]") {
  Site site("recipient_delimiter = +\n");
  CHECK(rcpt(site.policy(), outsider("sales+spring@example.com")) == "ACCEPT");
  CHECK(rcpt(site.policy(), outsider(std::string(kSystemUser) + "+x@example.com")) == "ACCEPT");
}

TEST_CASE("smtpd_policy: virtual alias, virtual mailbox and relay domains", "[smtpd_policy]") {
  Site site;
  site.dir.write("valias", "info@alias.example user@elsewhere.example\n@catchall.example someone@example.com\n");
  site.dir.write("vmailbox", "bob@box.example box.example/bob/\n");
  site.dir.write("relayed", "carol@relay.example x\n");
  build_table("hash:" + site.dir.path + "/vmailbox", {});
  site.main_cf += "virtual_alias_maps = texthash:" + site.dir.path + "/valias\n"
                  "virtual_alias_domains = alias.example catchall.example\n"
                  "virtual_mailbox_domains = box.example\n"
                  "virtual_mailbox_maps = hash:" + site.dir.path + "/vmailbox\n"
                  "relay_domains = relay.example open-relay.example\n"
                  "relay_recipient_maps = texthash:" + site.dir.path + "/relayed\n";
  SmtpdPolicy policy = site.policy();
  CHECK(rcpt(policy, outsider("info@alias.example")) == "ACCEPT");
  CHECK(rcpt(policy, outsider("who@alias.example")) ==
        "550 5.1.1 <who@alias.example>: Recipient address rejected: User unknown in virtual alias table");
  CHECK(rcpt(policy, outsider("anyone@catchall.example")) == "ACCEPT");
  CHECK(rcpt(policy, outsider("bob@box.example")) == "ACCEPT");
  CHECK(rcpt(policy, outsider("eve@box.example")) ==
        "550 5.1.1 <eve@box.example>: Recipient address rejected: User unknown in virtual mailbox table");
  CHECK(rcpt(policy, outsider("carol@relay.example")) == "ACCEPT");
  CHECK(rcpt(policy, outsider("dave@relay.example")) ==
        "550 5.1.1 <dave@relay.example>: Recipient address rejected: User unknown in relay recipient table");
  // relay_domains matches subdomains (parent_domain_matches_subdomains names it).
  CHECK(rcpt(policy, outsider("carol@sub.relay.example")) ==
        "550 5.1.1 <carol@sub.relay.example>: Recipient address rejected: User unknown in relay recipient table");
  // mydestination does not.
  CHECK(rcpt(policy, outsider("root@sub.example.com")) == "454 4.7.1 <root@sub.example.com>: Relay access denied");

  RecipientCheck check(site.config());
  CHECK(check.classify("EXAMPLE.com.").domain_class == DomainClass::kLocal);
  CHECK(check.classify("alias.example").domain_class == DomainClass::kVirtualAlias);
  CHECK(check.classify("box.example").domain_class == DomainClass::kVirtualMailbox);
  CHECK(check.classify("relay.example").domain_class == DomainClass::kRelay);
  CHECK(check.classify("elsewhere.example").domain_class == DomainClass::kOther);
  CHECK(check.classify("[127.0.0.1]").domain_class == DomainClass::kLocal);
  CHECK(check.classify("[192.0.2.99]").domain_class == DomainClass::kOther);
}

TEST_CASE("smtpd_policy: relay tricks are refused for an outside client", "[smtpd_policy]") {
  Site site;
  SmtpdPolicy policy = site.policy();
  const char* tricks[] = {
      "<user%elsewhere.example@example.com>",    // percent hack
      "<elsewhere.example!user@example.com>",    // bang path
      "<@example.com:user@elsewhere.example>",   // source route: the parser drops the route
      "<\"user@elsewhere.example\"@example.com>",  // quoted local part with @
      "<user@elsewhere.example.>",               // trailing dot
      "<user@[192.0.2.200]>",                    // an address literal that is not ours
      "<user@[IPv6:2001:db8::99]>",
      "<USER@ELSEWHERE.EXAMPLE>",                // case games
      "<user@example.com.elsewhere.example>",    // our name as a prefix of another
      "<user@xexample.com>",                     // our name as a suffix of another
      "<user%example.com@example.com>",          // routing through ourselves is still routing
  };
  for (const char* path : tricks) {
    INFO(path);
    std::string address = internal(path);
    CHECK_THAT(rcpt(policy, outsider(address)), Catch::StartsWith("454 4.7.1 <" + address + ">: Relay access denied"));
  }
  // What is ours stays ours: case and a trailing dot do not matter, nor does our own literal.
  CHECK(rcpt(policy, outsider(internal("<ROOT@ExAmPlE.CoM>"))) == "ACCEPT");
  CHECK(rcpt(policy, outsider(internal("<root@example.com.>"))) == "ACCEPT");
  CHECK(rcpt(policy, outsider(internal("<root@[127.0.0.1]>"))) == "ACCEPT");
  // reject_unauth_destination gives relay_domains_reject_code.
  Site strict("smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination\n");
  CHECK(rcpt(strict.policy(), outsider(internal("<user%elsewhere.example@example.com>"))) ==
        "554 5.7.1 <user%elsewhere.example@example.com>: Relay access denied");
}

TEST_CASE("smtpd_policy: lists stop at the first permit or reject, the next list still applies", "[smtpd_policy]") {
  SmtpdSession local_client = outsider("root@example.com");
  local_client.client_address = "192.0.2.5";
  Site permit_first("smtpd_recipient_restrictions = permit, reject\n");
  CHECK(rcpt(permit_first.policy(), outsider("root@example.com")) == "ACCEPT");
  // A permit in smtpd_relay_restrictions does not skip smtpd_recipient_restrictions.
  Site both("smtpd_recipient_restrictions = reject\n");
  CHECK(rcpt(both.policy(), local_client) ==
        "554 5.7.1 <root@example.com>: Recipient address rejected: Access denied");
  Site deferring("smtpd_recipient_restrictions = defer\n");
  CHECK(rcpt(deferring.policy(), local_client) ==
        "450 4.3.2 <root@example.com>: Recipient address rejected: Try again later");
  // A reject before the permit wins.
  Site reject_first("smtpd_recipient_restrictions = reject_non_fqdn_recipient, permit\n");
  CHECK(rcpt(reject_first.policy(), outsider("root")) ==
        "504 5.5.2 <root>: Recipient address rejected: need fully-qualified address");
}

TEST_CASE("smtpd_policy: smtpd_delay_reject decides when client, helo and sender lists apply", "[smtpd_policy]") {
  std::string lists = "smtpd_client_restrictions = reject\n";
  SmtpdSession s = outsider("root@example.com");
  SmtpdPolicy delayed = Site(lists).policy();
  CHECK(answer(delayed.check(SmtpdStage::kConnect, s)) == "ACCEPT");
  CHECK(rcpt(delayed, s) == "554 5.7.1 <unknown[198.51.100.7]>: Client host rejected: Access denied");
  SmtpdPolicy early = Site(lists + "smtpd_delay_reject = no\n").policy();
  PolicyVerdict v = early.check(SmtpdStage::kConnect, s);
  CHECK(answer(v) == "554 5.7.1 <unknown[198.51.100.7]>: Client host rejected: Access denied");
  CHECK_THAT(v.log, Catch::StartsWith("reject: CONNECT from unknown[198.51.100.7]: "));

  SmtpdPolicy helo = Site("smtpd_delay_reject = no\nsmtpd_helo_restrictions = reject_invalid_helo_hostname\n").policy();
  s.helo_name = "bad_name!";
  CHECK(answer(helo.check(SmtpdStage::kConnect, s)) == "ACCEPT");
  CHECK(answer(helo.check(SmtpdStage::kHelo, s)) == "501 5.5.2 <bad_name!>: Helo command rejected: Invalid name");
  SmtpdPolicy sender = Site("smtpd_delay_reject = no\nsmtpd_sender_restrictions = reject_non_fqdn_sender\n").policy();
  s.sender = "someone";
  CHECK(answer(sender.check(SmtpdStage::kHelo, s)) == "ACCEPT");
  CHECK(answer(sender.check(SmtpdStage::kMail, s)) ==
        "504 5.5.2 <someone>: Sender address rejected: need fully-qualified address");
  s.sender = "";  // the null sender is fully qualified enough
  CHECK(answer(sender.check(SmtpdStage::kMail, s)) == "ACCEPT");
}

TEST_CASE("smtpd_policy: helo and non-FQDN checks", "[smtpd_policy]") {
  SmtpdPolicy policy = Site("smtpd_helo_restrictions = reject_invalid_helo_hostname, reject_non_fqdn_helo_hostname\n"
                            "smtpd_sender_restrictions = reject_non_fqdn_sender\n").policy();
  SmtpdSession s = outsider("root@example.com");
  for (const char* good : {"client.example.net", "client.example.net.", "[192.0.2.1]", "[IPv6:2001:db8::1]",
                           "mail_1.example.net"}) {
    s.helo_name = good;
    CHECK(rcpt(policy, s) == "ACCEPT");
  }
  for (const char* bad : {"-bad.example", "a..b", "[300.1.1.1]", "bad host", "12345"}) {
    s.helo_name = bad;
    CHECK(rcpt(policy, s) == "501 5.5.2 <" + std::string(bad) + ">: Helo command rejected: Invalid name");
  }
  s.helo_name = "localhost";
  CHECK(rcpt(policy, s) == "504 5.5.2 <localhost>: Helo command rejected: need fully-qualified hostname");
  s.helo_name = "client.example.net";
  s.sender = "user@localhost";
  CHECK(rcpt(policy, s) == "504 5.5.2 <user@localhost>: Sender address rejected: need fully-qualified address");
  s.sender = "user@[192.0.2.1]";
  CHECK(rcpt(policy, s) == "ACCEPT");
}

TEST_CASE("smtpd_policy: reject_unknown_client_hostname and reject_unauth_pipelining", "[smtpd_policy]") {
  SmtpdPolicy policy = Site("smtpd_client_restrictions = reject_unknown_client_hostname\n"
                            "smtpd_data_restrictions = reject_unauth_pipelining\n").policy();
  SmtpdSession s = outsider("root@example.com");
  CHECK(rcpt(policy, s) == "450 4.7.25 Client host rejected: cannot find your hostname, [198.51.100.7]");
  s.client_name = "host.example.net";
  CHECK(rcpt(policy, s) == "ACCEPT");
  CHECK(answer(policy.check(SmtpdStage::kData, s)) == "ACCEPT");
  s.unauth_pipelining = true;
  PolicyVerdict v = policy.check(SmtpdStage::kData, s);
  CHECK(answer(v) == "503 5.5.0 <DATA>: Data command rejected: Improper use of SMTP command pipelining");
  CHECK_THAT(v.log, Catch::StartsWith("reject: DATA from host.example.net[198.51.100.7]: 503"));
}

TEST_CASE("smtpd_policy: access tables and their values", "[smtpd_policy]") {
  Site site;
  site.dir.write("senders",
                 "spammer@bad.example REJECT Go away\n"
                 "bad.example DEFER\n"
                 "evil.example 550 5.7.9 Not from you\n"
                 "slow.example 421 Come back later\n"
                 "good.bad.example OK\n"
                 "neutral.example DUNNO\n"
                 "postmaster@ REJECT Not a real postmaster\n"
                 "<> REJECT No bounces here\n"
                 "listed.example reject_unauth_destination\n"
                 "checked.example reject_unknown_sender_domain\n"
                 "weird.example FROBNICATE\n");
  build_table("hash:" + site.dir.path + "/senders", {});
  test::DnsServer dns("{}");
  site.main_cf += "dns_resolver_conf = " + dns.conf() + "\n"
                  "smtpd_sender_restrictions = check_sender_access hash:" + site.dir.path + "/senders\n"
                  "smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination\n";
  SmtpdPolicy policy = site.policy();
  auto from = [&](const std::string& sender, const std::string& to = "root@example.com") {
    return rcpt(policy, outsider(to, sender));
  };
  CHECK(from("spammer@bad.example") == "554 5.7.1 <spammer@bad.example>: Sender address rejected: Go away");
  CHECK(from("Spammer@Bad.Example") == "554 5.7.1 <Spammer@Bad.Example>: Sender address rejected: Go away");
  CHECK(from("other@bad.example") == "450 4.7.1 <other@bad.example>: Sender address rejected: Access denied");
  // Parent domains match subdomains (smtpd_access_maps is in parent_domain_matches_subdomains).
  CHECK(from("x@deep.sub.bad.example") == "450 4.7.1 <x@deep.sub.bad.example>: Sender address rejected: Access denied");
  CHECK(from("x@good.bad.example") == "ACCEPT");
  CHECK(from("x@evil.example") == "550 5.7.9 <x@evil.example>: Sender address rejected: Not from you");
  CHECK(from("x@slow.example") == "421 4.7.1 <x@slow.example>: Sender address rejected: Come back later");
  CHECK(from("x@neutral.example") == "ACCEPT");
  CHECK(from("postmaster@anywhere.example") ==
        "554 5.7.1 <postmaster@anywhere.example>: Sender address rejected: Not a real postmaster");
  CHECK(from("") == "554 5.7.1 <>: Sender address rejected: No bounces here");
  CHECK(from("x@listed.example", "x@elsewhere.example") == "554 5.7.1 <x@elsewhere.example>: Relay access denied");
  CHECK(from("x@listed.example") == "ACCEPT");
  // A restriction that needs DNS works as a value too.
  CHECK(from("x@nowhere.checked.example") ==
        "450 4.1.8 <x@nowhere.checked.example>: Sender address rejected: Domain not found");
  CHECK(from("x@weird.example") == "451 4.3.5 <x@weird.example>: Server configuration error");
  // OK in the sender list is a permit for that list only: relay control still applies.
  CHECK(from("x@good.bad.example", "x@elsewhere.example") == "554 5.7.1 <x@elsewhere.example>: Relay access denied");
}

TEST_CASE("smtpd_policy: client, helo and recipient access tables", "[smtpd_policy]") {
  Site site("smtpd_client_restrictions = check_client_access inline:{{198.51.100=REJECT Your network}, "
            "{blocked.example=REJECT By name}, {2001:db8:bad=REJECT v6 net}, 203.0.113.9=OK}, reject\n"
            "smtpd_helo_restrictions = check_helo_access inline:{{liar.example = 550 Not you}, "
            "{[192.0.2.66] = REJECT Not our address}}\n"
            "smtpd_recipient_restrictions = check_recipient_access inline:{{root@ = REJECT No mail for root}}, "
            "reject_unauth_destination\n");
  SmtpdPolicy policy = site.policy();
  SmtpdSession s = outsider("sales@example.com");
  CHECK(rcpt(policy, s) == "554 5.7.1 <unknown[198.51.100.7]>: Client host rejected: Your network");
  s.client_address = "203.0.113.9";
  CHECK(rcpt(policy, s) == "ACCEPT");
  s.client_address = "203.0.113.10";
  CHECK(rcpt(policy, s) == "554 5.7.1 <unknown[203.0.113.10]>: Client host rejected: Access denied");
  s.client_name = "mx.blocked.example";
  CHECK(rcpt(policy, s) == "554 5.7.1 <mx.blocked.example[203.0.113.10]>: Client host rejected: By name");
  s.client_name = "unknown";
  s.client_address = "2001:db8:bad::1";
  CHECK(rcpt(policy, s) == "554 5.7.1 <unknown[2001:db8:bad::1]>: Client host rejected: v6 net");
  s.client_address = "203.0.113.9";
  s.helo_name = "Liar.Example";
  CHECK(rcpt(policy, s) == "550 5.7.1 <Liar.Example>: Helo command rejected: Not you");
  s.helo_name = "[192.0.2.66]";
  CHECK(rcpt(policy, s) == "554 5.7.1 <[192.0.2.66]>: Helo command rejected: Not our address");
  s.helo_name = "client.example.net";
  s.recipient = "root@example.com";
  CHECK(rcpt(policy, s) == "554 5.7.1 <root@example.com>: Recipient address rejected: No mail for root");
}

TEST_CASE("smtpd_policy: a table that fails temporarily answers 451, never 5xx or accept", "[smtpd_policy]") {
  Site site;
  std::string dead = site.dir.write("dead.cf", "hosts = unix:" + site.dir.path + "/no-server.sock\nuser = u\n"
                                    "password = p\ndbname = d\nquery = SELECT v FROM t WHERE k = '%s'\n", 0600);
  SmtpdSession s = outsider("root@example.com");
  std::string base = site.main_cf;
  auto with = [&](const std::string& extra) {
    site.main_cf = base + extra;
    return rcpt(site.policy(), s);
  };
  CHECK(with("smtpd_sender_restrictions = check_sender_access mysql:" + dead + "\n") ==
        "451 4.3.0 <someone@example.net>: Temporary lookup failure");
  CHECK(with("smtpd_client_restrictions = check_client_access mysql:" + dead + "\n") ==
        "451 4.3.0 <unknown[198.51.100.7]>: Temporary lookup failure");
  CHECK(with("mydestination = mysql:" + dead + "\n") == "451 4.3.0 <root@example.com>: Temporary lookup failure");
  CHECK(with("virtual_alias_maps = mysql:" + dead + "\n") == "451 4.3.0 <root@example.com>: Temporary lookup failure");
  CHECK(with("mynetworks = mysql:" + dead + "\n") == "451 4.3.0 <unknown[198.51.100.7]>: Temporary lookup failure");
  PolicyVerdict v = site.policy().check(SmtpdStage::kRcpt, s);
  CHECK(v.kind == PolicyVerdict::Kind::kDefer);
  CHECK_THAT(v.log, Catch::Contains("restriction=smtpd_relay_restrictions:permit_mynetworks"));
}

TEST_CASE("smtpd_policy: a table that cannot be opened fails every lookup temporarily", "[smtpd_policy]") {
  Site site;
  std::string missing = site.dir.path + "/missing";
  SmtpdSession s = outsider("sales@example.com");
  site.main_cf += "smtpd_client_restrictions = check_client_access hash:" + missing + "\n";
  CHECK(rcpt(site.policy(), s) == "451 4.3.0 <unknown[198.51.100.7]>: Temporary lookup failure");
  // A missing alias database defers mail for local users instead of refusing it.
  Site no_aliases("alias_maps = hash:" + missing + "\n");
  CHECK(rcpt(no_aliases.policy(), s) == "451 4.3.0 <sales@example.com>: Temporary lookup failure");
  // Mail that does not need the table still flows.
  SmtpdSession relay = outsider("friend@elsewhere.example");
  relay.client_address = "192.0.2.1";
  CHECK(rcpt(no_aliases.policy(), relay) == "ACCEPT");
}

TEST_CASE("smtpd_policy: mynetworks patterns, files and mynetworks_style", "[smtpd_policy]") {
  Site site;
  std::string file = site.dir.write("networks", "# trusted\n203.0.113.0/24\n!198.51.100.7 198.51.100.0/24\n");
  site.main_cf += "mynetworks = " + file + ", trusted.example, [2001:db8::]/32\n";
  SmtpdPolicy policy = site.policy();
  SmtpdSession s = outsider("friend@elsewhere.example");
  CHECK_THAT(rcpt(policy, s), Catch::StartsWith("454 "));  // excluded by !198.51.100.7
  s.client_address = "198.51.100.8";
  CHECK(rcpt(policy, s) == "ACCEPT");
  s.client_address = "203.0.113.200";
  CHECK(rcpt(policy, s) == "ACCEPT");
  s.client_address = "192.0.2.1";
  CHECK_THAT(rcpt(policy, s), Catch::StartsWith("454 "));
  s.client_name = "mail.trusted.example";
  CHECK(rcpt(policy, s) == "ACCEPT");
  s.client_name = "unknown";
  s.client_address = "::ffff:203.0.113.5";  // an IPv4-mapped client is its IPv4 address
  CHECK(rcpt(policy, s) == "ACCEPT");

  // Unset, mynetworks is this machine's own addresses (mynetworks_style = host).
  Site by_style;
  by_style.main_cf.replace(by_style.main_cf.find("mynetworks = "), std::string("mynetworks = 192.0.2.0/24 [2001:db8::]/32\n").size(), "");
  SmtpdPolicy host_only = by_style.policy();
  s.client_address = "127.0.0.1";
  CHECK(rcpt(host_only, s) == "ACCEPT");
  s.client_address = "127.0.0.2";  // host style trusts the address, not the loopback network
  CHECK_THAT(rcpt(host_only, s), Catch::StartsWith("454 "));
  by_style.main_cf += "mynetworks_style = class\n";
  CHECK(rcpt(by_style.policy(), s) == "ACCEPT");
}

TEST_CASE("smtpd_policy: sender login maps", "[smtpd_policy]") {
  Site site("smtpd_sender_login_maps = inline:{alice@example.com=alice, {shared@example.com = alice, bob}, "
            "@team.example=carol}\n"
            "smtpd_sender_restrictions = reject_sender_login_mismatch\n");
  SmtpdPolicy policy = site.policy();
  SmtpdSession s = outsider("root@example.com", "alice@example.com");
  CHECK(rcpt(policy, s) == "553 5.7.1 <alice@example.com>: Sender address rejected: not logged in");
  s.sender = "stranger@example.net";
  CHECK(rcpt(policy, s) == "ACCEPT");
  s.sasl_username = "alice";
  CHECK(rcpt(policy, s) == "553 5.7.1 <stranger@example.net>: Sender address rejected: not owned by user alice");
  s.sender = "alice@example.com";
  CHECK(rcpt(policy, s) == "ACCEPT");
  s.sender = "shared@example.com";
  CHECK(rcpt(policy, s) == "ACCEPT");
  s.sasl_username = "bob";
  CHECK(rcpt(policy, s) == "ACCEPT");
  s.sender = "alice@example.com";
  CHECK(rcpt(policy, s) == "553 5.7.1 <alice@example.com>: Sender address rejected: not owned by user bob");
  s.sasl_username = "carol";
  s.sender = "anyone@team.example";
  CHECK(rcpt(policy, s) == "ACCEPT");

  // The authenticated-only form leaves unauthenticated clients alone.
  Site auth_only("smtpd_sender_login_maps = inline:{alice@example.com=alice}\n"
                 "smtpd_sender_restrictions = reject_authenticated_sender_login_mismatch\n");
  SmtpdSession anonymous = outsider("root@example.com", "alice@example.com");
  CHECK(rcpt(auth_only.policy(), anonymous) == "ACCEPT");
  anonymous.sasl_username = "mallory";
  CHECK(rcpt(auth_only.policy(), anonymous) ==
        "553 5.7.1 <alice@example.com>: Sender address rejected: not owned by user mallory");
}

TEST_CASE("smtpd_policy: reject_unlisted_sender and smtpd_reject_unlisted_sender", "[smtpd_policy]") {
  SmtpdSession s = outsider("friend@elsewhere.example", "ghost@example.com");
  s.client_address = "192.0.2.1";
  CHECK(rcpt(Site().policy(), s) == "ACCEPT");
  std::string reply = "550 5.1.0 <ghost@example.com>: Sender address rejected: User unknown in local recipient table";
  CHECK(rcpt(Site("smtpd_reject_unlisted_sender = yes\n").policy(), s) == reply);
  CHECK(rcpt(Site("smtpd_sender_restrictions = reject_unlisted_sender\n").policy(), s) == reply);
  s.sender = "sales@example.com";
  CHECK(rcpt(Site("smtpd_reject_unlisted_sender = yes\n").policy(), s) == "ACCEPT");
}

TEST_CASE("smtpd_policy: bad restriction lists are refused naming main.cf and the line", "[smtpd_policy]") {
  Site site;
  std::string path = site.dir.path + "/main.cf";
  auto error_for = [&](const std::string& extra) {
    Site broken(extra);
    broken.dir.write("main.cf", "");  // only the path matters; the text is parsed from main_cf
    std::string what = config_error(broken);
    // The line numbers count from the start of Site's main.cf text (five lines of its own).
    return what.substr(what.find("main.cf"));
  };
  CHECK(error_for("smtpd_recipient_restrictions = permit_mynetworks, reject_everything\n") ==
        "main.cf:6: smtpd_recipient_restrictions: unknown restriction: reject_everything");
  CHECK(error_for("smtpd_client_restrictions = check_client_access\n") ==
        "main.cf:6: smtpd_client_restrictions: check_client_access needs an argument");
  CHECK(error_for("smtpd_client_restrictions = check_client_access permit\n") ==
        "main.cf:6: smtpd_client_restrictions: check_client_access needs a type:table, not permit");
  CHECK(error_for("smtpd_client_restrictions = check_client_access nosuch:/x\n") ==
        "main.cf:6: smtpd_client_restrictions: check_client_access: not a type:table this server knows: nosuch:/x");
  CHECK_THAT(error_for("smtpd_client_restrictions = check_client_access inline:{a=b, broken\n"),
             Catch::StartsWith("main.cf:6: smtpd_client_restrictions: check_client_access: "));
  CHECK(error_for("relay_domains = example.org, nosuch:/x\n") ==
        "main.cf:6: relay_domains: not a type:table this server knows: nosuch:/x");
  CHECK(error_for("smtpd_client_restrictions = reject_rbl_client zen.example=bogus\n") ==
        "main.cf:6: smtpd_client_restrictions: reject_rbl_client: bad reply address in zen.example=bogus");
  CHECK(error_for("smtpd_relay_restrictions = permit_mynetworks\n") ==
        "main.cf:6: smtpd_relay_restrictions and smtpd_recipient_restrictions: one of them must contain reject, "
        "defer, reject_unauth_destination or defer_unauth_destination (an open relay is refused)");
  CHECK(error_for("mynetworks = 192.0.2.1/24\n") ==
        "main.cf:6: mynetworks: host bits set in network: 192.0.2.1/24 (did you mean 192.0.2.0/24?)");
  CHECK(error_for("smtpd_sender_restrictions = reject_sender_login_mismatch\n") ==
        "main.cf:6: smtpd_sender_restrictions: a sender login mismatch check needs smtpd_sender_login_maps");
  CHECK_THAT(error_for("dns_resolver_conf = /nonexistent/resolv.conf\n"),
             Catch::StartsWith("main.cf:6: dns_resolver_conf: "));
  // The relay default is enough on its own; an empty relay list needs the recipient list to say no.
  CHECK(config_error(Site("smtpd_relay_restrictions =\n"
                          "smtpd_recipient_restrictions = permit_mynetworks, reject_unauth_destination\n")) ==
        "(no error)");
}

namespace {

const char* kPolicyZone = R"({
  "mx-only.example": {"MX": [[10, "mx.mx-only.example"]]},
  "a-only.example": {"A": ["192.0.2.80"]},
  "aaaa-only.example": {"AAAA": ["2001:db8::80"]},
  "nullmx.example": {"MX": [[0, "."]]},
  "broken.example": {"rcode": "SERVFAIL"},
  "7.100.51.198.rbl.example": {"A": ["127.0.0.2"], "TXT": ["Listed, see https://rbl.example/198.51.100.7"]},
  "8.100.51.198.rbl.example": {"A": ["127.0.0.3"]},
  "9.100.51.198.rbl.example": {"rcode": "SERVFAIL"},
  "7.100.51.198.in-addr.arpa": {"PTR": ["host.example.net"]}
})";

}  // namespace

TEST_CASE("smtpd_policy: unknown sender and recipient domains over real DNS", "[smtpd_policy][dns]") {
  test::DnsServer dns(kPolicyZone);
  Site site("dns_resolver_conf = " + dns.conf() + "\n"
            "smtpd_sender_restrictions = reject_unknown_sender_domain\n"
            "smtpd_recipient_restrictions = reject_unknown_recipient_domain\n"
            "smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination\n");
  SmtpdPolicy policy = site.policy();
  auto from = [&](const std::string& sender) { return rcpt(policy, outsider("root@example.com", sender)); };
  CHECK(from("a@mx-only.example") == "ACCEPT");
  CHECK(from("a@a-only.example") == "ACCEPT");
  CHECK(from("a@aaaa-only.example") == "ACCEPT");
  CHECK(from("") == "ACCEPT");
  CHECK(from("a@example.com") == "ACCEPT");  // ours: no DNS needed
  CHECK(from("a@nowhere.example") == "450 4.1.8 <a@nowhere.example>: Sender address rejected: Domain not found");
  CHECK(from("a@broken.example") == "451 4.3.0 <a@broken.example>: Temporary lookup failure");
  CHECK(from("a@nullmx.example") ==
        "550 5.7.27 <a@nullmx.example>: Sender address rejected: Domain nullmx.example does not accept mail (nullMX)");
  SmtpdSession s = outsider("x@nowhere.example", "a@mx-only.example");
  s.client_address = "192.0.2.1";
  CHECK(rcpt(policy, s) == "450 4.1.2 <x@nowhere.example>: Recipient address rejected: Domain not found");
  s.recipient = "x@mx-only.example";
  CHECK(rcpt(policy, s) == "ACCEPT");

  site.main_cf += "unknown_address_reject_code = 550\n";
  CHECK(rcpt(site.policy(), outsider("root@example.com", "a@nowhere.example")) ==
        "550 5.1.8 <a@nowhere.example>: Sender address rejected: Domain not found");
}

TEST_CASE("smtpd_policy: reject_rbl_client and reverse client names over real DNS", "[smtpd_policy][dns]") {
  test::DnsServer dns(kPolicyZone);
  Site site("dns_resolver_conf = " + dns.conf() + "\n"
            "smtpd_client_restrictions = reject_rbl_client rbl.example\n");
  SmtpdPolicy policy = site.policy();
  SmtpdSession s = outsider("root@example.com");
  PolicyVerdict v = policy.check(SmtpdStage::kRcpt, s);
  CHECK(answer(v) == "554 5.7.1 Service unavailable; Client host [198.51.100.7] blocked using rbl.example; "
                     "Listed, see https://rbl.example/198.51.100.7");
  CHECK_THAT(v.log, Catch::EndsWith("restriction=smtpd_client_restrictions:reject_rbl_client"));
  s.client_address = "198.51.100.8";
  CHECK(rcpt(policy, s) == "554 5.7.1 Service unavailable; Client host [198.51.100.8] blocked using rbl.example");
  s.client_address = "198.51.100.9";
  CHECK(rcpt(policy, s) == "451 4.3.0 <unknown[198.51.100.9]>: Temporary lookup failure");
  s.client_address = "198.51.100.10";
  CHECK(rcpt(policy, s) == "ACCEPT");
  // With a reply filter only that answer counts as listed.
  Site filtered("dns_resolver_conf = " + dns.conf() + "\n"
                "smtpd_client_restrictions = reject_rbl_client rbl.example=127.0.0.3\n");
  s.client_address = "198.51.100.7";
  CHECK(rcpt(filtered.policy(), s) == "ACCEPT");
  s.client_address = "198.51.100.8";
  CHECK_THAT(rcpt(filtered.policy(), s), Catch::StartsWith("554 5.7.1 Service unavailable"));

  Site reverse("dns_resolver_conf = " + dns.conf() + "\n"
               "smtpd_client_restrictions = reject_unknown_reverse_client_hostname\n");
  s.client_address = "198.51.100.7";  // has a PTR record, though smtpd could not verify it
  CHECK(rcpt(reverse.policy(), s) == "ACCEPT");
  s.client_address = "198.51.100.8";
  CHECK(rcpt(reverse.policy(), s) == "450 4.7.25 Client host rejected: cannot find your reverse hostname, [198.51.100.8]");
}

TEST_CASE("recipient_check: local users from the password file and alias tables", "[smtpd_policy]") {
  Site site("recipient_delimiter = +-\n");
  RecipientCheck check(site.config());
  using Status = RecipientVerdict::Status;
  CHECK(check.check("root@example.com").status == Status::kKnown);
  CHECK(check.check("ROOT@localhost").status == Status::kKnown);  // user names are looked up in lower case
  CHECK(check.check("root+tag@example.com").status == Status::kKnown);
  CHECK(check.check("root-tag@example.com").status == Status::kKnown);
  CHECK(check.check("sales@example.com").status == Status::kKnown);
  CHECK(check.check("root").status == Status::kKnown);  // a bare name is local
  RecipientVerdict unknown = check.check("no-such-user-here@example.com");
  CHECK(unknown.status == Status::kUnknown);
  CHECK(unknown.code == 550);
  CHECK(unknown.reason == "User unknown in local recipient table");
  // Other domains are relay control's business, not this check's.
  CHECK(check.check("no-such-user-here@elsewhere.example").status == Status::kKnown);

  Site passwd_only("local_recipient_maps = unix:passwd.byname\n");
  RecipientCheck users(passwd_only.config());
  CHECK(users.check("root@example.com").status == Status::kKnown);
  CHECK(users.check("sales@example.com").status == Status::kUnknown);
}
