// Logging to syslog, a file, or a terminal, in Postfix's line format.
#include "util/log.h"

#include <fcntl.h>
#include <sys/time.h>
#include <syslog.h>
#include <unistd.h>

#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <ctime>

#include "util/fd.h"

namespace postern {
namespace {

struct LogState {
  std::string program = "postern";
  std::string ident = "postern";  // syslog keeps a pointer to this
  LogSink sink = LogSink::kCommandLine;
  UniqueFd file;
  std::string hostname;
  int verbose = 0;
};

LogState& state() {
  static LogState s;
  return s;
}

void write_line(int fd, const std::string& line) {
  const char* p = line.data();
  size_t left = line.size();
  while (left > 0) {
    ssize_t n = ::write(fd, p, left);
    if (n < 0) return;  // nowhere left to report a logging failure
    p += n;
    left -= static_cast<size_t>(n);
  }
}

void emit(int priority, const char* prefix, const char* fmt, va_list ap) {
  LogState& s = state();
  char text[4096];
  std::vsnprintf(text, sizeof text, fmt, ap);
  switch (s.sink) {
    case LogSink::kSyslog:
      syslog(priority, "%s%s", prefix, text);
      break;
    case LogSink::kCommandLine: {
      syslog(priority, "%s%s", prefix, text);
      write_line(2, s.program + ": " + prefix + text + "\n");
      break;
    }
    case LogSink::kFile: {
      struct timeval tv;
      gettimeofday(&tv, nullptr);
      struct tm tm;
      localtime_r(&tv.tv_sec, &tm);
      char stamp[64];
      std::strftime(stamp, sizeof stamp, "%b %e %H:%M:%S", &tm);
      std::string line = std::string(stamp) + " " + s.hostname + " " + s.ident + "[" +
                         std::to_string(::getpid()) + "]: " + prefix + text + "\n";
      write_line(s.file.valid() ? s.file.get() : 2, line);
      break;
    }
  }
}

}  // namespace

void log_init(std::string_view program, LogSink sink, const std::string& file) {
  LogState& s = state();
  s.program = std::string(program);
  s.ident = "postern/" + s.program;
  s.sink = sink;
  char host[256] = "localhost";
  ::gethostname(host, sizeof host - 1);
  s.hostname = host;
  s.file.reset();
  if (sink == LogSink::kFile && !file.empty() && file != "/dev/stderr") {
    int fd = ::open(file.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd >= 0) s.file.reset(fd);
  }
  closelog();
  openlog(s.ident.c_str(), LOG_PID | LOG_NDELAY, LOG_MAIL);
}

void log_set_verbose(int level) { state().verbose = level; }
int log_verbose() { return state().verbose; }
const std::string& log_program() { return state().program; }

#define POSTERN_LOG_BODY(priority, prefix) \
  va_list ap;                              \
  va_start(ap, fmt);                       \
  emit(priority, prefix, fmt, ap);         \
  va_end(ap)

void log_debug(const char* fmt, ...) {
  if (state().verbose <= 0) return;
  POSTERN_LOG_BODY(LOG_DEBUG, "");
}
void log_info(const char* fmt, ...) { POSTERN_LOG_BODY(LOG_INFO, ""); }
void log_warn(const char* fmt, ...) { POSTERN_LOG_BODY(LOG_WARNING, "warning: "); }
void log_error(const char* fmt, ...) { POSTERN_LOG_BODY(LOG_ERR, "error: "); }
void log_fatal(const char* fmt, ...) {
  POSTERN_LOG_BODY(LOG_CRIT, "fatal: ");
  std::exit(1);
}
void log_fatal_status(int status, const char* fmt, ...) {
  POSTERN_LOG_BODY(LOG_CRIT, "fatal: ");
  std::exit(status);
}
void log_panic(const char* fmt, ...) {
  POSTERN_LOG_BODY(LOG_CRIT, "panic: ");
  std::abort();
}

}  // namespace postern
