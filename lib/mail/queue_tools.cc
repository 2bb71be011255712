// Helpers of the queue tools (postcat, postsuper, postqueue).
#include "mail/queue_tools.h"

#include <fcntl.h>
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

namespace {

std::string one_line(std::string_view text) {
  std::string out(text);
  for (char& c : out)
    if (c == '\n' || c == '\r') c = ' ';
  return out;
}

void append_to_log(const std::string& spool, std::string_view folder, std::string_view id, std::string_view text,
                   bool durable) {
  std::string path = status_log_path(spool, folder, id);
  UniqueFd fd = open_file(path, O_WRONLY | O_APPEND | O_CREAT, 0600);
  write_all(fd.get(), text);
  if (durable) {
    fsync_fd(fd.get(), path);
    fsync_parent_dir(path);
  }
}

}  // namespace

std::string format_status_block(const StatusRecord& r) {
  std::string text = "recipient=" + one_line(r.recipient) + "\n";
  if (!r.orcpt.empty()) text += "orcpt=" + one_line(r.orcpt) + "\n";
  text += "notify=" + std::to_string(r.notify) + "\noffset=" + std::to_string(r.offset) + "\nstatus=" +
          one_line(r.status) + "\n";
  if (!r.action.empty()) text += "action=" + one_line(r.action) + "\n";
  text += "reason=" + one_line(r.reason) + "\n";
  if (!r.diagnostic.empty()) text += "diagnostic=" + one_line(r.diagnostic) + "\n";
  text += "\n";
  return text;
}

std::vector<StatusRecord> parse_status_log(std::string_view text) {
  std::vector<StatusRecord> records;
  StatusRecord current;
  auto end_block = [&] {
    if (!current.recipient.empty()) records.push_back(std::move(current));
    current = StatusRecord{};
  };
  while (!text.empty()) {
    size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    if (line.empty()) {
      end_block();
      continue;
    }
    size_t eq = line.find('=');
    if (eq == std::string_view::npos) continue;
    std::string_view name = line.substr(0, eq), value = line.substr(eq + 1);
    if (name == "recipient") current.recipient = value;
    else if (name == "orcpt") current.orcpt = value;
    else if (name == "notify") current.notify = static_cast<int>(parse_int(value).value_or(0));
    else if (name == "offset") current.offset = parse_int(value).value_or(0);
    else if (name == "status") current.status = value;
    else if (name == "action") current.action = value;
    else if (name == "reason") current.reason = value;
    else if (name == "diagnostic") current.diagnostic = value;
  }
  end_block();
  return records;
}

std::vector<StatusRecord> read_status_log(const std::string& spool, std::string_view folder, std::string_view id) {
  UniqueFd fd = open_file_if_exists(status_log_path(spool, folder, id), O_RDONLY);
  if (!fd.valid()) return {};
  return parse_status_log(read_fd(fd.get()));
}

void append_status_log(const std::string& spool, std::string_view folder, std::string_view id,
                       const std::vector<StatusRecord>& records, bool durable) {
  if (records.empty()) return;
  std::string text;
  for (const auto& r : records) text += format_status_block(r);
  append_to_log(spool, folder, id, text, durable);
}

namespace {
constexpr std::string_view kDelayWarningLine = "delay_warning=sent\n";
}  // namespace

bool delay_warning_sent(const std::string& spool, std::string_view id) {
  UniqueFd fd = open_file_if_exists(status_log_path(spool, "defer", id), O_RDONLY);
  if (!fd.valid()) return false;
  std::string text = "\n" + read_fd(fd.get());
  return text.find("\n" + std::string(kDelayWarningLine)) != std::string::npos;
}

void record_delay_warning(const std::string& spool, std::string_view id) {
  append_to_log(spool, "defer", id, std::string(kDelayWarningLine) + "\n", true);
}

std::map<std::string, std::string> defer_reasons(const std::string& spool, std::string_view id) {
  std::map<std::string, std::string> reasons;
  for (const StatusRecord& r : read_status_log(spool, "defer", id))
    if (!r.reason.empty()) reasons[r.recipient] = r.reason;
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
