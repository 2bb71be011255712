// Unit tests for Maildir++ quotas (maildirsize) and the virtual mailbox lookups
// and writes: real Maildirs in a temporary folder, real tables.
#include <catch2/catch.hpp>

#include "temp_dir.h"

#include <sys/stat.h>
#include <unistd.h>
#include <utime.h>

#include <filesystem>

#include "mail/config.h"
#include "mail/maildir_quota.h"
#include "mail/virtual_delivery.h"
#include "util/error.h"
#include "util/file.h"

using namespace postern;
using postern::test::TempDir;
namespace fs = std::filesystem;

namespace {

void make_maildir(const std::string& dir) {
  for (const char* sub : {"", "/tmp", "/new", "/cur"}) fs::create_directories(dir + sub);
}

size_t files_in(const std::string& dir) {
  if (!fs::exists(dir)) return 0;
  return size_t(std::distance(fs::directory_iterator(dir), fs::directory_iterator()));
}

// A main.cf for virtual delivery into d/base as this process's own uid.
struct VirtualSetup {
  TempDir d;
  std::string base = d.path + "/base";
  std::string extra;
  Config config() const {
    std::string uid = std::to_string(::geteuid() == 0 ? 5000 : ::geteuid());
    return Config::parse(d.path, "virtual_mailbox_base = " + base + "\n" +
                                     "virtual_uid_maps = static:" + uid + "\nvirtual_gid_maps = static:" + uid +
                                     "\nrecipient_delimiter = +\n" + extra);
  }
  std::string table(const std::string& name, const std::string& lines) const {
    return "texthash:" + d.write(name, lines);
  }
};

// The content points at message: keep it alive as long as the result.
DeliveryContent content_of(const std::string& message) { return {"sender@example.org", "", message}; }

}  // namespace

TEST_CASE("maildir quota: parse and format", "[virtual_quota]") {
  CHECK(*parse_maildir_quota("1000") == MaildirQuota{1000, 0});
  CHECK(*parse_maildir_quota("1000S") == MaildirQuota{1000, 0});
  CHECK(*parse_maildir_quota("1000S,20C") == MaildirQuota{1000, 20});
  CHECK(*parse_maildir_quota("20C") == MaildirQuota{0, 20});
  CHECK(parse_maildir_quota("0")->unlimited());
  CHECK(parse_maildir_quota("")->unlimited());
  for (const char* bad : {"10X", "S", "-5", "1000S,", "1000S,xC", "12 34"}) {
    INFO(bad);
    auto q = parse_maildir_quota(bad);
    REQUIRE_FALSE(q.ok());
    CHECK(q.error().find("bad quota") == 0);
  }
  CHECK(format_maildir_quota({1000, 20}) == "1000S,20C");
  CHECK(format_maildir_quota({1000, 0}) == "1000S");
  CHECK(format_maildir_quota({0, 7}) == "7C");
  CHECK(format_maildir_quota({}) == "");
}

TEST_CASE("maildir quota: the size counted is the size written", "[virtual_quota]") {
  TempDir d;
  DeliveryContent c{"s@x", "Delivered-To: a@b\r\n", "Subject: x\r\n\r\nbody without newline"};
  auto r = deliver_to_maildir(d.path + "/Maildir", c);
  REQUIRE(r.ok());
  CHECK(fs::file_size(r.file) == maildir_message_size(c));
  CHECK(r.file.ends_with(",S=" + std::to_string(maildir_message_size(c))));
}

TEST_CASE("maildir quota: maildirsize is built by a scan, then kept by appends", "[virtual_quota]") {
  TempDir d;
  std::string md = d.path + "/Maildir";
  make_maildir(md);
  make_maildir(md + "/.Sent");
  d.write("Maildir/cur/1.a.host,S=100:2,S", std::string(3, 'x'));  // the tag wins over the real size
  d.write("Maildir/new/2.b.host", std::string(40, 'x'));          // no tag: stat
  d.write("Maildir/.Sent/cur/3.c.host,S=60:2,S", "x");
  d.write("Maildir/tmp/4.d.host", std::string(500, 'x'));  // tmp/ is not mail yet
  MaildirQuota quota{1000, 10};
  auto usage = maildir_usage(md, quota);
  REQUIRE(usage.ok());
  CHECK(*usage == MaildirUsage{200, 3});
  CHECK(read_file(md + "/maildirsize") == "1000S,10C\n200 3\n");
  CHECK((fs::status(md + "/maildirsize").permissions() & fs::perms::all) == (fs::perms::owner_read | fs::perms::owner_write));

  REQUIRE(record_maildir_usage(md, 50, 1).ok());
  REQUIRE(record_maildir_usage(md, -100, -1).ok());  // as a reader records a removal
  CHECK(read_file(md + "/maildirsize") == "1000S,10C\n200 3\n50 1\n-100 -1\n");
  CHECK(*maildir_usage(md, quota) == MaildirUsage{150, 3});
  // Another reader that agrees: the same sum from the same lines.
  CHECK(*maildir_usage(md, quota, false) == MaildirUsage{150, 3});
}

TEST_CASE("maildir quota: rebuilt when the quota changed, the file is long or damaged", "[virtual_quota]") {
  TempDir d;
  std::string md = d.path + "/Maildir";
  make_maildir(md);
  d.write("Maildir/cur/1.a.host,S=100:2,", "x");
  SECTION("another quota") {
    d.write("Maildir/maildirsize", "5000S\n999 9\n");
    CHECK(*maildir_usage(md, {1000, 0}) == MaildirUsage{100, 1});
    CHECK(read_file(md + "/maildirsize") == "1000S\n100 1\n");
  }
  SECTION("longer than 5120 bytes") {
    std::string lines = "1000S\n";
    while (lines.size() <= 5120) lines += "1 1\n";
    d.write("Maildir/maildirsize", lines);
    CHECK(*maildir_usage(md, {1000, 0}) == MaildirUsage{100, 1});
    CHECK(maildir_usage(md, {1000, 0}, false).ok());
  }
  SECTION("a half-written line") {
    d.write("Maildir/maildirsize", "1000S\n100 1\n5");
    CHECK(*maildir_usage(md, {1000, 0}) == MaildirUsage{100, 1});
  }
  SECTION("over quota and older than 15 minutes") {
    d.write("Maildir/maildirsize", "1000S\n2000 5\n");
    struct utimbuf old{::time(nullptr) - 3600, ::time(nullptr) - 3600};
    REQUIRE(::utime((md + "/maildirsize").c_str(), &old) == 0);
    CHECK(*maildir_usage(md, {1000, 0}) == MaildirUsage{100, 1});
  }
  SECTION("over quota but recent: believed") {
    d.write("Maildir/maildirsize", "1000S\n2000 5\n");
    CHECK(*maildir_usage(md, {1000, 0}) == MaildirUsage{2000, 5});
  }
  SECTION("a reader that may not rewrite gets a failure, and nothing changes") {
    d.write("Maildir/maildirsize", "5000S\n999 9\n");
    auto r = maildir_usage(md, {1000, 0}, false);
    CHECK_FALSE(r.ok());
    CHECK(read_file(md + "/maildirsize") == "5000S\n999 9\n");
  }
}

TEST_CASE("maildir quota: exactly at the limit fits, one byte over does not", "[virtual_quota]") {
  MaildirQuota quota{1000, 3};
  CHECK(fits_quota({900, 1}, quota, 100));
  CHECK_FALSE(fits_quota({900, 1}, quota, 101));
  CHECK(fits_quota({0, 2}, quota, 10));
  CHECK_FALSE(fits_quota({0, 3}, quota, 10));
  CHECK(fits_quota({5000, 50}, {}, 1000000));
}

TEST_CASE("virtual: lookups of mailbox, owner and quota", "[virtual_quota]") {
  VirtualSetup s;
  std::string maps = s.table("mailboxes", "ann@a.example a.example/ann/\nbob@a.example a.example/bob\n"
                                          "@c.example c.example/all/\nbad@a.example ../etc/\n"
                                          "abs@a.example /etc/\n");
  std::string limits = s.table("limits", "ann@a.example 5000S,10C\nweird@a.example 12Q\n");
  s.extra = "virtual_mailbox_maps = " + maps + "\nvirtual_mailbox_limit_maps = " + limits +
            "\nvirtual_mailbox_quota = 777\n";
  VirtualMailboxes boxes(s.config());
  VirtualLookup ann = boxes.find("ann+tag@a.example");
  REQUIRE(ann.ok());
  CHECK(ann.mailbox.path == s.base + "/a.example/ann");
  CHECK(ann.mailbox.maildir);
  CHECK(ann.mailbox.quota == MaildirQuota{5000, 10});
  CHECK(ann.mailbox.folder == "");  // virtual_extension_folders is off
  VirtualLookup bob = boxes.find("bob@a.example");
  REQUIRE(bob.ok());
  CHECK_FALSE(bob.mailbox.maildir);
  CHECK(bob.mailbox.quota == MaildirQuota{777, 0});
  CHECK(boxes.find("anyone@c.example").mailbox.path == s.base + "/c.example/all");

  VirtualLookup nobody = boxes.find("nobody@a.example");
  CHECK(nobody.status == kDeliveryBounce);
  CHECK(nobody.dsn == "5.1.1");
  for (const char* unsafe : {"bad@a.example", "abs@a.example"}) {
    VirtualLookup r = boxes.find(unsafe);
    CHECK(r.status == kDeliveryDefer);
    CHECK(r.text.find("unsafe mailbox path") != std::string::npos);
  }
}

TEST_CASE("virtual: owners below virtual_minimum_uid, root and bad ids defer", "[virtual_quota]") {
  VirtualSetup s;
  std::string maps = s.table("mailboxes", "ann@a.example a/ann/\n");
  auto config_with = [&](const std::string& uid_maps, const std::string& more = "") {
    return Config::parse(s.d.path, "virtual_mailbox_base = " + s.base + "\nvirtual_mailbox_maps = " + maps +
                                       "\nvirtual_uid_maps = " + uid_maps + "\nvirtual_gid_maps = static:100\n" +
                                       more);
  };
  for (const char* uid_maps : {"static:0", "static:99", "static:abc", "inline:{x@y=5000}", ""}) {
    INFO(uid_maps);
    VirtualMailboxes boxes(config_with(uid_maps));
    VirtualLookup r = boxes.find("ann@a.example");
    CHECK(r.status == kDeliveryDefer);
    CHECK(r.dsn == "4.3.0");
  }
  VirtualMailboxes low(config_with("static:50", "virtual_minimum_uid = 50\n"));
  CHECK(low.find("ann@a.example").ok());
  CHECK_THROWS_AS(VirtualMailboxes(config_with("static:5000", "virtual_mailbox_quota = lots\n")), ConfigError);
}

TEST_CASE("virtual: a table that fails temporarily defers", "[virtual_quota]") {
  VirtualSetup s;
  std::string cf = s.d.write("m.cf", "hosts = unix:" + s.d.path + "/no.sock\nuser = u\npassword = p\ndbname = d\n"
                                     "query = SELECT maildir FROM users WHERE email='%s'\n", 0600);
  s.extra = "virtual_mailbox_maps = mysql:" + cf + "\n";
  VirtualMailboxes boxes(s.config());
  VirtualLookup r = boxes.find("ann@a.example");
  CHECK(r.status == kDeliveryDefer);
  CHECK(r.text.find("virtual_mailbox_maps lookup failed") == 0);
  s.extra = "virtual_mailbox_maps = " + s.table("m", "ann@a.example a/ann/\n") +
            "\nvirtual_mailbox_limit_maps = mysql:" + cf + "\n";
  VirtualMailboxes limits(s.config());
  CHECK(limits.find("ann@a.example").status == kDeliveryDefer);
  CHECK(limits.check_quota("ann@a.example") == QuotaCheck::kUnknown);
}

TEST_CASE("virtual: quota edge cases through write()", "[virtual_quota]") {
  // Written as this process: switching to the owner is the daemon's part (integration tests).
  VirtualSetup s;
  std::string body(100, 'x');
  std::string text = "Subject: q\n\n" + body + "\n";  // c only points at it
  DeliveryContent c = content_of(text);
  uint64_t size = maildir_message_size(c);
  std::string limit = std::to_string(3 * size);
  s.extra = "virtual_mailbox_maps = " + s.table("m", "ann@a.example a/ann/\nbob@a.example a/bob\n") +
            "\nvirtual_mailbox_quota = " + limit + "\n";
  VirtualMailboxes boxes(s.config());
  VirtualLookup ann = boxes.find("ann@a.example");
  REQUIRE(ann.ok());
  std::string md = s.base + "/a/ann";
  // The Maildir does not exist yet: it is created (mode 0700), and filled exactly to the limit.
  for (int i = 0; i < 3; ++i) {
    MailboxResult r = boxes.write(ann.mailbox, c, {});
    INFO(r.dsn + " " + r.text);
    REQUIRE(r.ok());
  }
  CHECK((fs::status(md).permissions() & fs::perms::all) == fs::perms::owner_all);
  CHECK(files_in(md + "/new") == 3);
  // The first delivery made the Maildir, the second built maildirsize by a scan, then appends.
  std::string line = std::to_string(size) + " 1\n";
  CHECK(read_file(md + "/maildirsize") == limit + "S\n" + line + line + line);
  CHECK(boxes.check_quota("ann@a.example") == QuotaCheck::kOver);
  // One byte over: deferred 4.2.2, nothing written, maildirsize unchanged.
  std::string before = read_file(md + "/maildirsize");
  MailboxResult over = boxes.write(ann.mailbox, content_of("x"), {});
  CHECK(over.temporary());
  CHECK(over.dsn == "4.2.2");
  CHECK(over.text == "mailbox full: quota " + limit + "S exceeded");
  CHECK(files_in(md + "/new") == 3);
  CHECK(files_in(md + "/tmp") == 0);
  CHECK(read_file(md + "/maildirsize") == before);
  // A reader removes one message and records it: room again, for exactly one.
  fs::remove(fs::directory_iterator(md + "/new")->path());
  REQUIRE(record_maildir_usage(md, -int64_t(size), -1).ok());
  CHECK(boxes.check_quota("ann@a.example") == QuotaCheck::kFits);
  CHECK(boxes.check_quota("ann@a.example", size + 1) == QuotaCheck::kOver);
  REQUIRE(boxes.write(ann.mailbox, c, {}).ok());
  CHECK(files_in(md + "/new") == 3);
  // The mbox user has no quota.
  VirtualLookup bob = boxes.find("bob@a.example");
  CHECK(boxes.check_quota("bob@a.example") == QuotaCheck::kUnknown);
  REQUIRE(boxes.write(bob.mailbox, c, {}).ok());
  CHECK(fs::exists(s.base + "/a/bob"));

  s.extra += "virtual_overquota_bounce = yes\n";
  VirtualMailboxes bouncing(s.config());
  MailboxResult bounced = bouncing.write(bouncing.find("ann@a.example").mailbox, content_of("x"), {});
  CHECK(bounced.permanent());
  CHECK(bounced.dsn == "5.2.2");
}

TEST_CASE("virtual: a message bigger than the whole quota into a new Maildir", "[virtual_quota]") {
  VirtualSetup s;
  s.extra = "virtual_mailbox_maps = " + s.table("m", "ann@a.example a/ann/\n") + "\nvirtual_mailbox_quota = 10\n";
  VirtualMailboxes boxes(s.config());
  MailboxResult r = boxes.write(boxes.find("ann@a.example").mailbox, content_of("Subject: big\n\nbody\n"), {});
  CHECK(r.dsn == "4.2.2");
  CHECK(files_in(s.base + "/a/ann/new") == 0);
}

TEST_CASE("virtual: extension folders", "[virtual_quota]") {
  VirtualSetup s;
  s.extra = "virtual_mailbox_maps = " + s.table("m", "ann@a.example a/ann/\n") + "\nvirtual_extension_folders = yes\n";
  VirtualMailboxes boxes(s.config());
  VirtualLookup tagged = boxes.find("ann+Lists@a.example");
  CHECK(tagged.mailbox.folder == ".Lists");
  CHECK(boxes.find("ann+../x@a.example").mailbox.folder == "");
  CHECK(boxes.find("ann@a.example").mailbox.folder == "");
  std::string md = s.base + "/a/ann";
  // No such folder yet: the inbox.
  REQUIRE(boxes.write(tagged.mailbox, content_of("m1\n"), {}).ok());
  CHECK(files_in(md + "/new") == 1);
  make_maildir(md + "/.Lists");
  REQUIRE(boxes.write(tagged.mailbox, content_of("m2\n"), {}).ok());
  CHECK(files_in(md + "/.Lists/new") == 1);
  CHECK(files_in(md + "/new") == 1);
}
