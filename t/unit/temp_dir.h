// A temporary directory for one unit test, removed with everything in it at the end.
#pragma once

#include <stdlib.h>
#include <sys/stat.h>

#include <filesystem>
#include <string>

#include "util/file.h"

namespace postern::test {

struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "/tmp/postern-test.XXXXXX";
    path = ::mkdtemp(tmpl);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  // Writes DIR/name atomically and returns its path.
  std::string write(const std::string& name, const std::string& text, mode_t mode = 0644) const {
    AtomicFile f(path + "/" + name, mode);
    f.write(text);
    f.commit();
    return path + "/" + name;
  }
};

}  // namespace postern::test
