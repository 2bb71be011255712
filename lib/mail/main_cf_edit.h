// Editing main.cf in place, as postconf -e and -X do: a parameter's logical line
// (with its continuation lines) is replaced or removed, comments and order are kept,
// a new parameter is appended, and the file is replaced atomically. An edit that
// would add a configuration error is refused and the file is left as it was.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace postern {

struct MainCfEdit {
  std::string name;
  std::optional<std::string> value;  // nothing: remove the parameter
};

// Returns main.cf text with the edits applied (pure; for tests).
std::string apply_main_cf_edits(const std::string& text, const std::vector<MainCfEdit>& edits);
// Applies the edits to DIR/main.cf; throws ConfigError naming what the edit would break.
void edit_main_cf(const std::string& config_dir, const std::vector<MainCfEdit>& edits);

}  // namespace postern
