// The error types shared by every part of Postern.
//   SystemError  - a system call failed (carries errno).
//   ConfigError  - configuration or table source is wrong; what() reads "file:line: what".
//   UsageError   - a command line is wrong.
#pragma once

#include <cerrno>
#include <stdexcept>
#include <string>
#include <system_error>

namespace postern {

class SystemError : public std::system_error {
 public:
  SystemError(int err, const std::string& what)
      : std::system_error(err, std::generic_category(), what) {}
  int error() const noexcept { return code().value(); }
};

// Throws SystemError(errno) when ret is negative; returns ret otherwise.
template <typename T>
T check_sys(T ret, const std::string& what) {
  if (ret < 0) throw SystemError(errno, what);
  return ret;
}

// Retries a system call interrupted by a signal.
template <typename F>
auto retry_eintr(F&& call) {
  for (;;) {
    auto ret = call();
    if (!(ret < 0 && errno == EINTR)) return ret;
  }
}

class ConfigError : public std::runtime_error {
 public:
  ConfigError(const std::string& file, int line, const std::string& what)
      : std::runtime_error(line > 0 ? file + ":" + std::to_string(line) + ": " + what
                                    : file + ": " + what),
        file_(file), line_(line) {}
  const std::string& file() const noexcept { return file_; }
  int line() const noexcept { return line_; }

 private:
  std::string file_;
  int line_;
};

class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace postern
