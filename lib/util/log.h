// Logging in the form operators know from Postfix:
//   postern/SERVICE[pid]: QUEUEID: text        (syslog, facility mail)
// with "warning: ", "error: ", "fatal: " and "panic: " before the text by severity.
// Sinks: syslog (daemons' default), a file (maillog_file, for tests and `make run`;
// "/dev/stderr" means the terminal), and stderr in the short form "postmap: text"
// for command-line tools, which also log to syslog.
#pragma once

#include <string>
#include <string_view>

namespace postern {

enum class LogSink { kSyslog, kFile, kCommandLine };

// program is the service name ("smtpd", "postmap"); it appears as postern/program.
void log_init(std::string_view program, LogSink sink, const std::string& file = {});
void log_set_verbose(int level);
int log_verbose();
const std::string& log_program();

void log_debug(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
void log_error(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
// A failure the process cannot go on from: logs and exits 1 (master restarts a daemon).
[[noreturn]] void log_fatal(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
// Exits with the given status (sysexits.h codes for command-line tools).
[[noreturn]] void log_fatal_status(int status, const char* fmt, ...) __attribute__((format(printf, 2, 3)));
// A bug: logs and aborts so that a core is left.
[[noreturn]] void log_panic(const char* fmt, ...) __attribute__((format(printf, 1, 2)));

}  // namespace postern
