// The Table interface, the registry that maps a type name to its opener, and
// TableList, the ordered search that parameters such as alias_maps describe.
#include "mail/table.h"

#include <array>
#include <vector>

#include "mail/table_types.h"
#include "util/error.h"
#include "util/strings.h"

namespace postern {
namespace {

struct TableType {
  std::string_view name;
  TableOpener open;
};

// Every table type Postern knows. Adding a type means adding its line here.
constexpr std::array kTableTypes{
    TableType{"hash", open_hash_table},         TableType{"btree", open_btree_table},
    TableType{"texthash", open_texthash_table}, TableType{"inline", open_inline_table},
    TableType{"static", open_static_table},     TableType{"regexp", open_regexp_table},
    TableType{"mysql", open_mysql_table},
};

}  // namespace

LookupResult Table::lookup(std::string_view key) {
  return do_lookup(options_.fold_case ? lowercase(key) : std::string(key));
}

void Table::for_each(const std::function<void(std::string_view, std::string_view)>&) {
  std::string_view type = std::string_view(spec_).substr(0, spec_.find(':'));
  throw UsageError(std::string(type) + " tables cannot be listed");
}

std::unique_ptr<Table> open_table(std::string_view spec, const TableOptions& options) {
  size_t colon = spec.find(':');
  if (colon == std::string_view::npos || colon == 0)
    throw ConfigError("table spec " + std::string(spec), 0, "expected type:name");
  std::string_view type = spec.substr(0, colon);
  for (const TableType& t : kTableTypes)
    if (t.name == type) return t.open(spec.substr(colon + 1), options);
  throw ConfigError(std::string(spec), 0, "unsupported table type: " + std::string(type));
}

std::vector<std::string_view> table_type_names() {
  std::vector<std::string_view> names;
  for (const TableType& t : kTableTypes) names.push_back(t.name);
  return names;
}

TableList::TableList(std::string_view specs, const TableOptions& options) {
  for (const std::string& spec : split_list(specs)) tables_.push_back(open_table(spec, options));
}

LookupResult TableList::lookup(std::string_view key) {
  for (const auto& table : tables_) {
    LookupResult r = table->lookup(key);
    if (r.status != LookupStatus::kNotFound) return r;
  }
  return LookupResult::not_found();
}

TableList tables_of(const Config& config, std::string_view param) {
  try {
    return TableList(config.str(param));
  } catch (const ConfigError& e) {
    if (!config.entry(param)) throw;
    throw config.error_in(param, e.what());
  }
}

}  // namespace postern
