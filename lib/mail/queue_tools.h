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

// Why recipients were deferred, by recipient address, from the defer log.  The
// log holds Postfix's flat form: one block of "name=value" lines per event,
// blocks separated by an empty line, with recipient= and reason= (other names
// are ignored); a later block for the same recipient replaces an earlier one.
// A missing log gives an empty map.
std::map<std::string, std::string> defer_reasons(const std::string& spool, std::string_view id);

// "Mon Nov 23 12:34:56" in local time, as mailq prints the arrival time.
std::string short_time(int64_t seconds);
// "Mon Nov 23 12:34:56 2020", as postcat prints it.
std::string long_time(int64_t seconds);

// The queue manager's trigger socket: queue_directory/public/qmgr.
std::string qmgr_socket_path(const std::string& spool);

}  // namespace postern
