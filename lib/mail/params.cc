// Every configuration parameter Postern knows, with Postfix's names and, where
// Postfix has one, Postfix's default. Daemons read only parameters listed here.
#include "mail/params.h"

#include "mail/config.h"
#include "util/network.h"
#include "util/strings.h"

#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <string>

namespace postern {
namespace {

constexpr int64_t kNoMax = std::numeric_limits<int64_t>::max();
using T = ParamType;

std::string host_name(const Config&) {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0 || buf[0] == '\0') return "localhost";
  std::string name(buf);
  // A bare host name gets ".localdomain", as Postfix does, so mydomain is never empty.
  if (name.find('.') == std::string::npos) name += ".localdomain";
  return name;
}

// mydomain follows the configured myhostname, as in Postfix.
std::string domain_name(const Config& config) {
  std::string host = config.str("myhostname");
  size_t dot = host.find('.');
  return dot == std::string::npos ? "localdomain" : host.substr(dot + 1);
}

// mynetworks follows mynetworks_style, as in Postfix.
std::string networks_by_style(const Config& config) {
  std::string style = config.str("mynetworks_style");
  NetworkStyle kind = style == "class" ? NetworkStyle::kClass
                      : style == "subnet" ? NetworkStyle::kSubnet : NetworkStyle::kHost;
  std::vector<std::string> networks;
  for (const IpNetwork& network : local_networks(kind)) networks.push_back(to_string(network));
  return join(networks, " ");
}

// Sorted by name so lookups can bisect; a unit test keeps it sorted and documented.
constexpr ParamSpec kParams[] = {
    {"access_map_defer_code", T::kInt, "450",
     "The reply code of DEFER in an smtpd access table.", 400, 499},
    {"access_map_reject_code", T::kInt, "554",
     "The reply code of REJECT in an smtpd access table.", 500, 599},
    {"alias_database", T::kString, "hash:/etc/aliases",
     "The alias tables that newaliases (postalias) rebuilds."},
    {"alias_maps", T::kString, "hash:/etc/aliases",
     "The alias tables local delivery consults, searched in order."},
    {"auth_failure_delay", T::kTime, "2s",
     "How long the auth service waits before it answers a failed password check.", 0, 60},
    {"auth_password_maps", T::kString, "",
     "Tables of user -> password hash (yescrypt, bcrypt or SHA-512 crypt) for SMTP AUTH, POP3 "
     "and IMAP logins."},
    {"auth_system_users", T::kBool, "no",
     "Let local accounts log in with their system password (getspnam) after auth_password_maps."},
    {"bounce_notice_recipient", T::kString, "postmaster",
     "Who receives notices of mail that bounced (when notify_classes includes bounce)."},
    {"bounce_queue_lifetime", T::kTime, "5d",
     "How long a bounce message may stay queued before it is given up.", 0, kNoMax, 'd'},
    {"command_directory", T::kString, "/usr/sbin", "Where the administrative commands live."},
    {"command_time_limit", T::kTime, "1000s",
     "How long a delivery to a command may run before it is killed.", 1},
    {"config_directory", T::kString, "/etc/postern",
     "Where main.cf and master.cf live (set by -c or POSTERN_CONFIG_DIR)."},
    {"daemon_directory", T::kString, "/usr/lib/postern", "Where the daemon programs live."},
    {"daemon_timeout", T::kTime, "18000s",
     "How long a daemon may handle one request before it is stopped.", 1},
    {"data_directory", T::kString, "/var/lib/postern",
     "Where daemons keep writable data (TLS session caches, locks)."},
    {"default_database_type", T::kString, "hash",
     "The table type postmap and postalias build when none is given.", 0, kNoMax, 's',
     "hash|btree"},
    {"default_destination_concurrency_limit", T::kInt, "20",
     "The most deliveries at once to one destination.", 1, 10000},
    {"default_destination_recipient_limit", T::kInt, "50",
     "The most recipients in one delivery request.", 1, 100000},
    {"default_privs", T::kString, "nobody",
     "The account that delivery to commands and files runs as when no owner applies."},
    {"default_process_limit", T::kInt, "100",
     "The most processes of one service, where master.cf says '-'.", 1, 100000},
    {"default_transport", T::kString, "smtp",
     "The transport for domains that are not local, virtual or relayed."},
    {"defer_code", T::kInt, "450", "The reply code of the defer restriction.", 400, 499},
    {"delay_warning_time", T::kTime, "0h",
     "After how long the sender is told that mail is delayed (0 sends no warning).", 0, kNoMax,
     'h'},
    {"disable_vrfy_command", T::kBool, "yes", "Refuse the SMTP VRFY command."},
    {"dns_resolver_conf", T::kString, "",
     "Postern addition: a resolv.conf-style file (nameserver IP, port N, options timeout:N attempts:N) "
     "for DNS lookups instead of /etc/resolv.conf."},
    {"double_bounce_sender", T::kString, "double-bounce",
     "The sender of bounces of bounces; mail to it is discarded so bounces never loop."},
    {"empty_address_recipient", T::kString, "MAILER-DAEMON",
     "Where mail addressed to the null sender goes."},
    {"header_size_limit", T::kSize, "102400",
     "The most bytes of one message header (all its lines).", 1024},
    {"home_mailbox", T::kString, "",
     "A mailbox under each user's home; ending in '/' means Maildir. Empty means mbox in "
     "mail_spool_directory."},
    {"inet_interfaces", T::kString, "all", "The addresses the SMTP server listens on."},
    {"inet_protocols", T::kString, "all", "The IP versions used: ipv4, ipv6 or all.", 0, kNoMax,
     's', "all|ipv4|ipv6|ipv4, ipv6|ipv6, ipv4"},
    {"invalid_hostname_reject_code", T::kInt, "501",
     "The reply code of reject_invalid_helo_hostname.", 400, 599},
    {"ipc_timeout", T::kTime, "3600s",
     "How long a daemon waits for another over a local socket.", 1},
    {"line_length_limit", T::kInt, "2048",
     "Lines longer than this are broken into pieces of this size.", 1024, 1 << 24},
    {"local_recipient_maps", T::kString, "unix:passwd.byname $alias_maps",
     "Tables of the local domains' users (unix:passwd.byname is the password file); empty turns the check off."},
    {"local_transport", T::kString, "local:$myhostname",
     "The transport for domains in mydestination."},
    {"mail_name", T::kString, "Postern", "The name of the mail system in greetings and headers."},
    {"mail_owner", T::kString, "postern",
     "The unprivileged account that owns the queue and runs the daemons."},
    {"mail_spool_directory", T::kString, "/var/mail", "Where mbox mailboxes live."},
    {"mail_version", T::kString, "0.1", "The version of Postern."},
    {"mailbox_command", T::kString, "",
     "A command that delivers to a local user's mailbox instead of Postern."},
    {"mailbox_size_limit", T::kSize, "51200000",
     "The most bytes of one local mailbox or Maildir file (0 means no limit)."},
    {"maillog_file", T::kString, "",
     "Log to this file instead of syslog; /dev/stderr logs to the terminal."},
    {"maps_rbl_reject_code", T::kInt, "554",
     "The reply code when a client is listed by reject_rbl_client.", 400, 599},
    {"max_idle", T::kTime, "100s", "How long an idle daemon waits for work before it exits.", 1},
    {"max_use", T::kInt, "100", "How many clients a daemon serves before it exits.", 1},
    {"maximal_backoff_time", T::kTime, "4000s",
     "The longest a deferred message waits before it is tried again.", 1},
    {"maximal_queue_lifetime", T::kTime, "5d",
     "How long a message may stay queued before it is returned as undeliverable.", 0, kNoMax,
     'd'},
    {"message_size_limit", T::kSize, "10240000",
     "The most bytes of one message, envelope included (0 means no limit)."},
    {"minimal_backoff_time", T::kTime, "300s",
     "The shortest a deferred message waits before it is tried again.", 1},
    {"mydestination", T::kString, "$myhostname, localhost.$mydomain, localhost",
     "The domains delivered on this machine by the local transport."},
    {"mydomain", T::kString, "", "This machine's domain (from myhostname by default).", 0, kNoMax,
     's', {}, domain_name},
    {"myhostname", T::kString, "", "This machine's fully qualified name.", 0, kNoMax, 's', {},
     host_name},
    {"mynetworks", T::kString, "", "Clients trusted to relay through this server (default: by mynetworks_style).",
     0, kNoMax, 's', {}, networks_by_style},
    {"mynetworks_style", T::kString, "host",
     "The default of mynetworks: this machine's addresses (host), its interface subnets (subnet) "
     "or their class A/B/C networks (class).", 0, kNoMax, 's', "host|subnet|class"},
    {"myorigin", T::kString, "$myhostname",
     "The domain given to addresses without one in locally posted mail."},
    {"non_fqdn_reject_code", T::kInt, "504",
     "The reply code of the reject_non_fqdn_* restrictions.", 400, 599},
    {"notify_classes", T::kString, "resource, software",
     "Which problems are reported to the postmaster."},
    {"parent_domain_matches_subdomains", T::kString,
     "debug_peer_list, fast_flush_domains, mynetworks, permit_mx_backup_networks, "
     "qmqpd_authorized_clients, relay_domains, smtpd_access_maps",
     "Lists in which a domain also matches its subdomains (otherwise write .domain)."},
    {"queue_directory", T::kString, "/var/spool/postern", "The spool: where the queues live."},
    {"queue_run_delay", T::kTime, "300s", "How often the deferred queue is scanned.", 1},
    {"recipient_delimiter", T::kString, "",
     "Characters that separate a user name from an address extension (user+ext)."},
    {"reject_code", T::kInt, "554", "The reply code of the reject restriction.", 500, 599},
    {"relay_domains", T::kString, "",
     "Domains this server relays mail to from anyone (it is their backup MX or gateway)."},
    {"relay_domains_reject_code", T::kInt, "554",
     "The reply code of reject_unauth_destination (Relay access denied).", 400, 599},
    {"relay_recipient_maps", T::kString, "",
     "Tables of the valid recipients in relay_domains; empty accepts every one."},
    {"relay_transport", T::kString, "relay", "The transport for relay_domains."},
    {"relayhost", T::kString, "",
     "Send all non-local mail to this host: [host]:port without MX lookup, host with."},
    {"setgid_group", T::kString, "postdrop",
     "The group that owns the mail drop directory and the set-gid submission helper."},
    {"smtp_tls_CAfile", T::kString, "",
     "A file of CA certificates the SMTP client trusts for verify and secure."},
    {"smtp_tls_CApath", T::kString, "",
     "A directory of CA certificates (hashed names) the SMTP client trusts."},
    {"smtp_tls_cert_file", T::kString, "",
     "The SMTP client's certificate (PEM), shown when a server asks for one."},
    {"smtp_tls_ciphers", T::kString, "medium",
     "The cipher grade of the SMTP client for opportunistic TLS.", 0, kNoMax, 's',
     "high|medium|null"},
    {"smtp_tls_exclude_ciphers", T::kString, "",
     "OpenSSL cipher names the SMTP client never uses."},
    {"smtp_tls_key_file", T::kString, "$smtp_tls_cert_file",
     "The SMTP client's private key (PEM)."},
    {"smtp_tls_loglevel", T::kInt, "0",
     "How much the SMTP client logs about TLS: 0 nothing, 1 a summary per session.", 0, 4},
    {"smtp_tls_mandatory_ciphers", T::kString, "medium",
     "The cipher grade of the SMTP client where TLS is required.", 0, kNoMax, 's',
     "high|medium|null"},
    {"smtp_tls_mandatory_protocols", T::kString, ">=TLSv1.2",
     "The TLS versions the SMTP client uses where TLS is required."},
    {"smtp_tls_protocols", T::kString, ">=TLSv1.2",
     "The TLS versions the SMTP client uses for opportunistic TLS."},
    {"smtp_tls_secure_cert_match", T::kString, "nexthop, dot-nexthop",
     "The names a server certificate must match at security level secure."},
    {"smtp_tls_security_level", T::kString, "",
     "TLS in the SMTP client: none, may, encrypt, verify or secure.", 0, kNoMax, 's',
     "|none|may|encrypt|verify|secure"},
    {"smtp_tls_verify_cert_match", T::kString, "hostname",
     "The names a server certificate must match at security level verify."},
    {"smtp_tls_wrappermode", T::kBool, "no",
     "Speak TLS at once (port 465) instead of STARTTLS when sending."},
    {"smtpd_banner", T::kString, "$myhostname ESMTP $mail_name",
     "The text after 220 in the SMTP greeting."},
    {"smtpd_client_restrictions", T::kString, "", "Restrictions applied when a client connects."},
    {"smtpd_data_restrictions", T::kString, "", "Restrictions applied to DATA."},
    {"smtpd_delay_reject", T::kBool, "yes",
     "Apply the client, helo and sender restrictions at RCPT TO instead of earlier."},
    {"smtpd_end_of_data_restrictions", T::kString, "",
     "Restrictions applied when the message has been received."},
    {"smtpd_error_sleep_time", T::kTime, "1s",
     "How long the SMTP server waits before a reply once a client's errors pass the soft limit."},
    {"smtpd_forbid_bare_newline", T::kString, "normalize",
     "What to do with a bare LF in SMTP input: normalize, yes (reject), no.", 0, kNoMax, 's',
     "normalize|yes|no|reject"},
    {"smtpd_hard_error_limit", T::kInt, "20",
     "After this many errors the SMTP server hangs up.", 1, 10000},
    {"smtpd_helo_required", T::kBool, "no", "Require HELO or EHLO before MAIL."},
    {"smtpd_helo_restrictions", T::kString, "", "Restrictions applied to HELO/EHLO."},
    {"smtpd_null_access_lookup_key", T::kString, "<>",
     "The key under which check_sender_access looks up the null sender."},
    {"smtpd_recipient_limit", T::kInt, "1000", "The most recipients of one message.", 1, 1000000},
    {"smtpd_recipient_restrictions", T::kString, "", "Restrictions applied to RCPT TO."},
    {"smtpd_reject_unlisted_recipient", T::kBool, "yes",
     "Reject unknown recipients of our domains even without reject_unlisted_recipient."},
    {"smtpd_reject_unlisted_sender", T::kBool, "no",
     "Reject unknown senders of our domains even without reject_unlisted_sender."},
    {"smtpd_relay_restrictions", T::kString,
     "permit_mynetworks, permit_sasl_authenticated, defer_unauth_destination",
     "Relay control, applied to RCPT TO before smtpd_recipient_restrictions."},
    {"smtpd_sasl_auth_enable", T::kBool, "no", "Offer SMTP AUTH."},
    {"smtpd_sender_login_maps", T::kString, "",
     "Which login owns which sender address, for reject_authenticated_sender_login_mismatch."},
    {"smtpd_sender_restrictions", T::kString, "", "Restrictions applied to MAIL FROM."},
    {"smtpd_soft_error_limit", T::kInt, "10",
     "After this many errors the SMTP server slows its replies.", 1, 10000},
    {"smtpd_timeout", T::kTime, "300s", "How long the SMTP server waits for a client.", 1},
    {"smtpd_tls_CAfile", T::kString, "",
     "CA certificates the SMTP server verifies client certificates against (smtpd_tls_ask_ccert)."},
    {"smtpd_tls_CApath", T::kString, "",
     "A directory of CA certificates (hashed names) for client certificates."},
    {"smtpd_tls_ask_ccert", T::kBool, "no", "Ask SMTP clients for a certificate (never required)."},
    {"smtpd_tls_auth_only", T::kBool, "yes", "Offer AUTH only inside TLS."},
    {"smtpd_tls_cert_file", T::kString, "", "The SMTP server's certificate (PEM)."},
    {"smtpd_tls_chain_files", T::kString, "",
     "PEM files that each hold a private key, its certificate and chain; used instead of "
     "smtpd_tls_cert_file."},
    {"smtpd_tls_ciphers", T::kString, "medium",
     "The cipher grade of the SMTP server for opportunistic TLS.", 0, kNoMax, 's',
     "high|medium|null"},
    {"smtpd_tls_exclude_ciphers", T::kString, "",
     "OpenSSL cipher names the SMTP server never uses."},
    {"smtpd_tls_key_file", T::kString, "$smtpd_tls_cert_file",
     "The SMTP server's private key (PEM)."},
    {"smtpd_tls_loglevel", T::kInt, "0",
     "How much the SMTP server logs about TLS: 0 nothing, 1 a summary per session.", 0, 4},
    {"smtpd_tls_mandatory_ciphers", T::kString, "medium",
     "The cipher grade of the SMTP server where TLS is required.", 0, kNoMax, 's',
     "high|medium|null"},
    {"smtpd_tls_mandatory_protocols", T::kString, ">=TLSv1.2",
     "The TLS versions the SMTP server accepts where TLS is required."},
    {"smtpd_tls_protocols", T::kString, ">=TLSv1.2", "The TLS versions the SMTP server accepts."},
    {"smtpd_tls_received_header", T::kBool, "no",
     "Name the TLS version and cipher in the Received header."},
    {"smtpd_tls_security_level", T::kString, "",
     "TLS in the SMTP server: none, may (offer STARTTLS) or encrypt (require it).", 0, kNoMax, 's',
     "|none|may|encrypt"},
    {"smtpd_tls_session_cache_timeout", T::kTime, "3600s",
     "How long a TLS session may be resumed (by cache or ticket); 0 turns resumption off.", 0,
     8640000},
    {"smtpd_tls_wrappermode", T::kBool, "no", "Speak TLS at once (port 465) instead of STARTTLS."},
    {"smtputf8_enable", T::kBool, "yes", "Offer and accept SMTPUTF8."},
    {"syslog_name", T::kString, "postern", "The name before the service in log lines."},
    {"tls_eecdh_auto_curves", T::kString, "X25519 X448 prime256v1 secp521r1 secp384r1",
     "The groups offered for ephemeral (EC)DH key exchange, most preferred first."},
    {"tls_high_cipherlist", T::kString, "aNULL:-aNULL:HIGH:@STRENGTH",
     "The OpenSSL cipher list of the cipher grade high (TLS 1.2 and below)."},
    {"tls_medium_cipherlist", T::kString, "aNULL:-aNULL:HIGH:MEDIUM:+RC4:@STRENGTH",
     "The OpenSSL cipher list of the cipher grade medium (TLS 1.2 and below)."},
    {"tls_null_cipherlist", T::kString, "eNULL:!aNULL",
     "The OpenSSL cipher list of the cipher grade null: authentication without encryption."},
    {"transport_maps", T::kString, "", "Tables that map a domain or address to transport:nexthop."},
    {"unknown_address_reject_code", T::kInt, "450",
     "The reply code of reject_unknown_sender_domain and reject_unknown_recipient_domain.", 400, 599},
    {"unknown_client_reject_code", T::kInt, "450",
     "The reply code of reject_unknown_client_hostname and reject_unknown_reverse_client_hostname.",
     400, 599},
    {"unknown_local_recipient_reject_code", T::kInt, "550",
     "The reply code for an unknown user of a local domain.", 400, 599},
    {"unknown_relay_recipient_reject_code", T::kInt, "550",
     "The reply code for a recipient of relay_domains not in relay_recipient_maps.", 400, 599},
    {"unknown_virtual_alias_reject_code", T::kInt, "550",
     "The reply code for an unknown address of a virtual alias domain.", 400, 599},
    {"unknown_virtual_mailbox_reject_code", T::kInt, "550",
     "The reply code for an unknown address of a virtual mailbox domain.", 400, 599},
    {"virtual_alias_domains", T::kString, "$virtual_alias_maps",
     "Domains whose every address is an alias in virtual_alias_maps."},
    {"virtual_alias_expansion_limit", T::kInt, "1000",
     "The most addresses one recipient may expand to through virtual_alias_maps.", 1},
    {"virtual_alias_maps", T::kString, "",
     "Tables that map addresses to other addresses, for every domain."},
    {"virtual_alias_recursion_limit", T::kInt, "1000",
     "The deepest nesting of virtual_alias_maps expansion.", 1},
    {"virtual_extension_folders", T::kBool, "no",
     "Deliver user+folder@domain into the Maildir++ folder .folder when it exists."},
    {"virtual_gid_maps", T::kString, "", "The group a virtual mailbox is written as."},
    {"virtual_mailbox_base", T::kString, "",
     "The directory that virtual_mailbox_maps paths are relative to."},
    {"virtual_mailbox_domains", T::kString, "$virtual_mailbox_maps",
     "Domains whose users have mailboxes here but no system account."},
    {"virtual_mailbox_limit", T::kSize, "51200000",
     "The largest mbox file or Maildir message file the virtual agent writes (0: no limit)."},
    {"virtual_mailbox_limit_maps", T::kString, "",
     "Tables that give a virtual user's Maildir++ quota (\"bytes\", \"bytesS\" or \"bytesS,countC\")."},
    {"virtual_mailbox_maps", T::kString, "",
     "Tables that map virtual addresses to mailbox paths (ending in '/' means Maildir)."},
    {"virtual_mailbox_quota", T::kString, "0",
     "The Maildir++ quota of a user virtual_mailbox_limit_maps does not list (0: none)."},
    {"virtual_minimum_uid", T::kInt, "100",
     "The lowest uid the virtual delivery agent writes as.", 1},
    {"virtual_overquota_bounce", T::kBool, "no",
     "Bounce mail for a user over quota (5.2.2) instead of deferring it (4.2.2)."},
    {"virtual_transport", T::kString, "virtual", "The transport for virtual_mailbox_domains."},
    {"virtual_uid_maps", T::kString, "", "The user a virtual mailbox is written as."},
    {"virtual_user_database", T::kString, "",
     "Where postern user/domain keep users: hash:DIRECTORY or mysql:/path/file.cf (Postern addition)."},
};

}  // namespace

std::span<const ParamSpec> all_params() { return kParams; }

const ParamSpec* find_param(std::string_view name) {
  auto it = std::lower_bound(std::begin(kParams), std::end(kParams), name,
                             [](const ParamSpec& p, std::string_view n) { return p.name < n; });
  if (it == std::end(kParams) || it->name != name) return nullptr;
  return &*it;
}

std::string default_value(const ParamSpec& spec, const Config& config) {
  if (spec.compute_default) return spec.compute_default(config);
  return std::string(spec.default_value);
}

}  // namespace postern
