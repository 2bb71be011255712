// Unit tests for mysql: tables that need no database server: .cf errors with file
// and line, keys the templates cannot use (not found without connecting), and an
// unreachable server (a temporary failure, then no retry within retry_interval).
// t/integration/test_mysql_table.py runs the same table against a real MariaDB.
#include <catch2/catch.hpp>

#include "temp_dir.h"

#include <unistd.h>

#include <filesystem>
#include <string>

#include "mail/table.h"
#include "util/error.h"
#include "util/file.h"

using namespace postern;
using postern::test::TempDir;
namespace fs = std::filesystem;

namespace {

// A mysql .cf file (mode 0600, as one holding a password should be) whose server
// socket does not exist, with `extra` settings appended.
std::string write_cf(const TempDir& d, const std::string& extra) {
  return d.write("t.cf", "hosts = unix:" + d.path + "/no-server.sock\nuser = u\npassword = p\ndbname = d\n" + extra, 0600);
}

std::string open_error(const std::string& path) {
  try {
    open_table("mysql:" + path);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace

TEST_CASE("mysql: a bad .cf file is refused with file and line", "[table_mysql]") {
  TempDir d;
  std::string p = write_cf(d, "");
  CHECK(open_error(p) == p + ": missing query");
  p = write_cf(d, "query = SELECT v FROM t WHERE k = '%s'\nthis line has no equals sign\n");
  CHECK(open_error(p) == p + ":6: missing '=' after attribute name \"this line has no equals sign\"");
  p = write_cf(d, "query = SELECT v FROM t WHERE k = '%k'\n");
  CHECK(open_error(p).rfind(p + ":5: invalid %-escape \"%k\" in query", 0) == 0);
  p = write_cf(d, "query = SELECT '%s'\nresult_format = %s%\n");
  CHECK(open_error(p) == p + ":6: '%' at the end of result_format");
  p = d.write("h.cf", "hosts = db1 inet:db2:70000\nquery = SELECT 1\n", 0600);
  CHECK(open_error(p) == p + ":1: bad port in host \"inet:db2:70000\"");
  p = write_cf(d, "table = t\nselect_field = v\n");
  CHECK(open_error(p) == p + ": missing where_field (needed to build a query when query is not set)");
  p = write_cf(d, "query = SELECT 1\nconnect_timeout = soon\n");
  CHECK(open_error(p).rfind(p + ":6: invalid connect_timeout \"soon\"", 0) == 0);
  CHECK(open_error(d.path + "/missing.cf") == d.path + "/missing.cf: cannot read: No such file or directory");
}

TEST_CASE("mysql: keys the query cannot use are not found without a server", "[table_mysql]") {
  TempDir d;
  auto t = open_table("mysql:" + write_cf(d, "query = SELECT v FROM t WHERE u = '%u' AND d = '%d' AND tld = '%2'\n"));
  CHECK(t->lookup("no-domain").status == LookupStatus::kNotFound);
  CHECK(t->lookup("@example.com").status == LookupStatus::kNotFound);
  CHECK(t->lookup("user@").status == LookupStatus::kNotFound);
  CHECK(t->lookup("user@com").status == LookupStatus::kNotFound);
  CHECK(t->lookup("user@example.").status == LookupStatus::kNotFound);
  CHECK(t->lookup("").status == LookupStatus::kNotFound);
  // A usable key needs the server, which is not there.
  LookupResult r = t->lookup("user@example.com");
  REQUIRE(r.is_temp_fail());
  CHECK(r.error.find(": cannot connect to any host: ") != std::string::npos);
  CHECK(r.error.rfind("mysql:" + d.path + "/t.cf", 0) == 0);
  // Within retry_interval the dead host is not tried again.
  r = t->lookup("user@example.com");
  REQUIRE(r.is_temp_fail());
  CHECK(r.error.find("no host is retried for another") != std::string::npos);
}

TEST_CASE("mysql: the domain list keeps other keys away from the server", "[table_mysql]") {
  TempDir d;
  auto t = open_table("mysql:" + write_cf(d, "query = SELECT v FROM t WHERE k = '%s'\ndomain = !blocked.example, blocked.example, example.com\n"));
  CHECK(t->lookup("user@other.example").status == LookupStatus::kNotFound);
  CHECK(t->lookup("user").status == LookupStatus::kNotFound);
  CHECK(t->lookup("@example.com").status == LookupStatus::kNotFound);
  CHECK(t->lookup("user@blocked.example").status == LookupStatus::kNotFound);
  CHECK(t->lookup("user@EXAMPLE.COM").is_temp_fail());  // listed: the server is asked
}
