// Safe file operations.
#include "util/file.h"

#include <unistd.h>

#include <cerrno>

#include "util/error.h"

namespace postern {

UniqueFd open_file(const std::string& path, int flags, mode_t mode) {
  int fd = retry_eintr([&] { return ::open(path.c_str(), flags | O_CLOEXEC | O_NOFOLLOW, mode); });
  if (fd < 0) throw SystemError(errno, "open " + path);
  return UniqueFd(fd);
}

UniqueFd open_file_if_exists(const std::string& path, int flags) {
  int fd = retry_eintr([&] { return ::open(path.c_str(), flags | O_CLOEXEC | O_NOFOLLOW); });
  if (fd < 0) {
    if (errno == ENOENT) return UniqueFd();
    throw SystemError(errno, "open " + path);
  }
  return UniqueFd(fd);
}

std::string read_fd(int fd) {
  std::string out;
  char buf[65536];
  for (;;) {
    ssize_t n = retry_eintr([&] { return ::read(fd, buf, sizeof buf); });
    if (n < 0) throw SystemError(errno, "read");
    if (n == 0) return out;
    out.append(buf, static_cast<size_t>(n));
  }
}

std::string read_file(const std::string& path) {
  UniqueFd fd = open_file(path, O_RDONLY);
  try {
    return read_fd(fd.get());
  } catch (const SystemError& e) {
    throw SystemError(e.error(), "read " + path);
  }
}

void write_all(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = retry_eintr([&] { return ::write(fd, data.data(), data.size()); });
    if (n < 0) throw SystemError(errno, "write");
    data.remove_prefix(static_cast<size_t>(n));
  }
}

void fsync_fd(int fd, const std::string& what) {
  if (retry_eintr([&] { return ::fsync(fd); }) < 0) throw SystemError(errno, "fsync " + what);
}

std::string dirname_of(const std::string& path) {
  size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

std::string basename_of(const std::string& path) {
  size_t slash = path.find_last_of('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

void fsync_parent_dir(const std::string& path) {
  std::string dir = dirname_of(path);
  UniqueFd fd = open_file(dir, O_RDONLY | O_DIRECTORY);
  fsync_fd(fd.get(), dir);
}

bool file_exists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

AtomicFile::AtomicFile(std::string path, mode_t mode)
    : path_(std::move(path)), temp_path_(path_ + ".tmp." + std::to_string(::getpid())) {
  ::unlink(temp_path_.c_str());  // a leftover of a crashed run with our pid
  fd_ = open_file(temp_path_, O_WRONLY | O_CREAT | O_EXCL, mode);
  ::fchmod(fd_.get(), mode);  // umask must not weaken or widen what the caller asked for
}

AtomicFile::~AtomicFile() {
  if (!committed_) ::unlink(temp_path_.c_str());
}

void AtomicFile::commit(Durability durability) {
  fsync_fd(fd_.get(), temp_path_);
  fd_.reset();
  if (::rename(temp_path_.c_str(), path_.c_str()) < 0)
    throw SystemError(errno, "rename " + temp_path_ + " to " + path_);
  committed_ = true;
  if (durability == Durability::kFull) fsync_parent_dir(path_);
}

int rename_noreplace(const std::string& from, const std::string& to) {
  if (::renameat2(AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), RENAME_NOREPLACE) == 0) return 0;
  if (errno != EINVAL && errno != ENOSYS) return errno;
  // A file system without RENAME_NOREPLACE: link() refuses an existing name too.
  if (::link(from.c_str(), to.c_str()) < 0) return errno;
  if (::unlink(from.c_str()) < 0) return errno;
  return 0;
}

}  // namespace postern
