// postpasswd: makes a password hash for auth_password_maps, as doveadm pw does.
//   postpasswd [-s scheme] [-p]
// Asks for the password twice on the terminal, without echo, and prints its hash
// on standard output, ready to be the value of a table entry:
//   alice@example.com   $y$j9T$...
// The password is never taken from the command line, where other users could see
// it in the process list.
//
// Options:
//   -s scheme   yescrypt (the default), bcrypt (also BLF-CRYPT) or sha512-crypt
//               (also SHA512-CRYPT); each hash gets a fresh random salt.
//   -p          read the password from standard input instead of the terminal: one
//               line, asked once, its line end removed (for scripts).
// An empty password, two entries that differ, or a password crypt(3) cannot take
// (NUL, over 511 bytes) is refused with a message on standard error and exit
// status 1; a wrong command line exits 64.
#include <fcntl.h>
#include <signal.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <optional>
#include <string>

#include "util/cli.h"
#include "util/fd.h"
#include "util/log.h"
#include "util/password_hash.h"
#include "util/strings.h"

namespace postern {
namespace {

struct CommandLine {
  HashScheme scheme = HashScheme::kYescrypt;
  bool from_stdin = false;
};

void usage() { std::fprintf(stderr, "usage: postpasswd [-s yescrypt|bcrypt|sha512-crypt] [-p]\n"); }

CommandLine parse(int argc, char** argv) {
  CommandLine cl;
  opterr = 0;
  int c;
  while ((c = getopt(argc, argv, "ps:")) != -1) {
    switch (c) {
      case 'p': cl.from_stdin = true; break;
      case 's': {
        auto scheme = parse_hash_scheme(optarg);
        if (!scheme) throw UsageError(format("unknown scheme '%s' (yescrypt, bcrypt or sha512-crypt)", optarg));
        cl.scheme = *scheme;
        break;
      }
      default:
        throw UsageError(optopt == 's' ? "option -s needs a scheme" : format("unknown option -%c", optopt));
    }
  }
  if (optind < argc) throw UsageError("the password is never taken from the command line; use -p to pipe it in");
  return cl;
}

// The terminal with echo turned off for as long as this lives, and on again if a
// signal ends the program meanwhile.
class NoEcho {
 public:
  explicit NoEcho(int fd) : fd_(fd) {
    if (::tcgetattr(fd_, &saved_) < 0) throw SystemError(errno, "the terminal");
    saved_fd_ = fd_;
    saved_copy_ = saved_;
    struct sigaction sa {};
    sa.sa_handler = &NoEcho::restore_and_die;
    for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGQUIT}) ::sigaction(sig, &sa, nullptr);
    struct termios quiet = saved_;
    quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
    quiet.c_lflag |= ECHONL;
    if (::tcsetattr(fd_, TCSAFLUSH, &quiet) < 0) throw SystemError(errno, "the terminal");
  }
  ~NoEcho() { ::tcsetattr(fd_, TCSAFLUSH, &saved_); }
  NoEcho(const NoEcho&) = delete;
  NoEcho& operator=(const NoEcho&) = delete;

 private:
  static void restore_and_die(int sig) {
    ::tcsetattr(saved_fd_, TCSAFLUSH, &saved_copy_);
    ::signal(sig, SIG_DFL);
    ::raise(sig);
  }
  static inline int saved_fd_ = -1;
  static inline struct termios saved_copy_ {};
  int fd_;
  struct termios saved_;
};

// One line from fd, without its line end; nothing at end of input.
std::optional<std::string> read_line(int fd) {
  std::string line;
  char c;
  for (;;) {
    ssize_t n = retry_eintr([&] { return ::read(fd, &c, 1); });
    if (n < 0) throw SystemError(errno, "reading the password");
    if (n == 0) {
      if (line.empty()) return std::nullopt;
      break;
    }
    if (c == '\n') break;
    line += c;
  }
  if (!line.empty() && line.back() == '\r') line.pop_back();
  return line;
}

std::string ask(int tty, const char* prompt) {
  if (::write(tty, prompt, std::strlen(prompt)) < 0) throw SystemError(errno, "the terminal");
  auto line = read_line(tty);
  if (!line) throw SystemError(EIO, "the terminal closed");
  return *line;
}

int run(const CommandLine& cl) {
  std::string password;
  if (cl.from_stdin) {
    auto line = read_line(STDIN_FILENO);
    if (!line) log_fatal("no password on standard input");
    password = *line;
  } else {
    UniqueFd tty(::open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC));
    if (!tty.valid()) log_fatal("no terminal to ask for the password on; use -p to read it from standard input");
    std::string again;
    {
      NoEcho quiet(tty.get());
      password = ask(tty.get(), "Enter new password: ");
      again = ask(tty.get(), "Retype new password: ");
    }
    if (password != again) log_fatal("the passwords do not match");
  }
  if (password.empty()) log_fatal("an empty password is not allowed");
  auto hash = hash_password(password, cl.scheme);
  if (!hash) log_fatal("%s", hash.error().c_str());
  std::printf("%s\n", hash->c_str());
  return std::fflush(stdout) == 0 ? 0 : EX_IOERR;
}

}  // namespace
}  // namespace postern

int main(int argc, char** argv) {
  postern::log_init("postpasswd", postern::LogSink::kCommandLine);
  return postern::run_command_line([&] { return postern::parse(argc, argv); }, postern::usage,
                                   [](const postern::CommandLine& cl) { return postern::run(cl); });
}
