// Unit tests for lookup tables: every table type, the source formats postmap and
// postalias read, TableList order, and the address search order.
#include <catch2/catch.hpp>

#include "temp_dir.h"

#include <db.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <map>
#include <thread>

#include "mail/address_keys.h"
#include "mail/table.h"
#include "mail/table_build.h"
#include "mail/table_db.h"
#include "mail/table_source.h"
#include "util/error.h"
#include "util/file.h"

using namespace postern;
using postern::test::TempDir;
namespace fs = std::filesystem;

namespace {


std::string value_of(Table& t, std::string_view key) {
  LookupResult r = t.lookup(key);
  if (r.is_temp_fail()) return "(temp fail: " + r.error + ")";
  return r.is_found() ? r.value : "(not found)";
}

std::string value_of(TableList& t, std::string_view key) {
  LookupResult r = t.lookup(key);
  if (r.is_temp_fail()) return "(temp fail)";
  return r.is_found() ? r.value : "(not found)";
}

std::string config_error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "(no error)";
}

// Every entry as "k=v;", sorted (hash order is the hash's own).
std::string listing(Table& t) {
  std::map<std::string, std::string> entries;
  t.for_each([&](std::string_view k, std::string_view v) { entries.emplace(k, v); });
  std::string out;
  for (const auto& [k, v] : entries) out += k + "=" + v + ";";
  return out;
}

// Writes a Berkeley DB file with the raw bytes given, the way another program
// (Postfix with or without its trailing NULs) would have written it.
void write_raw_db(const std::string& path, DBTYPE type, const std::vector<std::pair<std::string, std::string>>& entries) {
  DB* db = nullptr;
  REQUIRE(db_create(&db, nullptr, 0) == 0);
  REQUIRE(db->open(db, nullptr, path.c_str(), nullptr, type, DB_CREATE | DB_TRUNCATE, 0644) == 0);
  for (const auto& [k, v] : entries) {
    DBT key{}, value{};
    key.data = const_cast<char*>(k.data());
    key.size = static_cast<u_int32_t>(k.size());
    value.data = const_cast<char*>(v.data());
    value.size = static_cast<u_int32_t>(v.size());
    REQUIRE(db->put(db, nullptr, &key, &value, 0) == 0);
  }
  REQUIRE(db->close(db, 0) == 0);
}

// The raw bytes stored under a raw key, or "(none)".
std::string read_raw_db(const std::string& path, DBTYPE type, const std::string& k) {
  DB* db = nullptr;
  REQUIRE(db_create(&db, nullptr, 0) == 0);
  REQUIRE(db->open(db, nullptr, path.c_str(), nullptr, type, DB_RDONLY, 0) == 0);
  DBT key{}, value{};
  key.data = const_cast<char*>(k.data());
  key.size = static_cast<u_int32_t>(k.size());
  int ret = db->get(db, nullptr, &key, &value, 0);
  std::string out = ret == 0 ? std::string(static_cast<char*>(value.data), value.size) : "(none)";
  db->close(db, 0);
  return out;
}

// A mysql: table whose server cannot be reached: every lookup fails temporarily.
std::string unreachable_mysql(const TempDir& dir) {
  return "mysql:" + dir.write("down.cf",
                              "hosts = inet:127.0.0.1:1\nquery = SELECT '%s'\nconnect_timeout = 2\n", 0600);
}

}  // namespace

TEST_CASE("open_table rejects a spec without a type and unknown types", "[table]") {
  CHECK(config_error_of([] { open_table("/etc/aliases"); }) == "table spec /etc/aliases: expected type:name");
  CHECK(config_error_of([] { open_table(":x"); }) == "table spec :x: expected type:name");
  CHECK(config_error_of([] { open_table("dbm:/etc/aliases"); }) ==
        "dbm:/etc/aliases: unsupported table type: dbm");
}

TEST_CASE("hash and btree tables built from a source", "[table][db]") {
  TempDir dir;
  std::string source = dir.write("virtual", "# users\nAlice@Example.COM alice\nbob@example.com  bob,\n  carol\n");
  for (std::string type : {"hash", "btree"}) {
    SECTION(type) {
      build_table(type + ":" + source, {});
      auto t = open_table(type + ":" + source);
      CHECK(value_of(*t, "alice@example.com") == "alice");
      CHECK(value_of(*t, "ALICE@example.com") == "alice");  // keys are folded on both sides
      CHECK(value_of(*t, "bob@example.com") == "bob, carol");
      CHECK(value_of(*t, "nobody@example.com") == "(not found)");
      CHECK(t->spec() == type + ":" + source);
      CHECK(listing(*t) == "alice@example.com=alice;bob@example.com=bob, carol;");
    }
  }
}

TEST_CASE("a hash table is not readable as btree", "[table][db]") {
  TempDir dir;
  std::string source = dir.write("map", "a b\n");
  build_table("hash:" + source, {});
  CHECK_THROWS_AS(open_table("btree:" + source), ConfigError);
}

TEST_CASE("db files: keys and values with and without the trailing NUL", "[table][db]") {
  TempDir dir;
  // As Postfix on Linux writes them, with NULs.
  write_raw_db(dir.path + "/nul.db", DB_HASH, {{std::string("key\0", 4), std::string("with nul\0", 9)}});
  // As a -n build or another platform writes them, without.
  write_raw_db(dir.path + "/plain.db", DB_BTREE, {{"key", "without nul"}});
  auto with = open_table("hash:" + dir.path + "/nul");
  auto without = open_table("btree:" + dir.path + "/plain");
  CHECK(value_of(*with, "key") == "with nul");
  CHECK(value_of(*without, "KEY") == "without nul");
  CHECK(listing(*with) == "key=with nul;");

  // What we write carries the NUL, so Postfix finds it; -n writes none.
  std::string source = dir.write("ours", "k v\n");
  build_table("hash:" + source, {});
  CHECK(read_raw_db(source + ".db", DB_HASH, std::string("k\0", 2)) == std::string("v\0", 2));
  CHECK(read_raw_db(source + ".db", DB_HASH, "k") == "(none)");
  build_table("hash:" + source, {.nul = false});
  CHECK(read_raw_db(source + ".db", DB_HASH, "k") == "v");
  CHECK(value_of(*open_table("hash:" + source), "k") == "v");
}

TEST_CASE("a missing db file is a configuration error naming the file", "[table][db]") {
  TempDir dir;
  std::string error = config_error_of([&] { open_table("hash:" + dir.path + "/none"); });
  CHECK(error == dir.path + "/none.db: cannot open table: No such file or directory");
}

TEST_CASE("db writer: duplicates, permissions, uncommitted files", "[table][db]") {
  TempDir dir;
  std::string db_path = dir.path + "/t.db";
  {
    DbWriter w(DbType::kHash, db_path, 0640, DbWriter::OnDuplicate::kKeepFirst);
    CHECK(w.put("a", "1"));
    CHECK_FALSE(w.put("a", "2"));
    w.commit();
  }
  CHECK(value_of(*open_table("hash:" + dir.path + "/t"), "a") == "1");
  struct stat st;
  REQUIRE(::stat(db_path.c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0640);
  {
    DbWriter w(DbType::kHash, db_path, 0644, DbWriter::OnDuplicate::kReplace);
    CHECK(w.put("a", "1"));
    CHECK_FALSE(w.put("a", "2"));
    w.commit();
  }
  CHECK(value_of(*open_table("hash:" + dir.path + "/t"), "a") == "2");
  {
    DbWriter w(DbType::kHash, db_path, 0644, DbWriter::OnDuplicate::kReplace);
    w.put("a", "never");
  }  // not committed: the old table stays and no temporary file is left
  CHECK(value_of(*open_table("hash:" + dir.path + "/t"), "a") == "2");
  CHECK(std::distance(fs::directory_iterator(dir.path), fs::directory_iterator()) == 1);
}

TEST_CASE("build_table duplicate policies and a bad source", "[table][db]") {
  TempDir dir;
  std::string source = dir.write("map", "k first\nK second\n");
  build_table("hash:" + source, {.duplicates = Duplicates::kReplace});
  CHECK(value_of(*open_table("hash:" + source), "k") == "second");
  build_table("hash:" + source, {});
  CHECK(value_of(*open_table("hash:" + source), "k") == "first");
  build_table("hash:" + source, {.fold_case = false});
  auto exact = open_table("hash:" + source, {.fold_case = false});
  CHECK(value_of(*exact, "K") == "second");
  CHECK(value_of(*exact, "k") == "first");

  dir.write("map", "k changed\nlonely\n");
  CHECK(config_error_of([&] { build_table("hash:" + source, {}); }) ==
        source + ":2: expected format: key whitespace value");
  CHECK(value_of(*open_table("hash:" + source), "k") == "first");  // the old table is intact
}

TEST_CASE("delete and incremental update rewrite the table whole", "[table][db]") {
  TempDir dir;
  std::string source = dir.write("map", "a 1\nb 2\nc 3\n");
  build_table("btree:" + source, {});
  struct stat st;
  REQUIRE(::stat((source + ".db").c_str(), &st) == 0);
  ino_t before = st.st_ino;
  CHECK(delete_from_table("btree:" + source, {"b", "zz"}, {}) == 1);
  CHECK(delete_from_table("btree:" + source, {"zz"}, {}) == 0);
  auto t = open_table("btree:" + source);
  CHECK(listing(*t) == "a=1;c=3;");
  REQUIRE(::stat((source + ".db").c_str(), &st) == 0);
  CHECK(st.st_ino != before);

  update_table("btree:" + source, "d 4\na other\n", "stdin", {});
  CHECK(listing(*open_table("btree:" + source)) == "a=1;c=3;d=4;");
  update_table("btree:" + source, "a other\n", "stdin", {.duplicates = Duplicates::kReplace});
  CHECK(value_of(*open_table("btree:" + source), "a") == "other");
  CHECK_THROWS_AS(delete_from_table("hash:" + dir.path + "/none", {"a"}, {}), ConfigError);
}

TEST_CASE("a hash table follows a rebuild of its file", "[table][db]") {
  TempDir dir;
  std::string source = dir.write("map", "k old\n");
  build_table("hash:" + source, {});
  auto t = open_table("hash:" + source);
  CHECK(value_of(*t, "k") == "old");
  dir.write("map", "k new\n");
  build_table("hash:" + source, {});
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));  // files are checked at most once a second
  CHECK(value_of(*t, "k") == "new");
}

TEST_CASE("texthash reads a postmap source", "[table][text]") {
  TempDir dir;
  std::string path = dir.write("map", "# comment\n\nFoo bar\n\"two words\" quoted\nlong a\n\tb\n  # between\n c\n");
  auto t = open_table("texthash:" + path);
  CHECK(value_of(*t, "foo") == "bar");
  CHECK(value_of(*t, "FOO") == "bar");
  CHECK(value_of(*t, "two words") == "quoted");
  CHECK(value_of(*t, "long") == "a b c");
  CHECK(value_of(*t, "bar") == "(not found)");
  CHECK(listing(*t) == "foo=bar;long=a b c;two words=quoted;");
  auto exact = open_table("texthash:" + path, {.fold_case = false});
  CHECK(value_of(*exact, "Foo") == "bar");
  CHECK(value_of(*exact, "foo") == "(not found)");

  dir.write("bad1", "  first line indented\n");
  CHECK(config_error_of([&] { open_table("texthash:" + dir.path + "/bad1"); }) ==
        dir.path + "/bad1:1: continuation line with nothing to continue");
  dir.write("bad2", "a 1\n\"unclosed key\n");
  CHECK(config_error_of([&] { open_table("texthash:" + dir.path + "/bad2"); }) ==
        dir.path + "/bad2:2: missing closing double quote");
  CHECK(config_error_of([&] { open_table("texthash:" + dir.path + "/none"); }) ==
        dir.path + "/none: cannot read: No such file or directory");
}

TEST_CASE("inline tables", "[table][text]") {
  auto t = open_table("inline:{ Key1=v1, key2=v2 {key3 = value with spaces, and comma} }");
  CHECK(value_of(*t, "key1") == "v1");
  CHECK(value_of(*t, "KEY2") == "v2");
  CHECK(value_of(*t, "key3") == "value with spaces, and comma");
  CHECK(value_of(*t, "key4") == "(not found)");
  CHECK(listing(*t) == "key1=v1;key2=v2;key3=value with spaces, and comma;");

  CHECK(config_error_of([] { open_table("inline:key=value"); }) ==
        "inline:key=value: expected inline:{ key=value, ... }");
  CHECK(config_error_of([] { open_table("inline:{ a = b }"); }) ==
        "inline:{ a = b }: expected key=value or { key = value }, not \"a\"");
  CHECK(config_error_of([] { open_table("inline:{ =b }"); }) == "inline:{ =b }: missing key in \"=b\"");
  CHECK(config_error_of([] { open_table("inline:{ a= }"); }) == "inline:{ a= }: missing value in \"a=\"");
  CHECK(config_error_of([] { open_table("inline:{ a=1, A=2 }"); }) ==
        "inline:{ a=1, A=2 }: duplicate key \"a\"");
  CHECK(config_error_of([] { open_table("inline:{}"); }) == "inline:{}: empty table");
}

TEST_CASE("static tables find every key", "[table][text]") {
  auto t = open_table("static:relay:[mx.example]");
  CHECK(value_of(*t, "anything") == "relay:[mx.example]");
  CHECK(value_of(*open_table("static:{ two words }"), "x") == "two words");
  CHECK_THROWS_AS(t->for_each([](std::string_view, std::string_view) {}), UsageError);
  CHECK(config_error_of([] { open_table("static:{open"); }) == "static:{open: missing '}'");
}

TEST_CASE("regexp: matches, substitution, negation, first match wins", "[table][regexp]") {
  TempDir dir;
  std::string path = dir.write("re",
                               "# comment\n"
                               "/^(.*)-(owner)@example\\.com$/   $2 of ${1}, $(1)$$\n"
                               "/^bounce\\+([^@]+)@/  bounce\n"
                               "  handled $1\n"
                               "!/@example\\.(com|net)$/ OK foreign\n"
                               "/^postmaster@/ first\n"
                               "/^post/ second\n"
                               "#/never/ x\n"
                               "|^pipe\\|delim/| slashes\n");
  auto t = open_table("regexp:" + path);
  CHECK(value_of(*t, "list-owner@example.com") == "owner of list, list$");
  CHECK(value_of(*t, "bounce+42@example.com") == "bounce handled 42");
  CHECK(value_of(*t, "someone@other.org") == "OK foreign");
  CHECK(value_of(*t, "postmaster@example.com") == "first");
  CHECK(value_of(*t, "poster@example.com") == "second");
  CHECK(value_of(*t, "nobody@example.net") == "(not found)");
  CHECK(value_of(*t, "pipe|delim/@example.com") == "slashes");
  CHECK_THROWS_AS(t->for_each([](std::string_view, std::string_view) {}), UsageError);
}

TEST_CASE("regexp: case is the i flag's business, not folding", "[table][regexp]") {
  TempDir dir;
  std::string path = dir.write("re", "/^Exact$/i sensitive\n/^(Loose)$/ insensitive $1\n");
  auto t = open_table("regexp:" + path);  // fold_case on by default, but the raw key must reach the table
  CHECK(value_of(*t, "Exact") == "sensitive");
  CHECK(value_of(*t, "exact") == "(not found)");
  CHECK(value_of(*t, "LOOSE") == "insensitive LOOSE");
  std::string ext = dir.write("re2", "/^a+b$/x extended\n/^a\\{2\\}$/x basic\n");
  auto b = open_table("regexp:" + ext);
  CHECK(value_of(*b, "a+b") == "extended");  // basic syntax: + is literal
  CHECK(value_of(*b, "aab") == "(not found)");
  CHECK(value_of(*b, "aa") == "basic");
  std::string multi = dir.write("re3", "/^two$/m line\n");
  CHECK(value_of(*open_table("regexp:" + multi), "one\ntwo") == "line");
  CHECK(value_of(*open_table("regexp:" + dir.write("re4", "/^two$/ line\n")), "one\ntwo") == "(not found)");
}

TEST_CASE("regexp: if and endif, nested and negated", "[table][regexp]") {
  TempDir dir;
  std::string path = dir.write("re",
                               "if /@example\\.com$/\n"
                               "  # inside\n"
                               "if !/^admin/\n"
                               "/^(.*)@/ user $1\n"
                               "endif\n"
                               "/^admin/ the admin\n"
                               "endif\n"
                               "IF /@example\\.org$/\n"
                               "/./ org\n"
                               "ENDIF\n"
                               "/./ elsewhere\n");
  auto t = open_table("regexp:" + path);
  CHECK(value_of(*t, "joe@example.com") == "user joe");
  CHECK(value_of(*t, "admin@example.com") == "the admin");
  CHECK(value_of(*t, "joe@example.org") == "org");
  CHECK(value_of(*t, "joe@example.net") == "elsewhere");
}

TEST_CASE("regexp: every syntax error names file and line", "[table][regexp]") {
  TempDir dir;
  auto error = [&](const std::string& text) {
    std::string path = dir.write("re", text);
    std::string e = config_error_of([&] { open_table("regexp:" + path); });
    return e.substr(0, path.size()) == path ? e.substr(path.size()) : e;
  };
  CHECK(error("/ok/ 1\n/unclosed 2\n") == ":2: missing closing '/' after the pattern");
  CHECK(error("/a/ 1\n/b/\n") == ":2: missing result after the pattern");
  CHECK(error("/a/q x\n") == ":1: unknown flag 'q' after the pattern");
  CHECK(error("/(a/ x\n").starts_with(":1: bad regular expression /(a/: "));
  CHECK(error("/(a)/ $2\n") == ":1: $2 refers past the 1 group(s) of the pattern");
  CHECK(error("!/(a)/ $1\n") == ":1: $1 in the result of a negated pattern, which captures nothing");
  CHECK(error("/a/ cost $5x\n/b/ $\n") == ":1: $5 refers past the 0 group(s) of the pattern");
  CHECK(error("/a/ pay $\n") == ":1: '$' at the end of the result (write $$ for a dollar sign)");
  CHECK(error("/a/ pay $x\n") == ":1: invalid '$' in the result (write $$ for a dollar sign)");
  CHECK(error("/(a)/ ${1\n") == ":1: unclosed ${ in the result");
  CHECK(error("/(a)/ $0\n") == ":1: invalid substitution $0 in the result");
  CHECK(error("/a/ 1\nendif\n") == ":2: endif without if");
  CHECK(error("x\nif /a/\n/b/ c\n") == ":1: expected /pattern/, if or endif, not \"x\"");
  CHECK(error("/a/ 1\nif /a/\n/b/ c\n") == ":2: if without endif");
  CHECK(error("if /a/ junk\nendif\n") == ":1: text after the pattern of if");
  CHECK(error("if /a/\nendif now\n") == ":2: text after endif");
  CHECK(error("if\nendif\n") == ":1: missing pattern");
  CHECK(error("aa/ x\n") == ":1: expected /pattern/, if or endif, not \"aa\"");
  CHECK(error("  /a/ x\n") == ":1: continuation line with nothing to continue");
}

TEST_CASE("source formats: postmap and aliases", "[table][source]") {
  auto map = parse_source(SourceFormat::kMap, "a   b c  \n\"q \\\"k\\\\\" v\n", "f");
  REQUIRE(map.size() == 2);
  CHECK(map[0].key == "a");
  CHECK(map[0].value == "b c");
  CHECK(map[1].key == "q \"k\\");
  CHECK(map[1].line == 2);

  auto aliases = parse_source(SourceFormat::kAliases,
                              "# x\nPostmaster: root\nlist:a,b ,\n  \"|/usr/bin/prog -x, y\",\n"
                              "\t/var/mail/archive, :include:/etc/list\n\"odd name\" : x\n",
                              "aliases");
  REQUIRE(aliases.size() == 3);
  CHECK(aliases[0].key == "Postmaster");
  CHECK(aliases[0].value == "root");
  CHECK(aliases[1].key == "list");
  CHECK(aliases[1].value == "a, b, \"|/usr/bin/prog -x, y\", /var/mail/archive, :include:/etc/list");
  CHECK(aliases[1].line == 3);
  CHECK(aliases[2].key == "odd name");
  CHECK(aliases[2].line == 6);

  auto error = [](const std::string& text) {
    return config_error_of([&] { parse_source(SourceFormat::kAliases, text, "aliases"); });
  };
  CHECK(error("ok: x\nno colon here\n") == "aliases:2: missing ':' after the alias name");
  CHECK(error(": x\n") == "aliases:1: empty alias name");
  CHECK(error("a:\n") == "aliases:1: no value for alias \"a\"");
  CHECK(error("a: , ,\n") == "aliases:1: no value for alias \"a\"");
  CHECK(error("two words: x\n") == "aliases:1: white space in alias name \"two words\" (quote the name)");
  CHECK(error("a: \"|cmd\n") == "aliases:1: missing closing double quote");
  CHECK(error("a: :include:\n") == "aliases:1: :include: without a file name");
  CHECK(error("a: x, |\n") == "aliases:1: | without a command");
  CHECK(error("a: x\n  y\n") ==
        "aliases:1: white space in \"x y\" (a missing comma? quote a value that holds white space)");
  CHECK(parse_source(SourceFormat::kAliases, "a: |/bin/cmd arg, :include: /etc/list, \"x y\"@z\n", "f")[0].value ==
        "|/bin/cmd arg, :include: /etc/list, \"x y\"@z");
  CHECK(error("\"a\" x\n") == "aliases:1: missing ':' after the alias name");
}

TEST_CASE("TableList: specs with braces, search order, temporary failure stops", "[table][list]") {
  TableList list("inline:{a=first, {b = from one}}, inline:{a=second c=third}  static:{any thing}");
  REQUIRE(list.tables().size() == 3);
  CHECK(value_of(list, "a") == "first");
  CHECK(value_of(list, "b") == "from one");
  CHECK(value_of(list, "c") == "third");
  CHECK(value_of(list, "zzz") == "any thing");
  CHECK(TableList("").empty());

  TempDir dir;
  std::string down = unreachable_mysql(dir);
  TableList failing("inline:{a=1}, " + down + ", inline:{b=2}");
  CHECK(value_of(failing, "a") == "1");           // answered before the failing table
  CHECK(value_of(failing, "b") == "(temp fail)");  // never "found" past a table that could not answer
  LookupResult r = failing.lookup("b");
  CHECK(r.is_temp_fail());
  CHECK_FALSE(r.error.empty());
}

TEST_CASE("address keys in Postfix's order", "[address]") {
  using V = std::vector<std::string>;
  AddressKeyOptions plus{.delimiters = "+"};
  CHECK(address_keys("User+Ext@Example.COM", plus) == V{"user+ext@example.com", "user@example.com"});
  CHECK(address_keys("user@example.com", plus) == V{"user@example.com"});
  AddressKeyOptions local{.delimiters = "+", .local_part = true};
  CHECK(address_keys("user+ext@example.com", local) ==
        V{"user+ext@example.com", "user@example.com", "user+ext", "user"});
  AddressKeyOptions all{.delimiters = "+-", .local_part = true, .catch_all = true};
  CHECK(address_keys("user-a+b@example.com", all) ==
        V{"user-a+b@example.com", "user@example.com", "user-a+b", "user", "@example.com"});
  CHECK(address_keys("user@example.com", AddressKeyOptions{.catch_all = true}) ==
        V{"user@example.com", "@example.com"});
  // No delimiter configured: "+" is part of the name.
  CHECK(address_keys("a+b@x.org", {}) == V{"a+b@x.org"});
  // A bare local part (an alias lookup) gives the local keys only.
  CHECK(address_keys("Joe+Box", plus) == V{"joe+box", "joe"});
  // Never split: a leading delimiter, postmaster, mailer-daemon, owner-x and x-request with '-'.
  CHECK(address_keys("+x@d.org", plus) == V{"+x@d.org"});
  AddressKeyOptions dash{.delimiters = "-"};
  CHECK(address_keys("postmaster@d.org", dash) == V{"postmaster@d.org"});
  CHECK(address_keys("MAILER-DAEMON@d.org", dash) == V{"mailer-daemon@d.org"});
  CHECK(address_keys("owner-list@d.org", dash) == V{"owner-list@d.org"});
  CHECK(address_keys("list-request@d.org", dash) == V{"list-request@d.org"});
  CHECK(address_keys("list-x@d.org", dash) == V{"list-x@d.org", "list@d.org"});
  CHECK(address_keys("", all).empty());
  // The last '@' separates the domain.
  CHECK(address_keys("\"a@b\"@c.org", {}) == V{"\"a@b\"@c.org"});
}

TEST_CASE("lookup_address tries every table for a key before the next key", "[address]") {
  TableList tables("inline:{@example.com=catchall, user=local}, inline:{user@example.com=exact}");
  AddressKeyOptions all{.delimiters = "+", .local_part = true, .catch_all = true};
  CHECK(lookup_address(tables, "User+x@example.com", all).value == "exact");
  CHECK(lookup_address(tables, "user+x@other.org", all).value == "local");
  CHECK(lookup_address(tables, "someone@example.com", all).value == "catchall");
  CHECK(lookup_address(tables, "someone@example.com", AddressKeyOptions{}).status == LookupStatus::kNotFound);

  TempDir dir;
  TableList failing("inline:{@example.com=catchall}, " + unreachable_mysql(dir));
  CHECK(lookup_address(failing, "user@example.com", all).is_temp_fail());  // must not fall to the catch-all
}
