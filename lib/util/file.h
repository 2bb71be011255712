// Safe file operations: opening without following links, whole-file reads and
// writes, fsync of a file and its directory, and AtomicFile, which builds a file
// under a temporary name and renames it into place only when it is complete.
#pragma once

#include <fcntl.h>
#include <sys/stat.h>

#include <string>
#include <string_view>

#include "util/fd.h"

namespace postern {

// open(2) with O_CLOEXEC|O_NOFOLLOW added; throws SystemError naming the path.
UniqueFd open_file(const std::string& path, int flags, mode_t mode = 0600);
// Like open_file, but returns an invalid fd when the file does not exist.
UniqueFd open_file_if_exists(const std::string& path, int flags);

std::string read_file(const std::string& path);
std::string read_fd(int fd);
void write_all(int fd, std::string_view data);

void fsync_fd(int fd, const std::string& what);
// fsync of the directory that holds path (makes a create/rename durable).
void fsync_parent_dir(const std::string& path);
std::string dirname_of(const std::string& path);
std::string basename_of(const std::string& path);
bool file_exists(const std::string& path);

// A file written under "<path>.tmp.<pid>" and renamed over path by commit(),
// after fsync of the file; commit(Durability::kFull) also fsyncs the directory.
// A file never committed is removed by the destructor: a reader sees either the
// old complete file or the new complete one, never a half-written one.
class AtomicFile {
 public:
  enum class Durability { kFileOnly, kFull };
  explicit AtomicFile(std::string path, mode_t mode = 0644);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  int fd() const { return fd_.get(); }
  const std::string& temp_path() const { return temp_path_; }
  const std::string& path() const { return path_; }
  void write(std::string_view data) { write_all(fd_.get(), data); }
  void commit(Durability durability = Durability::kFull);

 private:
  std::string path_;
  std::string temp_path_;
  UniqueFd fd_;
  bool committed_ = false;
};

// rename(2) that never replaces an existing file; returns 0 or an errno value.
int rename_noreplace(const std::string& from, const std::string& to);

}  // namespace postern
