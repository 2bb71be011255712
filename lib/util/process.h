// Running another program and waiting for it: fork + execv with the arguments as
// they are (never a shell), for tools that call system commands such as useradd.
#pragma once

#include <string>
#include <vector>

namespace postern {

// Runs argv[0] (an absolute path) with argv and waits for it.  Returns its exit
// status, 128 + N when signal N killed it, or 127 when it could not be started.
// Standard input is /dev/null; standard output and error are inherited.
int run_program(const std::vector<std::string>& argv);

}  // namespace postern
