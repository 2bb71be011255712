// The one place a command-line tool turns an escaped error into its exit status
// (sysexits.h) and a "program: fatal: what" line: a wrong command line is
// EX_USAGE, a bad configuration or table source EX_CONFIG, a failed system call
// EX_IOERR. Tools write their logic as a function that returns the exit status.
#pragma once

#include <sysexits.h>

#include "util/error.h"
#include "util/log.h"

namespace postern {

template <typename Body>
int run_command_line(Body&& body) {
  try {
    return body();
  } catch (const UsageError& e) {
    log_fatal_status(EX_USAGE, "%s", e.what());
  } catch (const ConfigError& e) {
    log_fatal_status(EX_CONFIG, "%s", e.what());
  } catch (const SystemError& e) {
    log_fatal_status(EX_IOERR, "%s", e.what());
  }
}

// The whole of a tool's main: parse() reads the command line (a UsageError prints
// usage() and exits EX_USAGE), then run(parsed) does the work as above.
template <typename Parse, typename Usage, typename Run>
int run_command_line(Parse&& parse, Usage&& usage, Run&& run) {
  decltype(parse()) parsed;
  try {
    parsed = parse();
  } catch (const UsageError& e) {
    usage();
    log_fatal_status(EX_USAGE, "%s", e.what());
  }
  return run_command_line([&] { return run(parsed); });
}

}  // namespace postern
