// run_program(): fork, execv, waitpid.
#include "util/process.h"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util/error.h"

namespace postern {

int run_program(const std::vector<std::string>& argv) {
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = check_sys(::fork(), "fork");
  if (pid == 0) {
    int null = ::open("/dev/null", O_RDONLY);
    if (null >= 0) ::dup2(null, STDIN_FILENO);
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  int status = 0;
  check_sys(retry_eintr([&] { return ::waitpid(pid, &status, 0); }), "waitpid");
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return WEXITSTATUS(status);
}

}  // namespace postern
