// What postcat, postsuper and postqueue share: finding the spool from the
// configuration, finding a message by the queue ID a user typed, the
// per-message status logs (bounce, defer, trace), and the time format of mailq.
//
// Every queue ID that comes from a command line or standard input goes through
// checked_queue_id() before anything turns it into a path, so "../x" or "a/b"
// can never name a file outside the queues.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "mail/queue_file.h"

namespace postern {

// queue_directory of the configuration in config_dir ("" = POSTERN_CONFIG_DIR or
// the default).  Throws ConfigError.
std::string spool_of(const std::string& config_dir);

// The queue named on a command line ("deferred"), or nothing.
std::optional<QueueName> queue_named(std::string_view name);

// The ID itself when it is a well-formed queue ID; UsageError otherwise.
std::string checked_queue_id(std::string_view id);
// IDs read from standard input, one a line (blank lines ignored), each checked.
std::vector<std::string> queue_ids_from_stdin();

struct MessageLocation {
  QueueName queue;
  std::string path;
};
// The first of queues that holds the message (id must be valid).
std::optional<MessageLocation> find_message(const std::string& spool, std::string_view id,
                                            const std::vector<QueueName>& queues);

// The per-message status logs, in folders of these names under queue_directory.
inline constexpr std::string_view kStatusLogFolders[] = {"bounce", "defer", "trace"};
std::string status_log_path(const std::string& spool, std::string_view folder, std::string_view id);
// Removes the message's status logs; a missing one is not an error.  Throws SystemError.
void remove_status_logs(const std::string& spool, std::string_view id,
                        std::initializer_list<std::string_view> folders = {"bounce", "defer", "trace"});

// One block of a status log (bounce/ID, defer/ID, trace/ID): Postfix's flat
// form, one "name=value" line per field, blocks separated by an empty line.
// Names written: recipient, orcpt, notify, offset, status, action, reason,
// diagnostic;
// a reader ignores other names and blocks without a recipient.  Values are kept
// on one line (CR and LF become spaces).
struct StatusRecord {
  std::string recipient;
  std::string orcpt;    // DSN ORCPT "addr-type;address", or empty
  int notify = 0;       // DsnNotify bits
  int64_t offset = 0;   // of the recipient's record in the queue file
  std::string status;   // enhanced status code, "5.1.1"
  std::string action;   // DSN Action: "failed", "delayed", "delivered", "expanded"
  std::string reason;   // as the sender will see it
  std::string diagnostic;  // DSN Diagnostic-Code "type; text" (a remote reply), or empty
};
std::string format_status_block(const StatusRecord& record);
std::vector<StatusRecord> parse_status_log(std::string_view text);
// The records of a message's log in folder; empty when there is none.  Throws SystemError.
std::vector<StatusRecord> read_status_log(const std::string& spool, std::string_view folder, std::string_view id);
// Appends records to the message's log in folder, and fsyncs it when durable
// (before a bounced recipient is marked done, so its notice cannot be lost).
// Throws SystemError.
void append_status_log(const std::string& spool, std::string_view folder, std::string_view id,
                       const std::vector<StatusRecord>& records, bool durable);

// Whether the sender was warned that the message is delayed: a block
// "delay_warning=sent" in defer/ID (no recipient, so readers of the log skip it).
// record_delay_warning appends it and fsyncs.  Both throw SystemError.
bool delay_warning_sent(const std::string& spool, std::string_view id);
void record_delay_warning(const std::string& spool, std::string_view id);

// Why recipients were deferred, by recipient address, from the defer log: the
// reason of the newest block for each recipient.  A missing log gives an empty map.
std::map<std::string, std::string> defer_reasons(const std::string& spool, std::string_view id);

// "Mon Nov 23 12:34:56" in local time, as mailq prints the arrival time.
std::string short_time(int64_t seconds);
// "Mon Nov 23 12:34:56 2020", as postcat prints it.
std::string long_time(int64_t seconds);

// The queue manager's trigger socket: queue_directory/public/qmgr.
std::string qmgr_socket_path(const std::string& spool);

}  // namespace postern
