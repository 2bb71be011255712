// The text formats tables are built from, as Postfix reads them:
//   postmap(1) source   "key whitespace value"; a key with white space is written
//                       in double quotes, with \" and \\ inside
//   aliases(5)          "name: value, value, ..."; a name with special characters
//                       in double quotes; values are addresses, /file/names,
//                       |command (or "|command args"), :include:/file/name
// Both: a line that begins with white space continues the previous one; empty
// lines and lines whose first non-blank character is '#' are skipped.
// A malformed line throws ConfigError "file:line: what"; nothing is skipped
// quietly, so a typo never makes a table silently lose an entry.
#pragma once

#include "util/logical_lines.h"

#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace postern {

struct SourceEntry {
  std::string key;    // as written (case folding is the caller's choice)
  std::string value;  // trimmed; for aliases the list rejoined as "a, b, c"
  int line = 0;       // where the entry begins
};


enum class SourceFormat { kMap, kAliases };

std::vector<SourceEntry> parse_source(SourceFormat format, std::string_view text, const std::string& file);

}  // namespace postern
