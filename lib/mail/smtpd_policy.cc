// smtpd's restriction engine (see smtpd_policy.h): the lists are parsed once when
// the policy is built, so a mistake in main.cf stops smtpd before it serves anyone;
// check() walks the lists for a stage and turns the first reject or defer into a reply.
#include "mail/smtpd_policy.h"

#include <sys/socket.h>

#include <algorithm>
#include <fstream>
#include <optional>
#include <vector>

#include "mail/address.h"
#include "mail/address_keys.h"
#include "mail/recipient_check.h"
#include "mail/table.h"
#include "util/dns.h"
#include "util/error.h"
#include "util/network.h"
#include "util/strings.h"

namespace postern {

namespace {

enum class Op {
  kPermit,
  kReject,
  kDefer,
  kDunno,
  kPermitMynetworks,
  kPermitSaslAuthenticated,
  kRejectUnauthDestination,
  kDeferUnauthDestination,
  kRejectUnlistedRecipient,
  kRejectUnlistedSender,
  kRejectNonFqdnSender,
  kRejectNonFqdnRecipient,
  kRejectNonFqdnHelo,
  kRejectInvalidHelo,
  kRejectUnknownSenderDomain,
  kRejectUnknownRecipientDomain,
  kRejectUnknownClientHostname,
  kRejectUnknownReverseClientHostname,
  kCheckClientAccess,
  kCheckHeloAccess,
  kCheckSenderAccess,
  kCheckRecipientAccess,
  kRejectRblClient,
  kRejectSenderLoginMismatch,
  kRejectAuthenticatedSenderLoginMismatch,
  kRejectUnauthPipelining,
};

enum class Argument { kNone, kTable, kDomain };

struct OpName {
  std::string_view name;
  Op op;
  Argument argument = Argument::kNone;
};

// Postfix's names, with the older spellings Postfix still accepts.
constexpr OpName kOps[] = {
    {"permit", Op::kPermit},
    {"reject", Op::kReject},
    {"defer", Op::kDefer},
    {"dunno", Op::kDunno},
    {"permit_mynetworks", Op::kPermitMynetworks},
    {"permit_sasl_authenticated", Op::kPermitSaslAuthenticated},
    {"reject_unauth_destination", Op::kRejectUnauthDestination},
    {"defer_unauth_destination", Op::kDeferUnauthDestination},
    {"reject_unlisted_recipient", Op::kRejectUnlistedRecipient},
    {"reject_unknown_recipient", Op::kRejectUnlistedRecipient},
    {"reject_unlisted_sender", Op::kRejectUnlistedSender},
    {"reject_non_fqdn_sender", Op::kRejectNonFqdnSender},
    {"reject_non_fqdn_recipient", Op::kRejectNonFqdnRecipient},
    {"reject_non_fqdn_helo_hostname", Op::kRejectNonFqdnHelo},
    {"reject_non_fqdn_hostname", Op::kRejectNonFqdnHelo},
    {"reject_invalid_helo_hostname", Op::kRejectInvalidHelo},
    {"reject_invalid_hostname", Op::kRejectInvalidHelo},
    {"reject_unknown_sender_domain", Op::kRejectUnknownSenderDomain},
    {"reject_unknown_recipient_domain", Op::kRejectUnknownRecipientDomain},
    {"reject_unknown_client_hostname", Op::kRejectUnknownClientHostname},
    {"reject_unknown_client", Op::kRejectUnknownClientHostname},
    {"reject_unknown_reverse_client_hostname", Op::kRejectUnknownReverseClientHostname},
    {"check_client_access", Op::kCheckClientAccess, Argument::kTable},
    {"check_helo_access", Op::kCheckHeloAccess, Argument::kTable},
    {"check_sender_access", Op::kCheckSenderAccess, Argument::kTable},
    {"check_recipient_access", Op::kCheckRecipientAccess, Argument::kTable},
    {"reject_rbl_client", Op::kRejectRblClient, Argument::kDomain},
    {"reject_sender_login_mismatch", Op::kRejectSenderLoginMismatch},
    {"reject_authenticated_sender_login_mismatch", Op::kRejectAuthenticatedSenderLoginMismatch},
    {"reject_unauth_pipelining", Op::kRejectUnauthPipelining},
};

struct Restriction {
  Op op;
  std::string name;
  std::shared_ptr<Table> table;      // check_*_access
  std::string rbl_domain;            // reject_rbl_client
  std::optional<IpAddress> rbl_reply;  // reject_rbl_client domain=d.d.d.d
};

struct RestrictionList {
  std::string param;
  std::vector<Restriction> items;
  bool contains(Op op) const {
    for (const Restriction& r : items)
      if (r.op == op) return true;
    return false;
  }
};

struct Where {
  std::string file;
  int line = 0;
};

Where where_of(const Config& config, std::string_view param) {
  if (const Config::Entry* entry = config.entry(param)) return {entry->file, entry->line};
  return {config.main_cf_path(), 0};
}

// Parses a restriction list. Restrictions that take an argument read the next item.
// Throws ConfigError at where for unknown names, missing arguments and bad tables;
// tables are opened only when allow_tables (a list inside an access table value
// may name simple restrictions only).
RestrictionList parse_list(std::string param, const std::vector<std::string>& words, const Where& where,
                           bool allow_tables) {
  RestrictionList list{std::move(param), {}};
  auto error = [&](const std::string& what) { return ConfigError(where.file, where.line, list.param + ": " + what); };
  for (size_t i = 0; i < words.size(); ++i) {
    std::string name = lowercase(words[i]);
    const OpName* found = nullptr;
    for (const OpName& op : kOps)
      if (op.name == name) found = &op;
    if (!found) throw error("unknown restriction: " + words[i]);
    Restriction restriction{found->op, name, nullptr, {}, std::nullopt};
    if (found->argument != Argument::kNone) {
      if (!allow_tables) throw error(name + " is not allowed here");
      if (i + 1 >= words.size()) throw error(name + " needs an argument");
      const std::string& argument = words[++i];
      if (found->argument == Argument::kTable) {
        if (argument.find(':') == std::string::npos) throw error(name + " needs a type:table, not " + argument);
        restriction.table = open_table_or_stand_in(argument, where.file, where.line, list.param + ": " + name);
      } else {
        size_t equals = argument.find('=');
        restriction.rbl_domain = lowercase(argument.substr(0, equals));
        if (restriction.rbl_domain.empty() || restriction.rbl_domain.find(':') != std::string::npos)
          throw error(name + " needs a DNS domain, not " + argument);
        if (equals != std::string::npos) {
          restriction.rbl_reply = parse_ip(argument.substr(equals + 1));
          if (!restriction.rbl_reply) throw error(name + ": bad reply address in " + argument);
        }
      }
    }
    list.items.push_back(std::move(restriction));
  }
  return list;
}

// "type:name" with a table type we know (an IPv6 network also has a colon).
bool is_table_spec(std::string_view item) {
  size_t colon = item.find(':');
  if (colon == std::string_view::npos) return false;
  for (std::string_view type : table_type_names())
    if (type == item.substr(0, colon)) return true;
  return false;
}

// A client list as mynetworks holds: networks, "!pattern" exceptions, /file names
// whose content is more patterns, type:table lookups of the client address, and
// host names or domains matched against the verified client name.
class ClientList {
 public:
  ClientList(const Config& config, std::string_view param, bool parent_matches) : parent_matches_(parent_matches) {
    Where where = where_of(config, param);
    for (const std::string& item : config.list(param)) add(item, where, std::string(param));
  }

  // Found (it matches), not found, or a temporary failure of a table.
  LookupResult match(const std::string& address, const std::string& name) const {
    auto ip = parse_ip(address);
    for (const Pattern& pattern : patterns_) {
      bool hit = false;
      if (pattern.table) {
        LookupResult result = pattern.table->lookup(address);
        if (result.is_temp_fail()) return result;
        hit = result.is_found();
      } else if (pattern.network) {
        hit = ip && pattern.network->contains(*ip);
      } else if (name != "unknown") {
        const std::string& domain = pattern.domain;
        std::string suffix = domain.starts_with('.') ? domain : "." + domain;
        hit = name == domain ||
              ((domain.starts_with('.') || parent_matches_) && name.size() > suffix.size() && name.ends_with(suffix));
      }
      if (hit) return pattern.negated ? LookupResult::not_found() : LookupResult::found(address);
    }
    return LookupResult::not_found();
  }

 private:
  struct Pattern {
    bool negated = false;
    std::optional<IpNetwork> network;
    std::shared_ptr<Table> table;
    std::string domain;
  };

  void add(std::string item, const Where& where, const std::string& param) {
    Pattern pattern;
    if (item.starts_with('!')) {
      pattern.negated = true;
      item.erase(0, 1);
    }
    if (item.starts_with('/')) {
      std::ifstream in(item);
      if (!in) throw ConfigError(where.file, where.line, param + ": cannot open " + item);
      std::string line;
      for (int number = 1; std::getline(in, line); ++number) {
        std::string_view text = trim(line);
        if (text.empty() || text.starts_with('#')) continue;
        for (const std::string& word : split(text, " \t,")) add(word, {item, number}, param);
      }
      return;
    }
    std::string error;
    if (is_table_spec(item)) {
      pattern.table = open_table_or_stand_in(item, where.file, where.line, param);
    } else if (auto network = parse_network(item, &error)) {
      pattern.network = network;
    } else if (item.find_first_of(":[/") == std::string::npos) {
      pattern.domain = lowercase(item);
    } else {
      throw ConfigError(where.file, where.line, param + ": " + error);
    }
    patterns_.push_back(std::move(pattern));
  }

  bool parent_matches_;
  std::vector<Pattern> patterns_;
};

bool is_address_literal(std::string_view domain) { return domain.starts_with('[') && domain.ends_with(']'); }

// Postfix's valid_hostname(): labels of letters, digits, '-' and '_', not starting or
// ending with '-', at most 63 octets each and 255 in all, not all numeric.
bool is_valid_hostname(std::string_view name) {
  if (name.ends_with('.')) name.remove_suffix(1);
  if (name.empty() || name.size() > 255) return false;
  bool all_numeric = true;
  for (const std::string& label : split(name, ".")) {
    if (label.size() > 63 || label.front() == '-' || label.back() == '-') return false;
    for (char c : label) {
      if (!isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_') return false;
      if (!isdigit(static_cast<unsigned char>(c))) all_numeric = false;
    }
  }
  return !all_numeric && name.find("..") == std::string_view::npos && !name.starts_with('.');
}

// The domain and each parent, for access tables: "a.b.c", then "b.c" and "c"
// (or ".b.c" and ".c" when parent domains do not match their subdomains).
std::vector<std::string> domain_keys(std::string_view domain, bool parent_matches) {
  std::vector<std::string> keys;
  std::string name = lowercase(domain);
  if (is_address_literal(name)) return {name};
  if (name.ends_with('.')) name.pop_back();
  if (name.empty()) return keys;
  keys.push_back(name);
  for (size_t dot = name.find('.'); dot != std::string::npos; dot = name.find('.', dot + 1))
    keys.push_back(parent_matches ? name.substr(dot + 1) : name.substr(dot));
  return keys;
}

// The client address for access tables: "192.0.2.1", "192.0.2", "192.0", "192";
// IPv6 "2001:db8::1" then its eight groups shortened from the end.
std::vector<std::string> client_address_keys(const std::string& address) {
  std::vector<std::string> keys{address};
  auto ip = parse_ip(address);
  if (!ip) return keys;
  if (ip->family == AF_INET) {
    std::string text = to_string(*ip);
    if (text != address) keys.push_back(text);
    for (size_t dot = text.rfind('.'); dot != std::string::npos; dot = text.rfind('.', dot - 1)) {
      keys.push_back(text.substr(0, dot));
      if (dot == 0) break;
    }
  } else {
    std::vector<std::string> groups;
    for (int i = 0; i < 16; i += 2) groups.push_back(format("%x", ip->bytes[i] << 8 | ip->bytes[i + 1]));
    for (size_t n = 7; n >= 1; --n) {
      std::vector<std::string> head(groups.begin(), groups.begin() + n);
      keys.push_back(join(head, ":"));
    }
  }
  return keys;
}

std::string enhanced(int code, std::string_view detail) {
  return std::to_string(code / 100) + "." + std::string(detail);
}

}  // namespace

struct SmtpdPolicy::Impl {
  RestrictionList client, helo, sender, relay, recipient, data, end_of_data;
  bool delay_reject, reject_unlisted_recipient, reject_unlisted_sender;
  std::unique_ptr<ClientList> mynetworks;
  RecipientCheck recipients;
  std::unique_ptr<Resolver> resolver;  // always there: an access table value may name a DNS check too
  mutable TableList sender_logins;
  bool access_parent_matches;
  std::string delimiters, null_sender_key;
  int reject_code, defer_code, access_reject_code, access_defer_code, relay_code, unknown_address_code,
      unknown_client_code, non_fqdn_code, invalid_hostname_code, rbl_code;

  explicit Impl(const Config& config);

  struct Context {
    SmtpdStage stage;
    const SmtpdSession& session;
    const RestrictionList* list = nullptr;  // nullptr for the implicit smtpd_reject_unlisted_* checks
    std::string rule;                       // "list:restriction", for the log
  };
  // A restriction's result: permit, no opinion (dunno), or a reply.
  struct Outcome {
    enum class Kind { kPermit, kDunno, kReply } kind = Kind::kDunno;
    PolicyVerdict verdict;
  };

  std::optional<PolicyVerdict> run(const RestrictionList& list, SmtpdStage stage, const SmtpdSession& session) const;
  Outcome apply(const Restriction& r, const Context& ctx) const;
  Outcome reply(const Context& ctx, int code, std::string_view detail, std::string text) const;
  Outcome temp_fail(const Context& ctx, const std::string& subject, const std::string& why) const;
  Outcome access(const Context& ctx, Table& table, const std::vector<std::string>& keys, const std::string& subject,
                 const std::string& what) const;
  Outcome unauth_destination(const Context& ctx, bool defer) const;
  Outcome unlisted(const Context& ctx, const std::string& address, const char* what) const;
  Outcome unknown_domain(const Context& ctx, const std::string& address, bool is_sender) const;
  Outcome rbl(const Context& ctx, const Restriction& r) const;
  Outcome login_mismatch(const Context& ctx, bool unauthenticated_too) const;
  std::vector<std::string> address_access_keys(const std::string& address, bool is_sender) const;
};

SmtpdPolicy::Impl::Impl(const Config& config) : recipients(config) {
  auto load = [&](const char* param) {
    return parse_list(param, config.list(param), where_of(config, param), true);
  };
  client = load("smtpd_client_restrictions");
  helo = load("smtpd_helo_restrictions");
  sender = load("smtpd_sender_restrictions");
  relay = load("smtpd_relay_restrictions");
  recipient = load("smtpd_recipient_restrictions");
  data = load("smtpd_data_restrictions");
  end_of_data = load("smtpd_end_of_data_restrictions");
  // Postfix refuses to run as an open relay: RCPT TO must meet something that says no.
  bool relay_control = false;
  for (const RestrictionList* list : {&relay, &recipient})
    for (Op op : {Op::kReject, Op::kDefer, Op::kRejectUnauthDestination, Op::kDeferUnauthDestination})
      relay_control = relay_control || list->contains(op);
  if (!relay_control) {
    Where where = where_of(config, config.is_set("smtpd_relay_restrictions") ? "smtpd_relay_restrictions"
                                                                            : "smtpd_recipient_restrictions");
    throw ConfigError(where.file, where.line,
                      "smtpd_relay_restrictions and smtpd_recipient_restrictions: one of them must contain "
                      "reject, defer, reject_unauth_destination or defer_unauth_destination (an open relay "
                      "is refused)");
  }
  delay_reject = config.boolean("smtpd_delay_reject");
  reject_unlisted_recipient = config.boolean("smtpd_reject_unlisted_recipient");
  reject_unlisted_sender = config.boolean("smtpd_reject_unlisted_sender");
  std::vector<std::string> parent_matches = config.list("parent_domain_matches_subdomains");
  auto parent_match = [&](std::string_view name) {
    for (const std::string& item : parent_matches)
      if (item == name) return true;
    return false;
  };
  access_parent_matches = parent_match("smtpd_access_maps");
  mynetworks = std::make_unique<ClientList>(config, "mynetworks", parent_match("mynetworks"));
  Where logins_where = where_of(config, "smtpd_sender_login_maps");
  for (const std::string& spec : config.list("smtpd_sender_login_maps"))
    sender_logins.add(open_table_or_stand_in(spec, logins_where.file, logins_where.line, "smtpd_sender_login_maps"));
  for (const RestrictionList* list : {&client, &helo, &sender, &relay, &recipient, &data, &end_of_data}) {
    if (sender_logins.empty() &&
        (list->contains(Op::kRejectSenderLoginMismatch) || list->contains(Op::kRejectAuthenticatedSenderLoginMismatch))) {
      Where where = where_of(config, list->param);
      throw ConfigError(where.file, where.line,
                        list->param + ": a sender login mismatch check needs smtpd_sender_login_maps");
    }
  }
  try {
    resolver = std::make_unique<Resolver>(ResolverOptions{config.str("dns_resolver_conf")});
  } catch (const ConfigError& e) {
    Where where = where_of(config, "dns_resolver_conf");
    throw ConfigError(where.file, where.line, std::string("dns_resolver_conf: ") + e.what());
  }
  delimiters = config.str("recipient_delimiter");
  null_sender_key = config.str("smtpd_null_access_lookup_key");
  auto code = [&](const char* param) { return static_cast<int>(config.integer(param)); };
  reject_code = code("reject_code");
  defer_code = code("defer_code");
  access_reject_code = code("access_map_reject_code");
  access_defer_code = code("access_map_defer_code");
  relay_code = code("relay_domains_reject_code");
  unknown_address_code = code("unknown_address_reject_code");
  unknown_client_code = code("unknown_client_reject_code");
  non_fqdn_code = code("non_fqdn_reject_code");
  invalid_hostname_code = code("invalid_hostname_reject_code");
  rbl_code = code("maps_rbl_reject_code");
}

namespace {

const char* stage_verb(SmtpdStage stage) {
  switch (stage) {
    case SmtpdStage::kConnect: return "CONNECT";
    case SmtpdStage::kHelo: return "HELO";
    case SmtpdStage::kMail: return "MAIL";
    case SmtpdStage::kRcpt: return "RCPT";
    case SmtpdStage::kData: return "DATA";
    case SmtpdStage::kEndOfData: return "END-OF-MESSAGE";
  }
  return "?";
}

bool has_sender(SmtpdStage stage) { return stage >= SmtpdStage::kMail; }
bool has_recipient(SmtpdStage stage, const SmtpdSession& session) {
  return stage >= SmtpdStage::kRcpt && !session.recipient.empty();
}

std::string client_subject(const SmtpdSession& s) {
  return "<" + (s.client_name.empty() ? std::string("unknown") : s.client_name) + "[" + s.client_address + "]>";
}
std::string address_subject(const std::string& address) { return "<" + address + ">"; }

}  // namespace

SmtpdPolicy::Impl::Outcome SmtpdPolicy::Impl::reply(const Context& ctx, int code, std::string_view detail,
                                                    std::string text) const {
  Outcome outcome;
  outcome.kind = Outcome::Kind::kReply;
  PolicyVerdict& v = outcome.verdict;
  v.kind = code / 100 == 4 ? PolicyVerdict::Kind::kDefer : PolicyVerdict::Kind::kReject;
  v.code = code;
  // detail is "X.Y" (the class follows the code) or a whole "C.X.Y" from an access table.
  v.dsn = std::count(detail.begin(), detail.end(), '.') == 2 ? std::string(detail) : enhanced(code, detail);
  v.text = std::move(text);
  const SmtpdSession& s = ctx.session;
  v.log = format("reject: %s from %s[%s]: %d %s %s; from=<%s> to=<%s>", stage_verb(ctx.stage),
                 s.client_name.empty() ? "unknown" : s.client_name.c_str(), s.client_address.c_str(), v.code,
                 v.dsn.c_str(), v.text.c_str(), has_sender(ctx.stage) ? s.sender.c_str() : "",
                 s.recipient.c_str());
  if (!s.protocol.empty()) v.log += " proto=" + s.protocol;
  if (!s.helo_name.empty()) v.log += " helo=<" + s.helo_name + ">";
  v.log += " restriction=" + ctx.rule;
  return outcome;
}

SmtpdPolicy::Impl::Outcome SmtpdPolicy::Impl::temp_fail(const Context& ctx, const std::string& subject,
                                                        const std::string& why) const {
  Outcome outcome = reply(ctx, 451, "4.3.0", subject + ": Temporary lookup failure");
  outcome.verdict.log += " (" + why + ")";
  return outcome;
}

std::optional<PolicyVerdict> SmtpdPolicy::Impl::run(const RestrictionList& list, SmtpdStage stage,
                                                    const SmtpdSession& session) const {
  Context ctx{stage, session, &list, {}};
  for (const Restriction& r : list.items) {
    ctx.rule = list.param + ":" + r.name;
    Outcome outcome = apply(r, ctx);
    if (outcome.kind == Outcome::Kind::kPermit) return std::nullopt;
    if (outcome.kind == Outcome::Kind::kReply) return outcome.verdict;
  }
  return std::nullopt;
}

std::vector<std::string> SmtpdPolicy::Impl::address_access_keys(const std::string& address, bool is_sender) const {
  if (address.empty()) return {is_sender ? null_sender_key : std::string("<>")};
  std::vector<std::string> keys = address_keys(address, {delimiters, false, false});
  Address parts = split_address(address);
  for (std::string& key : domain_keys(parts.domain, access_parent_matches)) keys.push_back(std::move(key));
  if (!parts.domain.empty()) {
    for (std::string& local : address_keys(parts.local, {delimiters, true, false})) keys.push_back(local + "@");
  }
  return keys;
}

SmtpdPolicy::Impl::Outcome SmtpdPolicy::Impl::access(const Context& ctx, Table& table,
                                                     const std::vector<std::string>& keys,
                                                     const std::string& subject, const std::string& what) const {
  for (const std::string& key : keys) {
    LookupResult result = table.lookup(key);
    if (result.is_temp_fail()) return temp_fail(ctx, subject, table.spec() + ": " + result.error);
    if (!result.is_found()) continue;
    std::string value(trim(result.value));
    std::vector<std::string> words = split(value, kBlanks);
    std::string action = words.empty() ? std::string() : lowercase(words[0]);
    std::string text(trim(std::string_view(value).substr(std::min(value.size(), action.size()))));
    auto reason = [&](const std::string& text) {
      return subject + ": " + what + " rejected: " + (text.empty() ? "Access denied" : text);
    };
    // A value of digits alone is OK, as in Postfix (some tools store a time stamp).
    if (action == "ok" || (words.size() == 1 && parse_int(action))) return {Outcome::Kind::kPermit, {}};
    if (action == "dunno") return {};
    if (action == "reject") return reply(ctx, access_reject_code, "7.1", reason(text));
    if (action == "defer") return reply(ctx, access_defer_code, "7.1", reason(text));
    if (action.size() == 3 && (action[0] == '4' || action[0] == '5') && parse_int(action)) {
      std::string dsn = "7.1";
      std::string rest = text;
      size_t space = rest.find(' ');
      std::string first = rest.substr(0, space);
      if (first.size() >= 5 && first[0] == action[0] && first[1] == '.' &&
          first.find_first_not_of("0123456789.") == std::string::npos) {
        dsn = first;
        rest = space == std::string::npos ? "" : std::string(trim(rest.substr(space)));
      }
      return reply(ctx, static_cast<int>(*parse_int(action)), dsn, reason(rest));
    }
    // Otherwise the value is a list of simple restrictions ("permit", "reject_unauth_destination").
    RestrictionList nested;
    try {
      nested = parse_list(table.spec(), words, {table.spec(), 0}, false);
    } catch (const ConfigError& e) {
      Outcome outcome = reply(ctx, 451, "4.3.5", subject + ": Server configuration error");
      outcome.verdict.log += " (" + std::string(e.what()) + ")";
      return outcome;
    }
    Context inner = ctx;
    for (const Restriction& r : nested.items) {
      inner.rule = ctx.rule + ":" + r.name;
      Outcome outcome = apply(r, inner);
      if (outcome.kind != Outcome::Kind::kDunno) return outcome;
    }
    return {};
  }
  return {};
}

SmtpdPolicy::Impl::Outcome SmtpdPolicy::Impl::unauth_destination(const Context& ctx, bool defer) const {
  if (!has_recipient(ctx.stage, ctx.session)) return {};
  const std::string& rcpt = ctx.session.recipient;
  Address parts = split_address(rcpt);
  DomainClassResult domain = recipients.classify(parts.domain);
  if (domain.temp_fail) return temp_fail(ctx, address_subject(rcpt), domain.error);
  // Mail for a domain of ours is fine unless the local part routes it on
  // elsewhere (user%other@, other!user@, "user@other"@): that is relaying.
  if (domain.domain_class != DomainClass::kOther && !has_routing_in_local_part(parts.local)) return {};
  // Postfix answers 454 for defer_unauth_destination, whatever defer_code says.
  return reply(ctx, defer ? 454 : relay_code, "7.1", address_subject(rcpt) + ": Relay access denied");
}

SmtpdPolicy::Impl::Outcome SmtpdPolicy::Impl::unlisted(const Context& ctx, const std::string& address,
                                                       const char* what) const {
  RecipientVerdict verdict = recipients.check(address);
  if (verdict.status == RecipientVerdict::Status::kKnown) return {};
  std::string subject = address_subject(address);
  if (verdict.status == RecipientVerdict::Status::kTempFail) return temp_fail(ctx, subject, verdict.reason);
  bool is_sender = std::string_view(what) == "Sender";
  return reply(ctx, verdict.code, is_sender ? "1.0" : "1.1",
               subject + ": " + what + " address rejected: " + verdict.reason);
}

SmtpdPolicy::Impl::Outcome SmtpdPolicy::Impl::unknown_domain(const Context& ctx, const std::string& address,
                                                             bool is_sender) const {
  Address parts = split_address(address);
  if (parts.domain.empty() || is_address_literal(parts.domain)) return {};
  std::string subject = address_subject(address);
  DomainClassResult domain = recipients.classify(parts.domain);
  if (domain.temp_fail) return temp_fail(ctx, subject, domain.error);
  if (domain.domain_class != DomainClass::kOther && domain.domain_class != DomainClass::kRelay) return {};
  const char* what = is_sender ? "Sender" : "Recipient";
  std::string name = parts.domain;
  if (name.ends_with('.')) name.pop_back();
  bool temporary = false;
  std::string why;
  auto mx = resolver->lookup_mx(name);
  if (mx.found()) {
    if (mx.records.size() == 1 && mx.records.front().host.empty())
      return reply(ctx, is_sender ? 550 : 556, is_sender ? "7.27" : "1.10",
                   subject + ": " + what + " address rejected: Domain " + name + " does not accept mail (nullMX)");
    return {};
  }
  temporary = mx.temp_fail();
  why = mx.error;
  for (DnsType type : {DnsType::kA, DnsType::kAaaa}) {
    auto address_records = resolver->lookup(name, type);
    if (address_records.found()) return {};
    temporary = temporary || address_records.temp_fail();
  }
  if (temporary) return temp_fail(ctx, subject, "DNS lookup of " + name + ": " + why);
  return reply(ctx, unknown_address_code, is_sender ? "1.8" : "1.2",
               subject + ": " + what + " address rejected: Domain not found");
}

SmtpdPolicy::Impl::Outcome SmtpdPolicy::Impl::rbl(const Context& ctx, const Restriction& r) const {
  const std::string& address = ctx.session.client_address;
  std::string labels = reverse_address_labels(address);
  if (labels.empty()) return {};
  std::string query = labels + "." + r.rbl_domain;
  auto listed = resolver->lookup(query, DnsType::kA);
  if (listed.temp_fail()) return temp_fail(ctx, client_subject(ctx.session), "DNS lookup of " + query + ": " + listed.error);
  if (!listed.found()) return {};
  if (r.rbl_reply) {
    bool match = false;
    for (const std::string& record : listed.records) match = match || parse_ip(record) == r.rbl_reply;
    if (!match) return {};
  }
  std::string text = "Service unavailable; Client host [" + address + "] blocked using " + r.rbl_domain;
  auto reason = resolver->lookup(query, DnsType::kTxt);
  if (reason.found()) text += "; " + reason.records.front();
  return reply(ctx, rbl_code, "7.1", text);
}

SmtpdPolicy::Impl::Outcome SmtpdPolicy::Impl::login_mismatch(const Context& ctx, bool unauthenticated_too) const {
  const SmtpdSession& s = ctx.session;
  if (!has_sender(ctx.stage) || s.sender.empty()) return {};
  bool authenticated = !s.sasl_username.empty();
  if (!authenticated && !unauthenticated_too) return {};
  std::string subject = address_subject(s.sender);
  LookupResult owners = lookup_address(sender_logins, s.sender, {delimiters, false, true});
  if (owners.is_temp_fail()) return temp_fail(ctx, subject, owners.error);
  if (!authenticated) {
    if (!owners.is_found()) return {};
    return reply(ctx, 553, "7.1", subject + ": Sender address rejected: not logged in");
  }
  if (owners.is_found()) {
    for (const std::string& owner : split(owners.value, ", \t"))
      if (owner == s.sasl_username) return {};
  }
  return reply(ctx, 553, "7.1", subject + ": Sender address rejected: not owned by user " + s.sasl_username);
}

SmtpdPolicy::Impl::Outcome SmtpdPolicy::Impl::apply(const Restriction& r, const Context& ctx) const {
  const SmtpdSession& s = ctx.session;
  const Outcome permit{Outcome::Kind::kPermit, {}};
  bool sender_known = has_sender(ctx.stage);
  bool recipient_known = has_recipient(ctx.stage, s);
  // What a plain reject or defer refuses: the subject of the list it is in.
  auto list_subject = [&]() -> std::string {
    if (ctx.list == &helo) return "<" + s.helo_name + ">: Helo command";
    if (ctx.list == &sender) return address_subject(s.sender) + ": Sender address";
    if (ctx.list == &relay || ctx.list == &recipient) return address_subject(s.recipient) + ": Recipient address";
    if (ctx.list == &data) return "<DATA>: Data command";
    if (ctx.list == &end_of_data) return "<END-OF-MESSAGE>: End-of-data";
    return client_subject(s) + ": Client host";
  };
  switch (r.op) {
    case Op::kPermit:
      return permit;
    case Op::kDunno:
      return {};
    case Op::kReject:
      return reply(ctx, reject_code, "7.1", list_subject() + " rejected: Access denied");
    case Op::kDefer:
      return reply(ctx, defer_code, "3.2", list_subject() + " rejected: Try again later");
    case Op::kPermitMynetworks: {
      LookupResult found = mynetworks->match(s.client_address, s.client_name);
      if (found.is_temp_fail()) return temp_fail(ctx, client_subject(s), "mynetworks: " + found.error);
      return found.is_found() ? permit : Outcome{};
    }
    case Op::kPermitSaslAuthenticated:
      return s.sasl_username.empty() ? Outcome{} : permit;
    case Op::kRejectUnauthDestination:
    case Op::kDeferUnauthDestination:
      return unauth_destination(ctx, r.op == Op::kDeferUnauthDestination);
    case Op::kRejectUnlistedRecipient:
      return recipient_known ? unlisted(ctx, s.recipient, "Recipient") : Outcome{};
    case Op::kRejectUnlistedSender:
      return sender_known && !s.sender.empty() ? unlisted(ctx, s.sender, "Sender") : Outcome{};
    case Op::kRejectNonFqdnSender:
    case Op::kRejectNonFqdnRecipient: {
      bool is_sender = r.op == Op::kRejectNonFqdnSender;
      const std::string& address = is_sender ? s.sender : s.recipient;
      if (is_sender ? !sender_known || address.empty() : !recipient_known) return {};
      std::string domain = split_address(address).domain;
      if (domain.ends_with('.')) domain.pop_back();
      if (is_address_literal(domain) || (domain.find('.') != std::string::npos && !domain.starts_with('.')))
        return {};
      return reply(ctx, non_fqdn_code, "5.2",
                   address_subject(address) + (is_sender ? ": Sender" : ": Recipient") +
                       " address rejected: need fully-qualified address");
    }
    case Op::kRejectNonFqdnHelo: {
      if (s.helo_name.empty() || is_address_literal(s.helo_name)) return {};
      std::string name = s.helo_name;
      if (name.ends_with('.')) name.pop_back();
      if (name.find('.') != std::string::npos && !name.starts_with('.')) return {};
      return reply(ctx, non_fqdn_code, "5.2", "<" + s.helo_name + ">: Helo command rejected: need fully-qualified hostname");
    }
    case Op::kRejectInvalidHelo: {
      if (s.helo_name.empty()) return {};
      bool valid = is_address_literal(s.helo_name) ? parse_ip(s.helo_name).has_value()
                                                   : is_valid_hostname(s.helo_name) || parse_ip(s.helo_name);
      if (valid) return {};
      return reply(ctx, invalid_hostname_code, "5.2", "<" + s.helo_name + ">: Helo command rejected: Invalid name");
    }
    case Op::kRejectUnknownSenderDomain:
      return sender_known && !s.sender.empty() ? unknown_domain(ctx, s.sender, true) : Outcome{};
    case Op::kRejectUnknownRecipientDomain:
      return recipient_known ? unknown_domain(ctx, s.recipient, false) : Outcome{};
    case Op::kRejectUnknownClientHostname:
      if (!s.client_name.empty() && s.client_name != "unknown") return {};
      return reply(ctx, unknown_client_code, "7.25",
                   "Client host rejected: cannot find your hostname, [" + s.client_address + "]");
    case Op::kRejectUnknownReverseClientHostname: {
      if (!s.client_name.empty() && s.client_name != "unknown") return {};
      auto names = resolver->lookup_ptr(s.client_address);
      if (names.found()) return {};
      if (names.temp_fail()) return temp_fail(ctx, client_subject(s), "PTR lookup: " + names.error);
      return reply(ctx, unknown_client_code, "7.25",
                   "Client host rejected: cannot find your reverse hostname, [" + s.client_address + "]");
    }
    case Op::kCheckClientAccess: {
      std::vector<std::string> keys;
      if (!s.client_name.empty() && s.client_name != "unknown") keys = domain_keys(s.client_name, access_parent_matches);
      for (std::string& key : client_address_keys(s.client_address)) keys.push_back(std::move(key));
      return access(ctx, *r.table, keys, client_subject(s), "Client host");
    }
    case Op::kCheckHeloAccess:
      if (s.helo_name.empty()) return {};
      return access(ctx, *r.table, domain_keys(s.helo_name, access_parent_matches), "<" + s.helo_name + ">",
                    "Helo command");
    case Op::kCheckSenderAccess:
      if (!sender_known) return {};
      return access(ctx, *r.table, address_access_keys(s.sender, true), address_subject(s.sender), "Sender address");
    case Op::kCheckRecipientAccess:
      if (!recipient_known) return {};
      return access(ctx, *r.table, address_access_keys(s.recipient, false), address_subject(s.recipient),
                    "Recipient address");
    case Op::kRejectRblClient:
      return rbl(ctx, r);
    case Op::kRejectSenderLoginMismatch:
    case Op::kRejectAuthenticatedSenderLoginMismatch:
      return login_mismatch(ctx, r.op == Op::kRejectSenderLoginMismatch);
    case Op::kRejectUnauthPipelining:
      if (!s.unauth_pipelining) return {};
      return reply(ctx, 503, "5.0", list_subject() + " rejected: Improper use of SMTP command pipelining");
  }
  return {};
}

SmtpdPolicy::SmtpdPolicy(const Config& config) : impl_(std::make_unique<Impl>(config)) {}
SmtpdPolicy::~SmtpdPolicy() = default;
SmtpdPolicy::SmtpdPolicy(SmtpdPolicy&&) noexcept = default;
SmtpdPolicy& SmtpdPolicy::operator=(SmtpdPolicy&&) noexcept = default;

PolicyVerdict SmtpdPolicy::check(SmtpdStage stage, const SmtpdSession& session) const {
  const Impl& p = *impl_;
  std::vector<const RestrictionList*> lists;
  switch (stage) {
    case SmtpdStage::kConnect:
      if (!p.delay_reject) lists = {&p.client};
      break;
    case SmtpdStage::kHelo:
      if (!p.delay_reject) lists = {&p.helo};
      break;
    case SmtpdStage::kMail:
      if (!p.delay_reject) lists = {&p.sender};
      break;
    case SmtpdStage::kRcpt:
      if (p.delay_reject) lists = {&p.client, &p.helo, &p.sender};
      lists.push_back(&p.relay);
      lists.push_back(&p.recipient);
      break;
    case SmtpdStage::kData:
      lists = {&p.data};
      break;
    case SmtpdStage::kEndOfData:
      lists = {&p.end_of_data};
      break;
  }
  // A permit ends one list only; the next list is still applied.
  for (const RestrictionList* list : lists) {
    if (auto verdict = p.run(*list, stage, session)) return *verdict;
    if (list == &p.sender && p.reject_unlisted_sender && !session.sender.empty()) {
      Impl::Context ctx{stage, session, nullptr, "smtpd_reject_unlisted_sender"};
      Impl::Outcome outcome = p.unlisted(ctx, session.sender, "Sender");
      if (outcome.kind == Impl::Outcome::Kind::kReply) return outcome.verdict;
    }
  }
  // Unknown recipients of our domains are refused even when a list permitted them.
  if (stage == SmtpdStage::kRcpt && p.reject_unlisted_recipient && !session.recipient.empty()) {
    Impl::Context ctx{stage, session, nullptr, "smtpd_reject_unlisted_recipient"};
    Impl::Outcome outcome = p.unlisted(ctx, session.recipient, "Recipient");
    if (outcome.kind == Impl::Outcome::Kind::kReply) return outcome.verdict;
  }
  return {};
}

}  // namespace postern
