// The openers of every table type, one per type, called only by open_table()
// in table.cc, which keeps the one registry of type names. Each takes the part
// of "type:name" after the colon. Private to lib/mail.
#pragma once

#include <memory>
#include <string_view>

#include "mail/table.h"

namespace postern {

using TableOpener = std::unique_ptr<Table> (*)(std::string_view name, const TableOptions& options);

std::unique_ptr<Table> open_hash_table(std::string_view name, const TableOptions& options);      // table_db.cc
std::unique_ptr<Table> open_btree_table(std::string_view name, const TableOptions& options);     // table_db.cc
std::unique_ptr<Table> open_texthash_table(std::string_view name, const TableOptions& options);  // table_text.cc
std::unique_ptr<Table> open_inline_table(std::string_view name, const TableOptions& options);    // table_text.cc
std::unique_ptr<Table> open_static_table(std::string_view name, const TableOptions& options);    // table_text.cc
std::unique_ptr<Table> open_regexp_table(std::string_view name, const TableOptions& options);    // table_regexp.cc
std::unique_ptr<Table> open_mysql_table(std::string_view name, const TableOptions& options);     // table_mysql.cc

}  // namespace postern
