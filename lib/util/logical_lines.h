// Postfix's logical lines, shared by main.cf, master.cf, table sources and
// mysql_table files: blank lines and lines whose first non-blank character is '#'
// are skipped, and a line that begins with white space continues the one before
// (joined by one space). Errors name "file:line".
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <utility>

namespace postern {

// Calls fn(text, first_line_number) for each logical line, trimmed.
void for_each_logical_line(std::string_view text, const std::string& file,
                           const std::function<void(std::string_view line, int number)>& fn);

// Splits "name = value" (name of letters, digits and '_'); `what` names the left
// side in errors ("parameter", "attribute").
std::pair<std::string, std::string> split_assignment(std::string_view line, const std::string& file, int number,
                                                     std::string_view what);

}  // namespace postern
