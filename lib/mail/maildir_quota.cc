// Maildir++ quotas (see maildir_quota.h).
#include "mail/maildir_quota.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <ctime>

#include "util/error.h"
#include "util/fd.h"
#include "util/file.h"
#include "util/strings.h"

namespace postern {
namespace {

constexpr off_t kMaxMaildirsizeBytes = 5120;
constexpr time_t kStaleSeconds = 15 * 60;
constexpr const char* kMaildirsize = "/maildirsize";

bool parse_number(std::string_view text, int64_t& out) {
  if (text.empty()) return false;
  auto [end, err] = std::from_chars(text.data(), text.data() + text.size(), out);
  return err == std::errc() && end == text.data() + text.size();
}

// Bytes of text once written with LF line ends and a final newline.
uint64_t lf_size(std::string_view text) {
  if (text.empty()) return 0;
  uint64_t size = text.size();
  for (size_t at = text.find("\r\n"); at != std::string_view::npos; at = text.find("\r\n", at + 2)) --size;
  if (text.back() != '\n') ++size;
  return size;
}

// The size a Maildir file name records (",S=<bytes>"), or -1.
int64_t size_tag(std::string_view name) {
  size_t at = name.find(",S=");
  if (at == std::string_view::npos) return -1;
  std::string_view digits = name.substr(at + 3);
  digits = digits.substr(0, digits.find_first_not_of("0123456789"));
  int64_t size = -1;
  return parse_number(digits, size) ? size : -1;
}

Result<void> add_folder(const std::string& dir, MaildirUsage& usage) {
  DIR* d = ::opendir(dir.c_str());
  if (!d) {
    if (errno == ENOENT) return {};
    return fail("open " + dir + ": " + std::strerror(errno));
  }
  int dfd = ::dirfd(d);
  while (struct dirent* e = ::readdir(d)) {
    if (e->d_name[0] == '.') continue;
    int64_t size = size_tag(e->d_name);
    if (size < 0) {
      struct stat st;
      if (::fstatat(dfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) continue;  // removed meanwhile
      if (!S_ISREG(st.st_mode)) continue;
      size = st.st_size;
    }
    usage.bytes += size;
    usage.messages += 1;
  }
  ::closedir(d);
  return {};
}

// Reads maildirsize: its quota line and the sum of the rest; false when it cannot be used.
bool read_maildirsize(const std::string& path, std::string& quota_line, MaildirUsage& usage, struct stat& st) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd.valid() || ::fstat(fd.get(), &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > kMaxMaildirsizeBytes)
    return false;
  std::string text;
  try {
    text = read_fd(fd.get());
  } catch (const SystemError&) {
    return false;
  }
  size_t nl = text.find('\n');
  if (nl == std::string::npos) return false;
  quota_line = text.substr(0, nl);
  std::string_view rest = std::string_view(text).substr(nl + 1);
  while (!rest.empty()) {
    size_t end = rest.find('\n');
    if (end == std::string_view::npos) return false;  // a line being written, or damage
    std::vector<std::string> fields = split(rest.substr(0, end), " ");
    rest.remove_prefix(end + 1);
    int64_t bytes = 0, count = 0;
    if (fields.size() != 2 || !parse_number(fields[0], bytes) || !parse_number(fields[1], count)) return false;
    usage.bytes += bytes;
    usage.messages += count;
  }
  return true;
}

}  // namespace

Result<MaildirQuota> parse_maildir_quota(std::string_view text) {
  MaildirQuota quota;
  std::string trimmed(trim(text));
  if (trimmed.empty()) return quota;
  int64_t n = 0;
  if (parse_number(trimmed, n) && n >= 0) {
    quota.bytes = uint64_t(n);
    return quota;
  }
  std::vector<std::string> parts = split(trimmed, ",");
  if (parts.size() != size_t(std::count(trimmed.begin(), trimmed.end(), ',')) + 1)
    return fail("bad quota \"" + std::string(text) + "\": expected bytes, <bytes>S or <bytes>S,<count>C");
  for (const std::string& part : parts) {
    std::string item(trim(part));
    if (item.size() < 2 || !parse_number(std::string_view(item).substr(0, item.size() - 1), n) || n < 0)
      return fail("bad quota \"" + std::string(text) + "\": expected bytes, <bytes>S or <bytes>S,<count>C");
    char unit = item.back();
    if (unit == 'S') quota.bytes = uint64_t(n);
    else if (unit == 'C') quota.messages = uint64_t(n);
    else return fail("bad quota \"" + std::string(text) + "\": expected bytes, <bytes>S or <bytes>S,<count>C");
  }
  return quota;
}

std::string format_maildir_quota(const MaildirQuota& quota) {
  std::string out;
  if (quota.bytes) out = std::to_string(quota.bytes) + "S";
  if (quota.messages) out += (out.empty() ? "" : ",") + std::to_string(quota.messages) + "C";
  return out;
}

uint64_t maildir_message_size(const DeliveryContent& content) {
  return lf_size(content.prefix_headers) + lf_size(content.message);
}

Result<MaildirUsage> scan_maildir_usage(const std::string& maildir) {
  MaildirUsage usage;
  for (const char* sub : {"/cur", "/new"})
    if (auto r = add_folder(maildir + sub, usage); !r) return r.failure();
  DIR* d = ::opendir(maildir.c_str());
  if (!d) return fail("open " + maildir + ": " + std::strerror(errno));
  std::vector<std::string> folders;
  while (struct dirent* e = ::readdir(d)) {
    std::string name = e->d_name;
    if (name.size() < 2 || name[0] != '.' || name == "..") continue;
    struct stat st;
    if (::fstatat(::dirfd(d), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode))
      folders.push_back(maildir + "/" + name);
  }
  ::closedir(d);
  for (const std::string& folder : folders)
    for (const char* sub : {"/cur", "/new"})
      if (auto r = add_folder(folder + sub, usage); !r) return r.failure();
  return usage;
}

Result<MaildirUsage> maildir_usage(const std::string& maildir, const MaildirQuota& quota, bool may_rebuild,
                                   uint64_t adding) {
  std::string path = maildir + kMaildirsize;
  std::string quota_line;
  MaildirUsage usage;
  struct stat st{};
  if (read_maildirsize(path, quota_line, usage, st) && quota_line == format_maildir_quota(quota)) {
    bool stale = ::time(nullptr) - st.st_mtime > kStaleSeconds;
    if (!(stale && !fits_quota(usage, quota, adding))) return usage;
  }
  if (!may_rebuild) return fail(path + " is missing or needs rebuilding");
  auto scanned = scan_maildir_usage(maildir);
  if (!scanned) return scanned;
  try {
    AtomicFile file(path, 0600);
    file.write(format_maildir_quota(quota) + "\n" + std::to_string(scanned->bytes) + " " +
               std::to_string(scanned->messages) + "\n");
    file.commit(AtomicFile::Durability::kFileOnly);
  } catch (const SystemError& e) {
    return fail(std::string("rewrite ") + path + ": " + e.what());
  }
  return scanned;
}

bool fits_quota(const MaildirUsage& usage, const MaildirQuota& quota, uint64_t size) {
  if (quota.bytes && usage.bytes + int64_t(size) > int64_t(quota.bytes)) return false;
  if (quota.messages && usage.messages + (size ? 1 : 0) > int64_t(quota.messages)) return false;
  return true;
}

Result<void> record_maildir_usage(const std::string& maildir, int64_t bytes, int64_t messages) {
  std::string path = maildir + kMaildirsize;
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_APPEND | O_NOFOLLOW | O_CLOEXEC));
  if (!fd.valid()) {
    if (errno == ENOENT) return {};
    return fail("open " + path + ": " + std::strerror(errno));
  }
  std::string line = std::to_string(bytes) + " " + std::to_string(messages) + "\n";
  ssize_t n = retry_eintr([&] { return ::write(fd.get(), line.data(), line.size()); });
  if (n != static_cast<ssize_t>(line.size()))
    return fail("append to " + path + ": " + (n < 0 ? std::strerror(errno) : "short write"));
  return {};
}

}  // namespace postern
