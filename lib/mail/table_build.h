// What postmap, postalias and newaliases do, in one place: build a hash: or
// btree: table from its source file, add to one (-i), delete keys (-d), query any
// table type (-q), list one (-s). The programs' mains only say which command runs.
//
// A table file is only ever replaced whole (see table_db.h): a source with an
// error, a failed write or an interrupted run leaves the old NAME.db as it was.
#pragma once

#include <set>
#include <string>
#include <string_view>

#include "mail/table_source.h"

namespace postern {

enum class Duplicates {
  kWarn,     // keep the first, with a warning naming file:line (the default)
  kReplace,  // -r: the last one wins
  kIgnore,   // -w: keep the first, quietly
};

struct BuildOptions {
  SourceFormat format = SourceFormat::kMap;
  bool fold_case = true;  // -f turns off: keys stored as written
  Duplicates duplicates = Duplicates::kWarn;
  bool nul = true;  // -n turns off: keys and values stored without a trailing NUL
};

// Builds NAME.db from the source file NAME, for spec "hash:NAME" or "btree:NAME".
// The new file gets the group and other read permissions of the source.
void build_table(std::string_view spec, const BuildOptions& options);
// Adds the entries of text (a source read from source_name) to NAME.db, which is
// created when missing (postmap -i).
void update_table(std::string_view spec, std::string_view text, const std::string& source_name,
                  const BuildOptions& options);
// Deletes the entries with these keys (as stored: fold them first as the table
// was built); returns how many there were.
size_t delete_from_table(std::string_view spec, const std::set<std::string, std::less<>>& keys,
                         const BuildOptions& options);

enum class TableCommand { kPostmap, kPostalias, kNewaliases };

// Runs a whole command line of postmap, postalias or newaliases; returns the exit
// status (sysexits.h codes on errors; for -q: 0 found, 1 not found, 75 temporary failure).
int run_table_command(TableCommand command, int argc, char** argv);

}  // namespace postern
