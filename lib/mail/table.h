// Lookup tables behind one interface, opened by "type:name" as in Postfix:
//   hash:/path, btree:/path   Berkeley DB files built by postmap/postalias (path.db)
//   texthash:/path            a postmap source file read into memory
//   inline:{k1=v1, {k2 = v 2}}, static:value, static:{value with spaces}
//   regexp:/path              POSIX extended expressions, Postfix regexp_table syntax
//   mysql:/path/to/file.cf    MariaDB, Postfix mysql_table(5) keys
// Every lookup ends in one of three ways: found, not found, or a temporary failure
// (the database is down) that callers turn into a 4xx reply or a deferral.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "mail/config.h"

namespace postern {

enum class LookupStatus { kFound, kNotFound, kTempFail };

struct LookupResult {
  LookupStatus status = LookupStatus::kNotFound;
  std::string value;  // when found
  std::string error;  // when a temporary failure: why, for the log and the 4xx text

  static LookupResult found(std::string value) { return {LookupStatus::kFound, std::move(value), {}}; }
  static LookupResult not_found() { return {}; }
  static LookupResult temp_fail(std::string why) { return {LookupStatus::kTempFail, {}, std::move(why)}; }
  bool is_found() const { return status == LookupStatus::kFound; }
  bool is_temp_fail() const { return status == LookupStatus::kTempFail; }
};

struct TableOptions {
  bool fold_case = true;  // look keys up in lower case (postmap -f turns this off)
};

class Table {
 public:
  virtual ~Table() = default;
  Table(const Table&) = delete;
  Table& operator=(const Table&) = delete;

  // Looks key up, folded to lower case unless the table was opened with fold_case off.
  LookupResult lookup(std::string_view key);
  // Calls fn for every entry (postmap -s); throws UsageError for types that cannot list.
  virtual void for_each(const std::function<void(std::string_view key, std::string_view value)>& fn);
  const std::string& spec() const { return spec_; }

 protected:
  Table(std::string spec, const TableOptions& options) : spec_(std::move(spec)), options_(options) {}
  virtual LookupResult do_lookup(const std::string& key) = 0;

 private:
  std::string spec_;
  TableOptions options_;
};

// Opens "type:name". A spec without a type, a type we do not know, or a source
// that is wrong throws ConfigError ("file:line: what" where there is a line).
// A database that cannot be reached is not an error here: its lookups fail temporarily.
std::unique_ptr<Table> open_table(std::string_view spec, const TableOptions& options = {});
// The table types open_table() knows, in the order postconf -m lists them.
std::vector<std::string_view> table_type_names();

// A list of tables searched in order, as Postfix parameters like alias_maps hold:
// "hash:/etc/aliases, mysql:/etc/postern/aliases.cf". The first table that finds
// the key answers; a temporary failure stops the search (a later table must not
// answer for a key an earlier one might hold).
class TableList {
 public:
  TableList() = default;
  explicit TableList(std::string_view specs, const TableOptions& options = {});
  void add(std::unique_ptr<Table> table) { tables_.push_back(std::move(table)); }
  LookupResult lookup(std::string_view key);
  bool empty() const { return tables_.empty(); }
  const std::vector<std::unique_ptr<Table>>& tables() const { return tables_; }

 private:
  std::vector<std::unique_ptr<Table>> tables_;
};

// The tables a main.cf parameter names; a bad table name is a ConfigError at the
// parameter's line.
TableList tables_of(const Config& config, std::string_view param);

}  // namespace postern
