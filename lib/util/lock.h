// An fcntl(2) record lock on a whole file, released when the owner goes away.
#pragma once

#include <fcntl.h>

#include "util/error.h"

namespace postern {

class FileLock {
 public:
  enum class Mode { kShared, kExclusive };
  // Waits for the lock.
  FileLock(int fd, Mode mode) : fd_(fd) {
    if (!apply(mode == Mode::kShared ? F_RDLCK : F_WRLCK, F_SETLKW)) throw SystemError(errno, "lock");
  }
  // Takes the lock only if it is free; held() says whether it was.
  static FileLock try_lock(int fd, Mode mode) {
    FileLock lock(fd);
    if (lock.apply(mode == Mode::kShared ? F_RDLCK : F_WRLCK, F_SETLK)) lock.held_ = true;
    else if (errno != EAGAIN && errno != EACCES) throw SystemError(errno, "lock");
    return lock;
  }
  ~FileLock() {
    if (held_) apply(F_UNLCK, F_SETLK);
  }
  FileLock(FileLock&& other) noexcept : fd_(other.fd_), held_(other.held_) { other.held_ = false; }
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;
  FileLock& operator=(FileLock&&) = delete;

  bool held() const noexcept { return held_; }

 private:
  explicit FileLock(int fd) : fd_(fd), held_(false) {}
  bool apply(short type, int cmd) {
    struct flock fl {};
    fl.l_type = type;
    fl.l_whence = SEEK_SET;
    return retry_eintr([&] { return ::fcntl(fd_, cmd, &fl); }) == 0;
  }

  int fd_;
  bool held_ = true;
};

}  // namespace postern
