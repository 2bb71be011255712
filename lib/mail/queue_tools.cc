// Helpers of the queue tools (postcat, postsuper, postqueue).
#include "mail/queue_tools.h"

#include <unistd.h>

#include <cerrno>
#include <ctime>
#include <iostream>
#include <sys/stat.h>

#include "mail/config.h"
#include "mail/queue_id.h"
#include "util/error.h"
#include "util/file.h"
#include "util/strings.h"

namespace postern {

std::string spool_of(const std::string& config_dir) {
  Config config = Config::load(Config::choose_dir(config_dir));
  std::string spool = config.str("queue_directory");
  if (spool.empty()) throw ConfigError(config.main_cf_path(), 0, "queue_directory is empty");
  return spool;
}

std::optional<QueueName> queue_named(std::string_view name) {
  for (QueueName q : kAllQueues)
    if (queue_folder(q) == name) return q;
  return std::nullopt;
}

std::string checked_queue_id(std::string_view id) {
  if (!is_valid_queue_id(id)) {
    std::string shown;
    for (char c : id.substr(0, 64)) shown += (c >= 0x20 && c < 0x7f) ? c : '?';
    throw UsageError("invalid queue ID: \"" + shown + "\"");
  }
  return std::string(id);
}

std::vector<std::string> queue_ids_from_stdin() {
  std::vector<std::string> ids;
  std::string line;
  while (std::getline(std::cin, line)) {
    std::string_view id = trim(line);
    if (!id.empty()) ids.push_back(checked_queue_id(id));
  }
  if (std::cin.bad()) throw SystemError(EIO, "read standard input");
  return ids;
}

std::optional<MessageLocation> find_message(const std::string& spool, std::string_view id,
                                            const std::vector<QueueName>& queues) {
  for (QueueName q : queues) {
    std::string path = queue_file_path(spool, q, id);
    struct stat st;
    if (::lstat(path.c_str(), &st) == 0) return MessageLocation{q, path};
  }
  return std::nullopt;
}

std::string status_log_path(const std::string& spool, std::string_view folder, std::string_view id) {
  return spool + "/" + std::string(folder) + "/" + checked_queue_id(id);
}

void remove_status_logs(const std::string& spool, std::string_view id,
                        std::initializer_list<std::string_view> folders) {
  for (std::string_view folder : folders) {
    std::string path = status_log_path(spool, folder, id);
    if (::unlink(path.c_str()) < 0 && errno != ENOENT) throw SystemError(errno, "remove " + path);
  }
}

std::map<std::string, std::string> defer_reasons(const std::string& spool, std::string_view id) {
  std::map<std::string, std::string> reasons;
  std::string path = status_log_path(spool, "defer", id);
  UniqueFd fd = open_file_if_exists(path, O_RDONLY);
  if (!fd.valid()) return reasons;
  std::string text = read_fd(fd.get());
  std::string recipient, reason;
  auto end_block = [&] {
    if (!recipient.empty() && !reason.empty()) reasons[recipient] = reason;
    recipient.clear();
    reason.clear();
  };
  std::string_view rest = text;
  while (!rest.empty()) {
    size_t nl = rest.find('\n');
    std::string_view line = rest.substr(0, nl);
    rest = nl == std::string_view::npos ? std::string_view() : rest.substr(nl + 1);
    if (line.empty()) {
      end_block();
      continue;
    }
    size_t eq = line.find('=');
    if (eq == std::string_view::npos) continue;
    std::string_view name = line.substr(0, eq), value = line.substr(eq + 1);
    if (name == "recipient") recipient = value;
    if (name == "reason") reason = value;
  }
  end_block();
  return reasons;
}

namespace {
std::string time_text(int64_t seconds, const char* fmt) {
  time_t t = static_cast<time_t>(seconds);
  struct tm tm;
  if (!::localtime_r(&t, &tm)) return "?";
  char buf[64];
  size_t n = std::strftime(buf, sizeof buf, fmt, &tm);
  return std::string(buf, n);
}
}  // namespace

std::string short_time(int64_t seconds) { return time_text(seconds, "%a %b %e %H:%M:%S"); }
std::string long_time(int64_t seconds) { return time_text(seconds, "%a %b %e %H:%M:%S %Y"); }

std::string qmgr_socket_path(const std::string& spool) { return spool + "/public/qmgr"; }

}  // namespace postern
