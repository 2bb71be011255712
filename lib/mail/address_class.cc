// Domains in two address classes (see address_class.h).
#include "mail/address_class.h"

#include <memory>
#include <set>

#include "mail/table.h"
#include "util/error.h"
#include "util/strings.h"

namespace postern {
namespace {

constexpr const char* kClassParams[] = {"mydestination", "virtual_alias_domains", "virtual_mailbox_domains",
                                        "relay_domains"};

struct DomainClassList {
  std::string param;
  std::string where;  // "main.cf:LINE" of the parameter, or "default"
  std::set<std::string> names;
  std::vector<std::unique_ptr<Table>> tables;

  // Whether domain is in this class: found, not found, or why it could not be told.
  LookupResult has(const std::string& domain) const {
    if (names.count(domain)) return LookupResult::found(domain);
    for (const auto& table : tables) {
      LookupResult r = table->lookup(domain);
      if (r.status != LookupStatus::kNotFound) return r;
    }
    return LookupResult::not_found();
  }
};

DomainClassList load(const Config& config, const std::string& param) {
  DomainClassList list;
  list.param = param;
  const Config::Entry* entry = config.entry(param);
  list.where = entry ? entry->file + ":" + std::to_string(entry->line) : "default";
  for (const std::string& item : config.list(param)) {
    if (item.find(':') == std::string::npos) {
      if (!item.starts_with('.')) list.names.insert(lowercase(item));
      continue;
    }
    try {
      list.tables.push_back(open_table(item));
    } catch (const ConfigError& e) {
      if (!entry) throw;
      throw ConfigError(entry->file, entry->line, param + ": " + e.what());
    }
  }
  return list;
}

// The domain names a class lists: its own names and the keys of its listable tables.
std::set<std::string> listed_domains(const DomainClassList& list) {
  std::set<std::string> domains = list.names;
  for (const auto& table : list.tables) {
    try {
      table->for_each([&](std::string_view key, std::string_view) {
        if (key.find('@') == std::string_view::npos) domains.insert(lowercase(key));
      });
    } catch (const UsageError&) {  // mysql: and others cannot list; they are asked instead
    }
  }
  return domains;
}

}  // namespace

std::vector<std::string> domain_class_conflicts(const Config& config) {
  std::vector<DomainClassList> classes;
  for (const char* param : kClassParams) classes.push_back(load(config, param));
  std::vector<std::string> problems;
  std::set<std::pair<std::string, std::string>> reported;  // domain, pair of classes
  std::set<size_t> unreachable;                             // classes whose lookups failed (reported once)
  for (size_t a = 0; a < classes.size(); ++a) {
    for (const std::string& domain : listed_domains(classes[a])) {
      for (size_t b = 0; b < classes.size(); ++b) {
        if (a == b) continue;
        LookupResult r = classes[b].has(domain);
        std::string pair = classes[std::min(a, b)].param + " " + classes[std::max(a, b)].param;
        if (r.is_temp_fail()) {
          if (unreachable.insert(b).second)
            problems.push_back(classes[b].where + ": cannot tell whether " + domain + " is in " +
                               classes[b].param + ": " + r.error);
        } else if (r.is_found() && reported.insert({domain, pair}).second) {
          problems.push_back(classes[a].where + ": domain " + domain + " is in both " + classes[a].param + " and " +
                             classes[b].param + " (a domain belongs to one address class only)");
        }
      }
    }
  }
  return problems;
}

}  // namespace postern
