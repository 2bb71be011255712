// Unit tests for virtual alias expansion: one-to-many, catch-alls, extensions,
// self references, loops, limits, and tables that fail temporarily.
#include <catch2/catch.hpp>

#include "temp_dir.h"

#include "mail/table.h"
#include "mail/virtual_alias.h"

using namespace postern;
using postern::test::TempDir;

namespace {

// A texthash: table of the given lines in d.
std::string table(const TempDir& d, const std::string& lines) {
  static int n = 0;
  return "texthash:" + d.write("t" + std::to_string(++n), lines);
}

AliasExpansion expand(const std::string& table, std::string_view address, VirtualAliasOptions options = {}) {
  TableList maps(table);
  if (options.delimiters.empty()) options.delimiters = "+";
  if (options.myorigin.empty()) options.myorigin = "mail.example.com";
  return expand_virtual_aliases(maps, address, options);
}

using V = std::vector<std::string>;

}  // namespace

TEST_CASE("virtual alias: one to many, recursion, repeats once", "[virtual_alias]") {
  TempDir d;
  std::string t = table(d, "info@a.example sales@a.example bob@b.example\nsales@a.example ann@b.example bob@b.example\n");
  AliasExpansion r = expand(t, "info@a.example");
  REQUIRE(r.expanded());
  CHECK(r.changed);
  CHECK(r.addresses == V{"ann@b.example", "bob@b.example"});
}

TEST_CASE("virtual alias: an address that is not an alias stays itself", "[virtual_alias]") {
  TempDir d;
  AliasExpansion r = expand(table(d, "x@a.example y@a.example\n"), "Joe@A.example");
  REQUIRE(r.expanded());
  CHECK_FALSE(r.changed);
  CHECK(r.addresses == V{"Joe@A.example"});
  TableList none;
  AliasExpansion n = expand_virtual_aliases(none, "joe@a.example", {});
  CHECK(n.addresses == V{"joe@a.example"});
  CHECK_FALSE(n.changed);
}

TEST_CASE("virtual alias: catch-all @domain and exact entries first", "[virtual_alias]") {
  TempDir d;
  std::string t = table(d, "@a.example catch@b.example\nboss@a.example boss@b.example\n");
  CHECK(expand(t, "anyone@a.example").addresses == V{"catch@b.example"});
  CHECK(expand(t, "boss@a.example").addresses == V{"boss@b.example"});
  CHECK(expand(t, "anyone@c.example").addresses == V{"anyone@c.example"});
}

TEST_CASE("virtual alias: extensions are looked up and carried on", "[virtual_alias]") {
  TempDir d;
  std::string t = table(d, "joe@a.example joe@b.example\njoe+x@a.example x@b.example\nlist@a.example l+in@b.example\n");
  CHECK(expand(t, "joe+news@a.example").addresses == V{"joe+news@b.example"});
  CHECK(expand(t, "joe+x@a.example").addresses == V{"x@b.example"});
  // A target with its own extension keeps it.
  CHECK(expand(t, "list+y@a.example").addresses == V{"l+in@b.example"});
}

TEST_CASE("virtual alias: bare local parts only for local domains; results are qualified", "[virtual_alias]") {
  TempDir d;
  std::string t = table(d, "postmaster root\nroot admin@b.example\n");
  VirtualAliasOptions options;
  options.is_local_domain = [](std::string_view d) { return d == "mail.example.com"; };
  CHECK(expand(t, "postmaster@mail.example.com", options).addresses == V{"admin@b.example"});
  CHECK(expand(t, "postmaster@other.example", options).addresses == V{"postmaster@other.example"});
  CHECK(expand(table(d, "a@x.example bob\n"), "a@x.example").addresses == V{"bob@mail.example.com"});
}

TEST_CASE("virtual alias: an address that lists itself keeps a copy", "[virtual_alias]") {
  TempDir d;
  AliasExpansion r = expand(table(d, "a@x.example a@x.example archive@y.example\n"), "a@x.example");
  REQUIRE(r.expanded());
  CHECK(r.addresses == V{"a@x.example", "archive@y.example"});
}

TEST_CASE("virtual alias: loops bounce with the path, never drop", "[virtual_alias]") {
  TempDir d;
  AliasExpansion r = expand(table(d, "a@x.example b@x.example\nb@x.example c@x.example\nc@x.example a@x.example\n"),
                            "a@x.example");
  CHECK(r.status == AliasExpansion::Status::kBounce);
  CHECK(r.dsn == "5.4.6");
  CHECK(r.reason == "virtual alias loop: a@x.example -> b@x.example -> c@x.example -> a@x.example");
  CHECK(r.addresses.empty());
  // A catch-all that points into its own domain ends at the address that maps to itself.
  CHECK(expand(table(d, "@x.example y@x.example\n"), "q@x.example").addresses == V{"y@x.example"});
}

TEST_CASE("virtual alias: depth and size limits", "[virtual_alias]") {
  TempDir d;
  std::string chain = table(d, "a0@x.example a1@x.example\na1@x.example a2@x.example\na2@x.example a3@x.example\n");
  VirtualAliasOptions options;
  options.max_depth = 3;
  CHECK(expand(chain, "a0@x.example", options).addresses == V{"a3@x.example"});
  options.max_depth = 2;
  AliasExpansion deep = expand(chain, "a0@x.example", options);
  CHECK(deep.status == AliasExpansion::Status::kBounce);
  CHECK(deep.reason == "unreasonable virtual_alias_maps nesting for a0@x.example");

  std::string wide = table(d, "all@x.example u1@y.example u2@y.example u3@y.example\n");
  options = {};
  options.max_size = 3;
  CHECK(expand(wide, "all@x.example", options).addresses.size() == 3);
  options.max_size = 2;
  AliasExpansion big = expand(wide, "all@x.example", options);
  CHECK(big.status == AliasExpansion::Status::kBounce);
  CHECK(big.reason == "unreasonable virtual_alias_maps expansion size for all@x.example");
}

TEST_CASE("virtual alias: an empty value bounces", "[virtual_alias]") {
  TempDir d;
  std::string path = d.write("v", "a@x.example ,\n");
  AliasExpansion r = expand("texthash:" + path, "a@x.example");
  CHECK(r.status == AliasExpansion::Status::kBounce);
  CHECK(r.reason == "virtual alias a@x.example has no targets");
}

TEST_CASE("virtual alias: a temporary failure defers, at any depth", "[virtual_alias]") {
  TempDir d;
  std::string cf = d.write("v.cf", "hosts = unix:" + d.path + "/no-server.sock\nuser = u\npassword = p\n"
                                   "dbname = d\nquery = SELECT goto FROM alias WHERE address='%s'\n", 0600);
  TableList maps(table(d, "a@x.example b@x.example\n") + ", mysql:" + cf);
  AliasExpansion r = expand_virtual_aliases(maps, "a@x.example", {"+", "x.example"});
  CHECK(r.status == AliasExpansion::Status::kDefer);
  CHECK(r.dsn == "4.3.0");
  CHECK(r.reason.find("virtual_alias_maps lookup of b@x.example failed") == 0);
  CHECK(r.addresses.empty());
}
