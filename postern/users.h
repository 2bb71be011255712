// `postern user ...` and `postern domain ...`: hosted users and domains in the
// database that virtual_user_database names (see users.cc for the commands).
#pragma once

#include <string>
#include <vector>

namespace postern {

// Whether args (the words after the options) are a user or domain command.
bool is_user_admin_command(const std::vector<std::string>& args);
// Runs one; returns the exit status. Throws UsageError for a wrong command line.
int run_user_admin(const std::string& config_dir, const std::vector<std::string>& args);

}  // namespace postern
