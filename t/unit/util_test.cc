// Unit tests for the base utilities: strings, safe files, locks, logging.
#include <catch2/catch.hpp>

#include "temp_dir.h"

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "util/error.h"
#include "util/fd.h"
#include "util/file.h"
#include "util/lock.h"
#include "util/log.h"
#include "util/strings.h"

using namespace postern;
using postern::test::TempDir;
namespace fs = std::filesystem;

TEST_CASE("string helpers", "[util]") {
  CHECK(trim("  a b \t\r\n") == "a b");
  CHECK(trim("   ").empty());
  CHECK(split(",a,,b c,", ", ") == std::vector<std::string>{"a", "b", "c"});
  CHECK(split_list("hash:/a, inline:{ k=v, {x = y z} } static:{a b},x") ==
        std::vector<std::string>{"hash:/a", "inline:{ k=v, {x = y z} }", "static:{a b}", "x"});
  CHECK(split_list("  ").empty());
  CHECK(lowercase("MiXeD@Example.COM") == "mixed@example.com");
  CHECK(iequals("Postmaster", "POSTMASTER"));
  CHECK_FALSE(iequals("post", "postmaster"));
  CHECK(join({"a", "b", "c"}, ", ") == "a, b, c");
  CHECK(parse_int("42") == 42);
  CHECK(parse_int("-7") == -7);
  CHECK_FALSE(parse_int("4x"));
  CHECK_FALSE(parse_int(""));
  CHECK_FALSE(parse_int("99999999999999999999999"));
  CHECK(format("%s=%d", "n", 5) == "n=5");
  CHECK(format("%s", std::string(5000, 'x').c_str()).size() == 5000);
}

TEST_CASE("UniqueFd owns and releases", "[util]") {
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  {
    UniqueFd r(fds[0]);
    UniqueFd w(fds[1]);
    UniqueFd moved = std::move(w);
    CHECK_FALSE(w.valid());
    CHECK(moved.get() == fds[1]);
  }
  CHECK(::fcntl(fds[0], F_GETFD) == -1);  // closed by the owner
  CHECK(::fcntl(fds[1], F_GETFD) == -1);
}

TEST_CASE("AtomicFile: all or nothing", "[util][file]") {
  TempDir dir;
  std::string path = dir.path + "/table";
  {
    AtomicFile f(path, 0640);
    f.write("first");
    CHECK_FALSE(file_exists(path));  // not visible until committed
    f.commit();
  }
  CHECK(read_file(path) == "first");
  struct stat st;
  REQUIRE(::stat(path.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0640);
  {
    AtomicFile f(path);
    f.write("second, abandoned");
  }  // never committed: the old file stays, the temporary is gone
  CHECK(read_file(path) == "first");
  CHECK(std::distance(fs::directory_iterator(dir.path), fs::directory_iterator()) == 1);
}

TEST_CASE("open_file refuses to follow a symbolic link", "[util][file]") {
  TempDir dir;
  std::string target = dir.path + "/target", link = dir.path + "/link";
  std::ofstream(target) << "secret";
  REQUIRE(::symlink(target.c_str(), link.c_str()) == 0);
  CHECK_THROWS_AS(open_file(link, O_RDONLY), SystemError);
  CHECK_FALSE(open_file_if_exists(dir.path + "/missing", O_RDONLY).valid());
  CHECK_THROWS_WITH(read_file(dir.path + "/missing"), Catch::Contains("missing"));
  CHECK(dirname_of("/a/b/c") == "/a/b");
  CHECK(dirname_of("c") == ".");
  CHECK(basename_of("/a/b/c") == "c");
}

TEST_CASE("FileLock excludes another process", "[util][lock]") {
  TempDir dir;
  UniqueFd fd = open_file(dir.path + "/lock", O_RDWR | O_CREAT);
  FileLock held(fd.get(), FileLock::Mode::kExclusive);
  pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    UniqueFd other = open_file(dir.path + "/lock", O_RDWR);
    FileLock attempt = FileLock::try_lock(other.get(), FileLock::Mode::kShared);
    ::_exit(attempt.held() ? 1 : 0);
  }
  int status = 0;
  ::waitpid(child, &status, 0);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);  // the child could not take the lock we hold
}

TEST_CASE("log lines in a file read like syslog's", "[util][log]") {
  TempDir dir;
  std::string path = dir.path + "/maillog";
  log_init("smtpd", LogSink::kFile, path);
  log_info("3Fz9KQ1: from=<%s>", "a@example.com");
  log_warn("disk %d%% full", 97);
  log_init("unit-tests", LogSink::kCommandLine);
  std::string text = read_file(path);
  auto first_end = text.find('\n');
  REQUIRE(first_end != std::string::npos);
  std::string first = text.substr(0, first_end), second = text.substr(first_end + 1);
  // "Nov 23 12:34:56 host postern/smtpd[pid]: ...": month, day, time, host, ident.
  REQUIRE(first.size() > 16);
  CHECK(std::isupper(static_cast<unsigned char>(first[0])));
  CHECK(first[3] == ' ');
  CHECK(first[9] == ':');
  CHECK(first[12] == ':');
  CHECK(first.find(" postern/smtpd[") > 16);
  CHECK_THAT(first, Catch::EndsWith("postern/smtpd[" + std::to_string(::getpid()) + "]: 3Fz9KQ1: from=<a@example.com>"));
  CHECK_THAT(second, Catch::EndsWith("]: warning: disk 97% full\n"));
}
