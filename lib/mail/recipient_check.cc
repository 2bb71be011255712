// Domain classes and known recipients (see recipient_check.h).
#include "mail/recipient_check.h"

#include <pwd.h>

#include <vector>

#include "mail/address.h"
#include "mail/address_keys.h"
#include "util/error.h"
#include "util/log.h"
#include "util/network.h"
#include "util/strings.h"

namespace postern {

namespace {

constexpr std::string_view kPasswdTable = "unix:passwd.byname";

// A list of domains as Postfix writes one: names, ".name" for subdomains (and,
// when parent_matches, a name matches its subdomains too), and type:table
// entries in which the domain is looked up.
class DomainList {
 public:
  DomainList(const Config& config, std::string_view param, bool parent_matches)
      : parent_matches_(parent_matches) {
    for (const std::string& item : config.list(param)) {
      if (item.find(':') != std::string::npos) {
        tables_.add(open_param_table(config, param, item));
      } else {
        names_.push_back(lowercase(item));
      }
    }
  }

  LookupResult match(const std::string& domain) const {
    for (const std::string& name : names_) {
      if (name == domain) return LookupResult::found(name);
      if (name.starts_with('.') || parent_matches_) {
        std::string suffix = name.starts_with('.') ? name : "." + name;
        if (domain.size() > suffix.size() && domain.ends_with(suffix)) return LookupResult::found(name);
      }
    }
    if (tables_.empty()) return LookupResult::not_found();
    return tables_.lookup(domain);
  }

  static std::unique_ptr<Table> open_param_table(const Config& config, std::string_view param,
                                                 const std::string& spec) {
    const Config::Entry* entry = config.entry(param);
    return open_table_or_stand_in(spec, entry ? entry->file : config.main_cf_path(), entry ? entry->line : 0,
                                  std::string(param));
  }

 private:
  bool parent_matches_;
  std::vector<std::string> names_;
  mutable TableList tables_;
};

// Tables named by a *_maps parameter; local_recipient_maps may name the password file.
struct RecipientMaps {
  TableList tables;
  bool passwd = false;
  bool empty() const { return tables.empty() && !passwd; }

  RecipientMaps(const Config& config, std::string_view param) {
    for (const std::string& item : config.list(param)) {
      if (item == kPasswdTable) {
        passwd = true;
      } else {
        tables.add(DomainList::open_param_table(config, param, item));
      }
    }
  }
};

bool in_list(const std::vector<std::string>& list, std::string_view name) {
  for (const std::string& item : list)
    if (iequals(item, name)) return true;
  return false;
}

// A table that could not be opened: every lookup fails temporarily.
class UnavailableTable : public Table {
 public:
  UnavailableTable(std::string spec, std::string why) : Table(std::move(spec), {}), why_(std::move(why)) {}

 protected:
  LookupResult do_lookup(const std::string&) override { return LookupResult::temp_fail(why_); }

 private:
  std::string why_;
};

}  // namespace

std::unique_ptr<Table> open_table_or_stand_in(std::string_view spec, const std::string& file, int line,
                                              const std::string& what) {
  size_t colon = spec.find(':');
  std::string_view type = spec.substr(0, colon);
  bool known = false;
  for (std::string_view name : table_type_names()) known = known || (colon != std::string_view::npos && name == type);
  if (!known) throw ConfigError(file, line, what + ": not a type:table this server knows: " + std::string(spec));
  try {
    return open_table(spec);
  } catch (const ConfigError& e) {
    // inline: and static: tables are written in main.cf itself: their mistakes are main.cf's.
    if (type == "inline" || type == "static") throw ConfigError(file, line, what + ": " + e.what());
    log_warn("%s: %s: table unavailable, its lookups fail temporarily: %s", what.c_str(), std::string(spec).c_str(),
             e.what());
    return std::make_unique<UnavailableTable>(std::string(spec), std::string(spec) + " is unavailable");
  }
}

struct RecipientCheck::Impl {
  DomainList mydestination, virtual_alias_domains, virtual_mailbox_domains, relay_domains;
  std::vector<IpAddress> interfaces;  // [IP] literals that are ours
  RecipientMaps local_recipients, virtual_aliases, virtual_mailboxes, relay_recipients;
  std::string delimiters;
  int local_code, virtual_alias_code, virtual_mailbox_code, relay_code;

  explicit Impl(const Config& config)
      : mydestination(config, "mydestination", in_list(config.list("parent_domain_matches_subdomains"), "mydestination")),
        virtual_alias_domains(config, "virtual_alias_domains", false),
        virtual_mailbox_domains(config, "virtual_mailbox_domains", false),
        relay_domains(config, "relay_domains",
                      in_list(config.list("parent_domain_matches_subdomains"), "relay_domains")),
        local_recipients(config, "local_recipient_maps"),
        virtual_aliases(config, "virtual_alias_maps"),
        virtual_mailboxes(config, "virtual_mailbox_maps"),
        relay_recipients(config, "relay_recipient_maps"),
        delimiters(config.str("recipient_delimiter")),
        local_code(static_cast<int>(config.integer("unknown_local_recipient_reject_code"))),
        virtual_alias_code(static_cast<int>(config.integer("unknown_virtual_alias_reject_code"))),
        virtual_mailbox_code(static_cast<int>(config.integer("unknown_virtual_mailbox_reject_code"))),
        relay_code(static_cast<int>(config.integer("unknown_relay_recipient_reject_code"))) {
    interfaces = interface_addresses(config.list("inet_interfaces"));
  }

  // Looks an address up in maps: found, not found or a temporary failure.
  LookupResult find(RecipientMaps& maps, std::string_view address, bool local_part, bool catch_all) {
    AddressKeyOptions options{delimiters, local_part, catch_all};
    for (const std::string& key : address_keys(address, options)) {
      if (maps.passwd && key.find('@') == std::string::npos && ::getpwnam(key.c_str()))
        return LookupResult::found(key);
      if (maps.tables.empty()) continue;
      LookupResult result = maps.tables.lookup(key);
      if (result.status != LookupStatus::kNotFound) return result;
    }
    return LookupResult::not_found();
  }
};

RecipientCheck::RecipientCheck(const Config& config) : impl_(std::make_unique<Impl>(config)) {}
RecipientCheck::~RecipientCheck() = default;

DomainClassResult RecipientCheck::classify(std::string_view domain_text) const {
  std::string domain = lowercase(domain_text);
  if (!domain.empty() && domain.back() == '.') domain.pop_back();
  DomainClassResult result;
  if (domain.empty()) {
    result.domain_class = DomainClass::kLocal;
    return result;
  }
  if (domain.front() == '[') {
    auto ip = parse_ip(domain);
    for (const IpAddress& ours : impl_->interfaces)
      if (ip && *ip == ours) result.domain_class = DomainClass::kLocal;
    return result;
  }
  const std::pair<const DomainList*, DomainClass> order[] = {
      {&impl_->mydestination, DomainClass::kLocal},
      {&impl_->virtual_alias_domains, DomainClass::kVirtualAlias},
      {&impl_->virtual_mailbox_domains, DomainClass::kVirtualMailbox},
      {&impl_->relay_domains, DomainClass::kRelay},
  };
  for (const auto& [list, domain_class] : order) {
    LookupResult found = list->match(domain);
    if (found.is_temp_fail()) {
      result.temp_fail = true;
      result.error = found.error;
      return result;
    }
    if (found.is_found()) {
      result.domain_class = domain_class;
      return result;
    }
  }
  return result;
}

RecipientVerdict RecipientCheck::check(std::string_view address) const {
  Address parts = split_address(address);
  DomainClassResult domain = classify(parts.domain);
  RecipientVerdict verdict;
  auto failed = [&](std::string why) {
    verdict.status = RecipientVerdict::Status::kTempFail;
    verdict.reason = std::move(why);
    return verdict;
  };
  if (domain.temp_fail) return failed(domain.error);
  if (domain.domain_class == DomainClass::kOther) return verdict;
  // An alias makes any address known, whatever its domain's class.
  if (!impl_->virtual_aliases.empty()) {
    LookupResult alias = impl_->find(impl_->virtual_aliases, address, false, true);
    if (alias.is_temp_fail()) return failed(alias.error);
    if (alias.is_found()) return verdict;
  }
  RecipientMaps* maps = nullptr;
  const char* table = "";
  int code = 0;
  bool local_part = false;
  switch (domain.domain_class) {
    case DomainClass::kLocal:
      maps = &impl_->local_recipients, table = "local recipient table", code = impl_->local_code;
      local_part = true;
      break;
    case DomainClass::kVirtualAlias:
      maps = nullptr, table = "virtual alias table", code = impl_->virtual_alias_code;
      break;
    case DomainClass::kVirtualMailbox:
      maps = &impl_->virtual_mailboxes, table = "virtual mailbox table", code = impl_->virtual_mailbox_code;
      break;
    case DomainClass::kRelay:
      maps = &impl_->relay_recipients, table = "relay recipient table", code = impl_->relay_code;
      break;
    case DomainClass::kOther:
      break;
  }
  // An empty local_recipient_maps or relay_recipient_maps turns the check off, as in Postfix.
  if (maps && maps->empty()) return verdict;
  if (maps) {
    LookupResult found = impl_->find(*maps, address, local_part, !local_part);
    if (found.is_temp_fail()) return failed(found.error);
    if (found.is_found()) return verdict;
  }
  verdict.status = RecipientVerdict::Status::kUnknown;
  verdict.code = code;
  verdict.reason = std::string("User unknown in ") + table;
  return verdict;
}

}  // namespace postern
