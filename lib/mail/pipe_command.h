// Delivery to a command, as Postfix's local(8) does it: /bin/sh -c COMMAND in a
// process group of its own, as a given uid and gid (its primary group only), with
// a given environment and nothing else, the message on standard input, standard
// output and error collected (the first output_limit bytes) for the reason of a
// failure.  Address data never reaches the command line: the caller puts it in
// the environment (command_environment), where the shell does not parse it.
//
// When the time limit passes the whole process group is killed (SIGKILL).  A
// command that does not read all of its input is not an error: its exit status
// decides (as in Postfix).
//
// command_delivery_status turns what happened into a delivery result:
//   exit 0                    ok 2.0.0
//   EX_TEMPFAIL (75), EX_OSERR (71), a signal, the time limit, a failure to start
//                             defer 4.3.0
//   another sysexits(3) code  bounce with Postfix's code for it (EX_NOUSER 5.1.1,
//                             EX_NOPERM 5.7.0, ...), any other status bounce 5.3.0
// with the reason "Command died with status N: "cmd". Command output: ...".
#pragma once

#include <sys/types.h>

#include <chrono>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "mail/mailbox.h"

namespace postern {

struct CommandRun {
  std::string command;                   // given to /bin/sh -c
  std::vector<std::string> environment;  // "NAME=value", all the command gets
  uid_t uid = 0;
  gid_t gid = 0;
  std::string directory = "/";           // working directory ("/" when it cannot be entered)
  std::string_view input;                // standard input (not copied: keep it alive)
  std::chrono::seconds time_limit{1000};
  size_t output_limit = 2048;            // bytes of output kept
};

struct CommandOutcome {
  enum class End { kExited, kSignaled, kTimedOut, kNotStarted } end = End::kNotStarted;
  int status = 0;       // exit status or signal number
  std::string output;   // the first output_limit bytes of standard output and error
  std::string error;    // kNotStarted: why
};

CommandOutcome run_command(const CommandRun& run);

// What the caller knows about the delivery, for the environment local(8) documents.
struct CommandContext {
  std::string home, logname, shell;  // of the user whose rights the command has
  std::string sender;                // envelope sender, "" for the null sender
  std::string recipient;             // the address being delivered
  std::string local, domain, extension;
  std::string original_recipient;    // before any aliasing
};

// HOME, LOGNAME, USER, SHELL, SENDER, RECIPIENT, LOCAL, DOMAIN, EXTENSION (when
// there is one), ORIGINAL_RECIPIENT, and the export_environment names: a bare
// NAME passes on the value local has, NAME=value sets it.
std::vector<std::string> command_environment(const CommandContext& context, const std::vector<std::string>& exported,
                                             const std::map<std::string, std::string>& inherited);

MailboxResult command_delivery_status(const std::string& command, const CommandOutcome& outcome);

}  // namespace postern
