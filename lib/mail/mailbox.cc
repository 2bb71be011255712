// Mailbox writers: Maildir and mbox.  See mailbox.h for the formats and the
// guarantees; the comments here say why the steps are in the order they are.
#include "mail/mailbox.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>  // renameat2
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>

#include "mail/queue_id.h"
#include "util/error.h"
#include "util/fd.h"
#include "util/file.h"
#include "util/lock.h"
#include "util/log.h"
#include "util/strings.h"

namespace postern {
namespace {

using Clock = std::chrono::steady_clock;

MailboxResult failed(DeliveryStatus status, std::string dsn, std::string text) {
  MailboxResult r;
  r.status = status;
  r.dsn = std::move(dsn);
  r.text = std::move(text);
  return r;
}

MailboxResult permanent(std::string dsn, std::string text) {
  return failed(DeliveryStatus::kPermanent, std::move(dsn), std::move(text));
}

MailboxResult temporary(std::string dsn, std::string text) {
  return failed(DeliveryStatus::kTemporary, std::move(dsn), std::move(text));
}

MailboxResult size_limit_result(uint64_t limit) {
  return permanent("5.2.2", format("mailbox size limit of %llu bytes exceeded",
                                   static_cast<unsigned long long>(limit)));
}

// Buffered writes of the converted content, with the size limit enforced the
// way RLIMIT_FSIZE would: bytes up to the limit are written, then EFBIG.
class ContentWriter {
 public:
  ContentWriter(int fd, uint64_t limit, uint64_t base) : fd_(fd), limit_(limit), base_(base) {}

  void put(std::string_view s) {
    if (error_ != 0) return;
    buf_.append(s);
    if (buf_.size() >= kChunk) flush();
  }

  bool flush() {
    if (error_ != 0) return false;
    std::string_view data = buf_;
    bool over = false;
    if (limit_ != 0 && base_ + written_ + data.size() > limit_) {
      uint64_t used = base_ + written_;
      data = data.substr(0, used < limit_ ? static_cast<size_t>(limit_ - used) : 0);
      over = true;
    }
    while (!data.empty()) {
      ssize_t n = retry_eintr([&] { return ::write(fd_, data.data(), data.size()); });
      if (n < 0) {
        error_ = errno;
        return false;
      }
      written_ += static_cast<uint64_t>(n);
      data.remove_prefix(static_cast<size_t>(n));
    }
    buf_.clear();
    if (over) {
      error_ = EFBIG;
      limit_hit_ = true;
      return false;
    }
    return true;
  }

  int error() const { return error_; }
  bool limit_hit() const { return limit_hit_; }
  uint64_t written() const { return written_; }

 private:
  static constexpr size_t kChunk = 65536;
  int fd_;
  uint64_t limit_;
  uint64_t base_;
  uint64_t written_ = 0;
  int error_ = 0;
  bool limit_hit_ = false;
  std::string buf_;
};

bool needs_from_quote(std::string_view line, FromQuoting quoting) {
  if (quoting == FromQuoting::kMboxrd) {
    size_t i = line.find_first_not_of('>');
    if (i == std::string_view::npos) return false;
    line.remove_prefix(i);
  }
  return line.starts_with("From ");
}

// Writes text line by line with LF line ends; a last line without one gets one.
void put_lines(ContentWriter& out, std::string_view text, std::optional<FromQuoting> quoting) {
  while (!text.empty()) {
    size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    if (nl != std::string_view::npos && line.ends_with('\r')) line.remove_suffix(1);
    if (quoting && needs_from_quote(line, *quoting)) out.put(">");
    out.put(line);
    out.put("\n");
  }
}

std::string errno_text(int err) { return std::strerror(err); }

// ---------------------------------------------------------------- Maildir

// Removes a file in tmp/ unless the delivery got it into new/.
class TmpFileGuard {
 public:
  TmpFileGuard(int dirfd, std::string name) : dirfd_(dirfd), name_(std::move(name)) {}
  ~TmpFileGuard() {
    if (!name_.empty()) ::unlinkat(dirfd_, name_.c_str(), 0);
  }
  TmpFileGuard(const TmpFileGuard&) = delete;
  TmpFileGuard& operator=(const TmpFileGuard&) = delete;
  void dismiss() { name_.clear(); }

 private:
  int dirfd_;
  std::string name_;
};

// mkdir -p with mode 0700; only called when the maildir does not open.
int make_dirs(const std::string& path, bool& created) {
  size_t pos = 0;
  for (;;) {
    size_t slash = path.find('/', pos);
    std::string prefix = path.substr(0, slash);
    if (!prefix.empty()) {
      struct stat st;
      if (::stat(prefix.c_str(), &st) == 0) {
        if (!S_ISDIR(st.st_mode)) return ENOTDIR;
      } else if (errno != ENOENT) {
        return errno;
      } else if (::mkdir(prefix.c_str(), 0700) == 0) {
        created = true;
      } else if (errno != EEXIST) {  // EEXIST: a concurrent delivery made it
        return errno;
      }
    }
    if (slash == std::string::npos) return 0;
    pos = slash + 1;
  }
}

UniqueFd open_dir_at(int dirfd, const char* name) {
  return UniqueFd(retry_eintr(
      [&] { return ::openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC); }));
}

// Opens tmp/, new/ or cur/, creating it when missing.
UniqueFd open_subdir(int root, const char* name, bool& created) {
  UniqueFd fd = open_dir_at(root, name);
  if (fd.valid() || errno != ENOENT) return fd;
  if (::mkdirat(root, name, 0700) == 0) created = true;
  else if (errno != EEXIST) return UniqueFd();
  return open_dir_at(root, name);
}

// The host name part of a Maildir file name: one path component, and no ':'
// or ',' that a reader would take for the start of the info or a size tag.
std::string encode_host(std::string_view host) {
  std::string out;
  for (char c : host) {
    if (c == '/') out += "\\057";
    else if (c == ':') out += "\\072";
    else if (c == ',') out += "\\054";
    else out += c;
  }
  return out.empty() ? "localhost" : out;
}

std::string local_host_name() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) < 0) return "localhost";
  return buf;
}

std::string random_hex() {
  uint64_t r = 0;
  if (::getrandom(&r, sizeof r, GRND_NONBLOCK) != static_cast<ssize_t>(sizeof r)) {
    struct timeval tv;
    ::gettimeofday(&tv, nullptr);
    r = static_cast<uint64_t>(tv.tv_usec) * 2654435761u ^ static_cast<uint64_t>(::getpid());
  }
  return format("%016llx", static_cast<unsigned long long>(r));
}

std::string unique_name(const std::string& host) {
  static uint64_t deliveries = 0;
  struct timeval tv;
  ::gettimeofday(&tv, nullptr);
  return format("%lld.M%ldP%ldQ%lluR%s.", static_cast<long long>(tv.tv_sec),
                static_cast<long>(tv.tv_usec), static_cast<long>(::getpid()),
                static_cast<unsigned long long>(++deliveries), random_hex().c_str()) +
         host;
}

// FNV-1a: stable across builds and machines, unlike std::hash.
uint64_t stable_hash(std::string_view s) {
  uint64_t h = 14695981039346656037ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

// A file in dir whose name is base, or base followed by a size tag or info.
std::optional<std::string> find_copy(int dirfd, const std::string& base) {
  int fd = ::dup(dirfd);
  if (fd < 0) return std::nullopt;
  DIR* dir = ::fdopendir(fd);
  if (dir == nullptr) {
    ::close(fd);
    return std::nullopt;
  }
  ::rewinddir(dir);
  std::optional<std::string> found;
  while (struct dirent* e = ::readdir(dir)) {
    std::string_view name = e->d_name;
    if (name.starts_with(base) &&
        (name.size() == base.size() || name[base.size()] == ',' || name[base.size()] == ':')) {
      found = std::string(name);
      break;
    }
  }
  ::closedir(dir);
  return found;
}

// Moves the finished file into new/ without ever replacing a file there.
int link_into_new(int tmpfd, const std::string& tmp_name, int newfd, const std::string& name,
                  bool& moved) {
  moved = false;
  if (::linkat(tmpfd, tmp_name.c_str(), newfd, name.c_str(), 0) == 0) return 0;
  int err = errno;
  if (err != EPERM && err != ENOTSUP && err != EOPNOTSUPP && err != ENOSYS && err != EMLINK)
    return err;
  // No hard links here (some network and FUSE file systems): rename instead.
  if (::renameat2(tmpfd, tmp_name.c_str(), newfd, name.c_str(), RENAME_NOREPLACE) == 0) {
    moved = true;
    return 0;
  }
  return errno;
}

}  // namespace

MailboxResult mailbox_error(int err, const std::string& what) {
  std::string text = what + ": " + errno_text(err);
  switch (err) {
    case EDQUOT: return temporary("4.2.2", text);
    case ENOSPC: return temporary("4.3.1", text);
    case EIO: return temporary("4.3.0", text);
    case EFBIG: return permanent("5.2.2", text);
    case ENOTDIR:
    case EISDIR:
    case ELOOP:
    case ENAMETOOLONG: return permanent("5.2.0", text);
    default: return temporary("4.2.0", text);
  }
}

MailboxResult deliver_to_maildir(const std::string& maildir, const DeliveryContent& msg,
                                 const MaildirOptions& options) {
  std::string dir = maildir;
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  if (dir.empty()) return permanent("5.2.0", "empty maildir path");

  bool created = false;
  UniqueFd root(retry_eintr([&] { return ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); }));
  if (!root.valid() && errno == ENOENT) {
    if (int err = make_dirs(dir, created)) return mailbox_error(err, "create maildir " + dir);
    root.reset(retry_eintr([&] { return ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); }));
  }
  if (!root.valid()) return mailbox_error(errno, "open maildir " + dir);
  UniqueFd tmpd = open_subdir(root.get(), "tmp", created);
  if (!tmpd.valid()) return mailbox_error(errno, "open " + dir + "/tmp");
  UniqueFd newd = open_subdir(root.get(), "new", created);
  if (!newd.valid()) return mailbox_error(errno, "open " + dir + "/new");
  UniqueFd curd = open_subdir(root.get(), "cur", created);
  if (!curd.valid()) return mailbox_error(errno, "open " + dir + "/cur");
  if (created) {
    // New folders must survive a crash together with the message in them.
    if (::fsync(root.get()) < 0) return mailbox_error(errno, "fsync " + dir);
    UniqueFd parent(::open(dirname_of(dir).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (parent.valid() && ::fsync(parent.get()) < 0)
      return mailbox_error(errno, "fsync " + dirname_of(dir));
  }

  std::string host = encode_host(options.hostname.empty() ? local_host_name() : options.hostname);
  std::string fixed_base;  // the deterministic name, for redelivery detection
  if (!options.queue_id.empty()) {
    auto parts = decode_queue_id(options.queue_id);
    if (!parts) log_panic("deliver_to_maildir: bad queue ID \"%s\"", options.queue_id.c_str());
    fixed_base = format("%lld.K%s_%016llx.", static_cast<long long>(parts->seconds),
                        options.queue_id.c_str(),
                        static_cast<unsigned long long>(stable_hash(options.recipient))) +
                 host;
    // A copy still in new/ has exactly the name this delivery makes (the same
    // text, so the same size): linking into new/ finds it (EEXIST below), with
    // no need to read the folder.  A reader may have moved it to cur/ and added
    // flags to its name, so cur/ is searched.
    if (auto copy = find_copy(curd.get(), fixed_base)) {
      MailboxResult r;
      r.already_delivered = true;
      r.file = dir + "/cur/" + *copy;
      r.text = "already delivered as " + r.file;
      return r;
    }
  }

  std::string tmp_name;
  UniqueFd file;
  for (int attempt = 0; attempt < 5 && !file.valid(); ++attempt) {
    tmp_name = unique_name(host);
    file.reset(retry_eintr([&] {
      return ::openat(tmpd.get(), tmp_name.c_str(),
                      O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    }));
    if (!file.valid() && errno != EEXIST) break;
  }
  if (!file.valid()) return mailbox_error(errno, "create " + dir + "/tmp/" + tmp_name);
  TmpFileGuard guard(tmpd.get(), tmp_name);
  std::string tmp_path = dir + "/tmp/" + tmp_name;

  ContentWriter out(file.get(), options.size_limit, 0);
  put_lines(out, msg.prefix_headers, std::nullopt);
  put_lines(out, msg.message, std::nullopt);
  if (!out.flush()) {
    if (out.limit_hit()) return size_limit_result(options.size_limit);
    return mailbox_error(out.error(), "write " + tmp_path);
  }
  if (retry_eintr([&] { return ::fsync(file.get()); }) < 0)
    return mailbox_error(errno, "fsync " + tmp_path);
  // close() is where some network file systems report a failed write.
  if (::close(file.release()) < 0) return mailbox_error(errno, "close " + tmp_path);

  std::string final_name = (fixed_base.empty() ? tmp_name : fixed_base) +
                           format(",S=%llu", static_cast<unsigned long long>(out.written()));
  bool moved = false;
  if (int err = link_into_new(tmpd.get(), tmp_name, newd.get(), final_name, moved)) {
    if (err == EEXIST && !fixed_base.empty()) {
      MailboxResult r;
      r.already_delivered = true;
      r.file = dir + "/new/" + final_name;
      r.text = "already delivered as " + r.file;
      return r;
    }
    return mailbox_error(err, "link " + tmp_path + " into " + dir + "/new");
  }
  if (moved) guard.dismiss();  // nothing is left in tmp/
  if (retry_eintr([&] { return ::fsync(newd.get()); }) < 0) {
    int err = errno;
    ::unlinkat(newd.get(), final_name.c_str(), 0);  // not durable: let the retry deliver it
    return mailbox_error(err, "fsync " + dir + "/new");
  }

  MailboxResult r;
  r.file = dir + "/new/" + final_name;
  return r;
}

// ---------------------------------------------------------------- mbox

namespace {

// Sleeps for the back-off delay, or less when the deadline is nearer; false
// when the deadline has passed.
bool wait_before_retry(Clock::time_point deadline, std::chrono::milliseconds& delay) {
  auto now = Clock::now();
  if (now >= deadline) return false;
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now);
  auto nap = std::max(std::chrono::milliseconds(1), std::min(delay, left));
  struct timespec ts {
    static_cast<time_t>(nap.count() / 1000), static_cast<long>((nap.count() % 1000) * 1000000)
  };
  while (::nanosleep(&ts, &ts) < 0 && errno == EINTR) {
  }
  delay = std::min(delay * 2, std::chrono::milliseconds(1000));
  return true;
}

// <mbox>.lock, removed by the destructor only while it is still the file we made.
class DotLock {
 public:
  DotLock() = default;
  ~DotLock() {
    if (path_.empty()) return;
    struct stat st;
    if (::lstat(path_.c_str(), &st) == 0 && st.st_dev == dev_ && st.st_ino == ino_)
      ::unlink(path_.c_str());
  }
  DotLock(const DotLock&) = delete;
  DotLock& operator=(const DotLock&) = delete;

  MailboxResult acquire(const std::string& path, Clock::time_point deadline,
                        std::chrono::seconds stale_age) {
    std::chrono::milliseconds delay(10);
    for (;;) {
      UniqueFd fd(retry_eintr([&] {
        return ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
      }));
      if (fd.valid()) {
        struct stat st;
        if (::fstat(fd.get(), &st) < 0) return mailbox_error(errno, "fstat " + path);
        path_ = path;
        dev_ = st.st_dev;
        ino_ = st.st_ino;
        std::string pid = std::to_string(::getpid()) + "\n";  // for a curious administrator
        (void)!::write(fd.get(), pid.data(), pid.size());
        return {};
      }
      if (errno != EEXIST) return mailbox_error(errno, "create lock file " + path);
      struct stat st;
      if (::lstat(path.c_str(), &st) < 0) {
        if (errno == ENOENT) continue;  // released between our two calls
        return mailbox_error(errno, "lstat " + path);
      }
      if (::time(nullptr) - st.st_mtime >= stale_age.count()) {
        // A lock this old belongs to a process that died holding it.
        if (::unlink(path.c_str()) == 0)
          log_warn("removed stale lock file %s", path.c_str());
        else if (errno != ENOENT)
          return mailbox_error(errno, "remove stale lock file " + path);
        continue;
      }
      if (!wait_before_retry(deadline, delay))
        return temporary("4.2.0", "mailbox is locked: lock file " + path + " exists");
    }
  }

 private:
  std::string path_;
  dev_t dev_ = 0;
  ino_t ino_ = 0;
};

bool same_file(const struct stat& a, const struct stat& b) {
  return a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

// The separator line's date, as asctime(3) writes it, in local time.
std::string asctime_date(time_t t) {
  static const char* const kDays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static const char* const kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                        "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  struct tm tm {};
  ::localtime_r(&t, &tm);
  return format("%s %s %2d %02d:%02d:%02d %d", kDays[tm.tm_wday % 7], kMonths[tm.tm_mon % 12],
                tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, tm.tm_year + 1900);
}

// The sender as one word: readers split the separator line at spaces.
std::string from_line_sender(const std::string& sender) {
  if (sender.empty()) return "MAILER-DAEMON";
  std::string out = sender;
  for (char& c : out)
    if (static_cast<unsigned char>(c) <= ' ' || c == 0x7f) c = '_';
  return out;
}

// Opens the mailbox for appending: never through a symbolic link, never a
// device, FIFO or directory, never a file with a second name somewhere else.
MailboxResult open_mbox(const std::string& path, bool create, UniqueFd& fd, bool& created) {
  const int flags = O_RDWR | O_APPEND | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK | O_CLOEXEC;
  for (int attempt = 0; attempt < 3; ++attempt) {
    fd.reset(retry_eintr([&] { return ::open(path.c_str(), flags); }));
    if (!fd.valid() && errno == ENOENT) {
      if (!create) return permanent("5.2.0", "mailbox " + path + " does not exist");
      fd.reset(retry_eintr([&] { return ::open(path.c_str(), flags | O_CREAT | O_EXCL, 0600); }));
      if (!fd.valid() && errno == EEXIST) continue;  // another delivery created it
      if (fd.valid()) created = true;
    }
    if (!fd.valid()) {
      int err = errno;
      struct stat st;
      if (err == ELOOP && ::lstat(path.c_str(), &st) == 0 && S_ISLNK(st.st_mode))
        return permanent("5.2.0", "mailbox " + path + " is a symbolic link");
      return mailbox_error(err, "open mailbox " + path);
    }
    struct stat st;
    if (::fstat(fd.get(), &st) < 0) return mailbox_error(errno, "fstat " + path);
    if (!S_ISREG(st.st_mode)) return permanent("5.2.0", "mailbox " + path + " is not a regular file");
    if (st.st_nlink > 1)
      return permanent("5.2.0", "mailbox " + path + " has more than one hard link");
    int fl = ::fcntl(fd.get(), F_GETFL);
    if (fl < 0 || ::fcntl(fd.get(), F_SETFL, fl & ~O_NONBLOCK) < 0)
      return mailbox_error(errno, "fcntl " + path);
    return {};
  }
  return temporary("4.2.0", "mailbox " + path + " keeps changing while it is opened");
}

// Writes the pieces and makes them durable; returns the errno of a failure.
struct MboxWrite {
  int err = 0;
  bool limit_hit = false;
  std::string what;
};

MboxWrite write_mbox_message(int fd, const std::string& path, const struct stat& st,
                             const DeliveryContent& msg, const MboxOptions& options,
                             bool created) {
  MboxWrite w;
  // A previous writer that left no final newline or blank line would glue
  // our separator line to its last line.
  std::string padding;
  if (st.st_size > 0) {
    char tail[2] = {'\n', '\n'};
    off_t from = st.st_size >= 2 ? st.st_size - 2 : 0;
    size_t want = st.st_size >= 2 ? 2 : 1;
    ssize_t n = retry_eintr([&] { return ::pread(fd, tail + (2 - want), want, from); });
    if (n != static_cast<ssize_t>(want)) {
      w.err = n < 0 ? errno : EIO;
      w.what = "read " + path;
      return w;
    }
    if (tail[1] != '\n') padding = "\n\n";
    else if (tail[0] != '\n') padding = "\n";
  }
  ContentWriter out(fd, options.size_limit, static_cast<uint64_t>(st.st_size));
  out.put(padding);
  out.put(mbox_from_line(msg.sender, options.from_time != 0 ? options.from_time : ::time(nullptr)));
  put_lines(out, msg.prefix_headers, options.quoting);
  put_lines(out, msg.message, options.quoting);
  out.put("\n");
  if (!out.flush()) {
    w.err = out.error();
    w.limit_hit = out.limit_hit();
    w.what = "write " + path;
    return w;
  }
  if (retry_eintr([&] { return ::fsync(fd); }) < 0) {
    w.err = errno;
    w.what = "fsync " + path;
    return w;
  }
  if (created) {
    try {
      fsync_parent_dir(path);
    } catch (const SystemError& e) {
      w.err = e.error();
      w.what = "fsync the directory of " + path;
    }
  }
  return w;
}

}  // namespace

std::string mbox_from_line(const std::string& sender, time_t when) {
  return "From " + from_line_sender(sender) + " " + asctime_date(when) + "\n";
}

MailboxResult prepare_spool_mailbox(const std::string& path, uid_t uid, gid_t gid) {
  UniqueFd fd(retry_eintr([&] {
    return ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC, 0600);
  }));
  if (fd.valid()) {
    if (::fchown(fd.get(), uid, gid) < 0) {
      int err = errno;
      ::unlink(path.c_str());
      return mailbox_error(err, "chown mailbox " + path);
    }
    return {};
  }
  if (errno != EEXIST) return mailbox_error(errno, "create mailbox " + path);
  struct stat st;
  if (::lstat(path.c_str(), &st) < 0) return mailbox_error(errno, "lstat " + path);
  if (S_ISLNK(st.st_mode)) return temporary("4.2.0", "mailbox " + path + " is a symbolic link: refused");
  if (!S_ISREG(st.st_mode)) return temporary("4.2.0", "mailbox " + path + " is not a regular file: refused");
  if (st.st_nlink != 1) return temporary("4.2.0", "mailbox " + path + " has more than one hard link: refused");
  if (st.st_uid != uid)
    return temporary("4.2.0", format("mailbox %s is owned by uid %ld, not the recipient: refused", path.c_str(),
                                     static_cast<long>(st.st_uid)));
  return {};
}

MailboxResult deliver_to_mbox(const std::string& path, const DeliveryContent& msg,
                              const MboxOptions& options) {
  Clock::time_point deadline = Clock::now() + options.lock_wait;
  DotLock dot_lock;
  if (MailboxResult r = dot_lock.acquire(path + ".lock", deadline, options.stale_lock_age); !r.ok())
    return r;

  // Open, lock, and check that the name still leads to the locked file: a
  // mail reader may have replaced the mailbox while we waited for the lock.
  for (int attempt = 0; attempt < 5; ++attempt) {
    UniqueFd fd;
    bool created = false;
    if (MailboxResult r = open_mbox(path, options.create, fd, created); !r.ok()) return r;

    std::optional<FileLock> lock;
    std::chrono::milliseconds delay(10);
    for (;;) {
      try {
        FileLock attempt_lock = FileLock::try_lock(fd.get(), FileLock::Mode::kExclusive);
        if (attempt_lock.held()) {
          lock.emplace(std::move(attempt_lock));
          break;
        }
      } catch (const SystemError& e) {
        return mailbox_error(e.error(), "lock mailbox " + path);
      }
      if (!wait_before_retry(deadline, delay))
        return temporary("4.2.0", "mailbox " + path + " is locked by another process");
    }

    struct stat by_fd, by_name;
    if (::fstat(fd.get(), &by_fd) < 0) return mailbox_error(errno, "fstat " + path);
    if (::lstat(path.c_str(), &by_name) < 0 || !same_file(by_fd, by_name) || by_fd.st_nlink != 1)
      continue;

    MboxWrite w = write_mbox_message(fd.get(), path, by_fd, msg, options, created);
    if (w.err == 0) return {};
    // Never leave half a message behind: cut the file back to what it was.
    if (retry_eintr([&] { return ::ftruncate(fd.get(), by_fd.st_size); }) < 0 ||
        retry_eintr([&] { return ::fsync(fd.get()); }) < 0)
      log_error("cannot truncate mailbox %s back to %lld bytes: %m; it may hold a partial message",
                path.c_str(), static_cast<long long>(by_fd.st_size));
    if (w.limit_hit) return size_limit_result(options.size_limit);
    return mailbox_error(w.err, w.what);
  }
  return temporary("4.2.0", "mailbox " + path + " keeps being replaced while it is locked");
}

}  // namespace postern
