// Unit tests for the Maildir and mbox writers.
#include <catch2/catch.hpp>

#include "temp_dir.h"

#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <functional>
#include <regex>
#include <set>
#include <thread>

#include "mail/mailbox.h"
#include "mail/queue_id.h"
#include "util/file.h"

using namespace postern;
using postern::test::TempDir;
namespace fs = std::filesystem;

namespace {

std::vector<std::string> names_in(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

mode_t mode_of(const std::string& path) {
  struct stat st;
  REQUIRE(::lstat(path.c_str(), &st) == 0);
  return st.st_mode & 07777;
}

// Runs fn in a child process and returns its exit status (-1 if it did not exit).
int in_child(const std::function<int()>& fn) {
  pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) ::_exit(fn());
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// A result as a small exit code: 0 delivered, 42 for 4.2.x, 52 for 5.2.x...
int exit_code(const MailboxResult& r) {
  if (r.ok()) return 0;
  return (r.dsn[0] - '0') * 10 + (r.dsn[2] - '0');
}

DeliveryContent content(std::string_view message, std::string sender = "alice@example.org") {
  DeliveryContent c;
  c.sender = std::move(sender);
  c.prefix_headers = "Delivered-To: bob@example.com\nReturn-Path: <alice@example.org>\n";
  c.message = message;
  return c;
}

const std::string kPrefix = "Delivered-To: bob@example.com\nReturn-Path: <alice@example.org>\n";

bool make_nobody() { return ::setgid(65534) == 0 && ::setuid(65534) == 0; }

}  // namespace

// ---------------------------------------------------------------- Maildir

TEST_CASE("maildir: delivery creates folders 0700 and one file in new/", "[mailbox][maildir]") {
  TempDir dir;
  std::string md = dir.path + "/users/bob/Maildir/";
  std::string msg = "Subject: hi\r\n\r\nline one\r\nFrom here\r\n";
  MaildirOptions opt;
  opt.hostname = "mx1.example.com";
  MailboxResult r = deliver_to_maildir(md, content(msg), opt);
  REQUIRE(r.ok());
  CHECK(r.dsn == "2.0.0");
  std::string base = dir.path + "/users/bob/Maildir";
  CHECK(mode_of(base) == 0700);
  CHECK(mode_of(dir.path + "/users") == 0700);
  for (const char* sub : {"/tmp", "/new", "/cur"}) CHECK(mode_of(base + sub) == 0700);
  CHECK(names_in(base + "/tmp").empty());
  CHECK(names_in(base + "/cur").empty());
  auto files = names_in(base + "/new");
  REQUIRE(files.size() == 1);
  CHECK(r.file == base + "/new/" + files[0]);
  std::string expected = kPrefix + "Subject: hi\n\nline one\nFrom here\n";  // no From_ quoting
  CHECK(read_file(r.file) == expected);
  CHECK(mode_of(r.file) == 0600);
  std::smatch m;
  REQUIRE(std::regex_match(files[0], m,
                           std::regex(R"((\d+)\.M(\d+)P(\d+)Q(\d+)R([0-9a-f]{16})\.mx1\.example\.com,S=(\d+))")));
  CHECK(std::stoll(m[1]) >= ::time(nullptr) - 5);
  CHECK(std::stoll(m[3]) == ::getpid());
  CHECK(std::stoull(m[6]) == expected.size());
}

TEST_CASE("maildir: two deliveries give two files; host name is encoded", "[mailbox][maildir]") {
  TempDir dir;
  std::string md = dir.path + "/Maildir";
  MaildirOptions opt;
  opt.hostname = "odd/host:name,x";
  MailboxResult a = deliver_to_maildir(md, content("A\n"), opt);
  MailboxResult b = deliver_to_maildir(md, content("B\n"), opt);
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  CHECK(a.file != b.file);
  auto files = names_in(md + "/new");
  REQUIRE(files.size() == 2);
  for (const auto& f : files) {
    CHECK(f.find("odd\\057host\\072name\\054x,S=") != std::string::npos);
    CHECK(f.find(':') == std::string::npos);
    CHECK(f.find('/') == std::string::npos);
  }
  CHECK(read_file(a.file) == kPrefix + "A\n");
  CHECK(read_file(b.file) == kPrefix + "B\n");
  CHECK(names_in(md + "/tmp").empty());
}

TEST_CASE("maildir: concurrent deliveries from several processes", "[mailbox][maildir]") {
  TempDir dir;
  std::string md = dir.path + "/Maildir";
  std::vector<pid_t> kids;
  for (int p = 0; p < 3; ++p) {
    pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      for (int i = 0; i < 10; ++i) {
        std::string body = "Subject: " + std::to_string(p) + "-" + std::to_string(i) + "\n\nx\n";
        if (!deliver_to_maildir(md, content(body)).ok()) ::_exit(1);
      }
      ::_exit(0);
    }
    kids.push_back(pid);
  }
  for (pid_t pid : kids) {
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    CHECK((WIFEXITED(status) && WEXITSTATUS(status) == 0));
  }
  auto files = names_in(md + "/new");
  CHECK(files.size() == 30);
  std::set<std::string> subjects;
  for (const auto& f : files) subjects.insert(read_file(md + "/new/" + f));
  CHECK(subjects.size() == 30);
  CHECK(names_in(md + "/tmp").empty());
}

TEST_CASE("maildir: a path that is not a directory fails permanently", "[mailbox][maildir]") {
  TempDir dir;
  std::string file = dir.write("plain", "not a maildir\n");
  MailboxResult r = deliver_to_maildir(file, content("x\n"));
  CHECK(r.permanent());
  CHECK(r.dsn == "5.2.0");
  CHECK(read_file(file) == "not a maildir\n");

  // A parent that is a file, and a new/ that is a file.
  MailboxResult below = deliver_to_maildir(file + "/Maildir", content("x\n"));
  CHECK(below.permanent());
  std::string md = dir.path + "/Maildir";
  REQUIRE(deliver_to_maildir(md, content("x\n")).ok());
  fs::remove_all(md + "/new");
  dir.write("Maildir/new", "");
  MailboxResult r2 = deliver_to_maildir(md, content("y\n"));
  CHECK(r2.permanent());
  CHECK(r2.dsn == "5.2.0");
  CHECK(names_in(md + "/tmp").empty());
}

TEST_CASE("maildir: an unwritable maildir fails temporarily and leaves nothing in tmp/",
          "[mailbox][maildir]") {
  TempDir dir;
  std::string md = dir.path + "/Maildir";
  REQUIRE(deliver_to_maildir(md, content("first\n")).ok());
  int code = 0;
  if (::geteuid() == 0) {
    // Root ignores modes: deliver as nobody, who owns all but new/.
    REQUIRE(::chmod(dir.path.c_str(), 0755) == 0);
    for (const char* p : {"", "/tmp", "/cur"}) REQUIRE(::chown((md + p).c_str(), 65534, 65534) == 0);
    code = in_child([&] {
      if (!make_nobody()) return 99;
      MailboxResult r = deliver_to_maildir(md, content("second\n"));
      return r.temporary() && r.dsn == "4.2.0" ? 42 : exit_code(r) + 100;
    });
  } else {
    REQUIRE(::chmod((md + "/new").c_str(), 0500) == 0);
    MailboxResult r = deliver_to_maildir(md, content("second\n"));
    code = r.temporary() && r.dsn == "4.2.0" ? 42 : exit_code(r) + 100;
    ::chmod((md + "/new").c_str(), 0700);
  }
  CHECK(code == 42);
  CHECK(names_in(md + "/tmp").empty());
  CHECK(names_in(md + "/new").size() == 1);
}

TEST_CASE("maildir: the size limit is a permanent 5.2.2 and leaves nothing behind",
          "[mailbox][maildir]") {
  TempDir dir;
  std::string md = dir.path + "/Maildir";
  std::string big(200000, 'x');
  big += "\n";
  MaildirOptions opt;
  opt.size_limit = 100000;
  MailboxResult r = deliver_to_maildir(md, content(big), opt);
  CHECK(r.permanent());
  CHECK(r.dsn == "5.2.2");
  CHECK(names_in(md + "/tmp").empty());
  CHECK(names_in(md + "/new").empty());
  // Exactly at the limit is allowed.
  opt.size_limit = kPrefix.size() + 4;
  CHECK(deliver_to_maildir(md, content("abc\n"), opt).ok());
  CHECK_FALSE(deliver_to_maildir(md, content("abcd\n"), opt).ok());
}

TEST_CASE("maildir: a redelivery with the same queue ID finds the earlier copy",
          "[mailbox][maildir]") {
  TempDir dir;
  std::string md = dir.path + "/Maildir";
  MaildirOptions opt;
  opt.hostname = "mx";
  opt.queue_id = make_queue_id(1700000000, 1234, 98765);
  opt.recipient = "bob@example.com";
  MailboxResult first = deliver_to_maildir(md, content("hello\n"), opt);
  REQUIRE(first.ok());
  CHECK_FALSE(first.already_delivered);
  std::string name = basename_of(first.file);
  CHECK(name.starts_with("1700000000.K" + opt.queue_id + "_"));

  MailboxResult again = deliver_to_maildir(md, content("hello\n"), opt);
  CHECK(again.ok());
  CHECK(again.already_delivered);
  CHECK(names_in(md + "/new").size() == 1);

  // A reader moved it to cur/ and marked it seen: still found.
  REQUIRE(::rename(first.file.c_str(), (md + "/cur/" + name + ":2,S").c_str()) == 0);
  MailboxResult third = deliver_to_maildir(md, content("hello\n"), opt);
  CHECK(third.already_delivered);
  CHECK(names_in(md + "/new").empty());

  // Another recipient of the same message is a different delivery.
  opt.recipient = "carol@example.com";
  MailboxResult other = deliver_to_maildir(md, content("hello\n"), opt);
  CHECK(other.ok());
  CHECK_FALSE(other.already_delivered);
  CHECK(names_in(md + "/new").size() == 1);
  CHECK(names_in(md + "/tmp").empty());
}

TEST_CASE("mailbox errors: temporary or permanent by errno", "[mailbox]") {
  CHECK(mailbox_error(EDQUOT, "w").temporary());
  CHECK(mailbox_error(EDQUOT, "w").dsn == "4.2.2");
  CHECK(mailbox_error(ENOSPC, "w").dsn == "4.3.1");
  CHECK(mailbox_error(EIO, "w").dsn == "4.3.0");
  CHECK(mailbox_error(EACCES, "w").dsn == "4.2.0");
  CHECK(mailbox_error(EFBIG, "w").permanent());
  CHECK(mailbox_error(EFBIG, "w").dsn == "5.2.2");
  CHECK(mailbox_error(ENOTDIR, "w").permanent());
  CHECK(mailbox_error(ENOTDIR, "open x").text.starts_with("open x: "));
}

// ---------------------------------------------------------------- mbox

namespace {

MboxOptions quick_mbox() {
  MboxOptions opt;
  opt.lock_wait = std::chrono::milliseconds(300);
  return opt;
}

// Sets TZ for one test and puts the old value back.
struct ScopedTz {
  std::optional<std::string> old;
  explicit ScopedTz(const char* tz) {
    if (const char* v = ::getenv("TZ")) old = v;
    ::setenv("TZ", tz, 1);
    ::tzset();
  }
  ~ScopedTz() {
    if (old) ::setenv("TZ", old->c_str(), 1);
    else ::unsetenv("TZ");
    ::tzset();
  }
};

const std::regex kFromLine(
    R"(From \S+ (Mon|Tue|Wed|Thu|Fri|Sat|Sun) (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [ 123]\d \d\d:\d\d:\d\d \d{4})");

}  // namespace

TEST_CASE("mbox: separator line, CRLF to LF, From_ quoting, blank line at end", "[mailbox][mbox]") {
  TempDir dir;
  std::string mbox = dir.path + "/bob";
  ScopedTz tz("UTC0");
  MboxOptions opt;
  opt.from_time = 1700000000;  // Tue Nov 14 22:13:20 2023 UTC
  std::string msg = "Subject: x\r\n\r\nFrom the start\r\n>From quoted\r\nFromage\r\nlast";
  MailboxResult r = deliver_to_mbox(mbox, content(msg), opt);
  REQUIRE(r.ok());
  CHECK(mode_of(mbox) == 0600);
  CHECK(read_file(mbox) ==
        "From alice@example.org Tue Nov 14 22:13:20 2023\n" + kPrefix +
            "Subject: x\n\n>From the start\n>From quoted\nFromage\nlast\n\n");
  CHECK_FALSE(file_exists(mbox + ".lock"));

  // mboxrd quoting, the null sender, and a single-digit day padded as asctime does.
  opt.quoting = FromQuoting::kMboxrd;
  opt.from_time = 1700000000 - 10 * 86400;  // Sat Nov  4 22:13:20 2023
  std::string two = dir.path + "/two";
  REQUIRE(deliver_to_mbox(two, content("\nFrom a\n>From b\n>>From c\n", ""), opt).ok());
  CHECK(read_file(two) == "From MAILER-DAEMON Sat Nov  4 22:13:20 2023\n" + kPrefix +
                              "\n>From a\n>>From b\n>>>From c\n\n");
}

TEST_CASE("mbox: the current time in asctime form", "[mailbox][mbox]") {
  TempDir dir;
  std::string mbox = dir.path + "/bob";
  REQUIRE(deliver_to_mbox(mbox, content("x\n", "we ird@x")).ok());
  std::string text = read_file(mbox);
  std::string first = text.substr(0, text.find('\n'));
  CHECK(std::regex_match(first, kFromLine));
  CHECK(first.starts_with("From we_ird@x "));
}

TEST_CASE("mbox: appends to an existing mailbox", "[mailbox][mbox]") {
  TempDir dir;
  std::string mbox = dir.path + "/bob";
  REQUIRE(deliver_to_mbox(mbox, content("one\n")).ok());
  std::string after_one = read_file(mbox);
  REQUIRE(deliver_to_mbox(mbox, content("two\n")).ok());
  std::string both = read_file(mbox);
  REQUIRE(both.starts_with(after_one));
  std::string second = both.substr(after_one.size());
  CHECK(second.starts_with("From alice@example.org "));
  CHECK(second.ends_with(kPrefix + "two\n\n"));

  // A mailbox someone left without its final newline gets one, and the blank line.
  std::string sloppy = dir.write("sloppy", "From x Thu Jan  1 00:00:00 1970\nbody");
  REQUIRE(deliver_to_mbox(sloppy, content("y\n")).ok());
  CHECK(read_file(sloppy).starts_with("From x Thu Jan  1 00:00:00 1970\nbody\n\nFrom alice"));
}

TEST_CASE("mbox: refuses a symlink, a hard-linked file, a non-regular file", "[mailbox][mbox]") {
  TempDir dir;
  std::string target = dir.write("target", "precious\n");
  std::string link = dir.path + "/link";
  REQUIRE(::symlink(target.c_str(), link.c_str()) == 0);
  MailboxResult r = deliver_to_mbox(link, content("x\n"), quick_mbox());
  CHECK(r.permanent());
  CHECK(r.text.find("symbolic link") != std::string::npos);
  CHECK(read_file(target) == "precious\n");

  std::string hard = dir.path + "/hard";
  REQUIRE(::link(target.c_str(), hard.c_str()) == 0);
  MailboxResult h = deliver_to_mbox(hard, content("x\n"), quick_mbox());
  CHECK(h.permanent());
  CHECK(h.text.find("hard link") != std::string::npos);
  CHECK(read_file(target) == "precious\n");

  std::string fifo = dir.path + "/fifo";
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  MailboxResult f = deliver_to_mbox(fifo, content("x\n"), quick_mbox());
  CHECK(f.permanent());
  CHECK(f.text.find("not a regular file") != std::string::npos);

  MailboxResult d = deliver_to_mbox(dir.path, content("x\n"), quick_mbox());
  CHECK_FALSE(d.ok());
  CHECK(d.permanent());

  MboxOptions no_create = quick_mbox();
  no_create.create = false;
  MailboxResult missing = deliver_to_mbox(dir.path + "/missing", content("x\n"), no_create);
  CHECK(missing.permanent());
  CHECK_FALSE(file_exists(dir.path + "/missing"));
  CHECK_FALSE(file_exists(dir.path + "/missing.lock"));
}

TEST_CASE("mbox: a fresh dot-lock makes delivery wait, then fail temporarily", "[mailbox][mbox]") {
  TempDir dir;
  std::string mbox = dir.write("bob", "From x Thu Jan  1 00:00:00 1970\nold\n\n", 0600);
  dir.write("bob.lock", "");
  auto start = std::chrono::steady_clock::now();
  MailboxResult r = deliver_to_mbox(mbox, content("x\n"), quick_mbox());
  auto waited = std::chrono::steady_clock::now() - start;
  CHECK(r.temporary());
  CHECK(r.dsn.starts_with("4."));
  CHECK(waited >= std::chrono::milliseconds(250));
  CHECK(waited < std::chrono::seconds(3));
  CHECK(file_exists(mbox + ".lock"));  // someone else's lock is left alone
  CHECK(read_file(mbox) == "From x Thu Jan  1 00:00:00 1970\nold\n\n");
}

TEST_CASE("mbox: delivery proceeds once the dot-lock goes away", "[mailbox][mbox]") {
  TempDir dir;
  std::string mbox = dir.path + "/bob";
  std::string lock = dir.write("bob.lock", "");
  pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::usleep(300000);
    ::unlink(lock.c_str());
    ::_exit(0);
  }
  auto start = std::chrono::steady_clock::now();
  MboxOptions opt;
  opt.lock_wait = std::chrono::seconds(10);
  MailboxResult r = deliver_to_mbox(mbox, content("x\n"), opt);
  auto waited = std::chrono::steady_clock::now() - start;
  ::waitpid(pid, nullptr, 0);
  CHECK(r.ok());
  CHECK(waited >= std::chrono::milliseconds(250));
  CHECK(read_file(mbox).ends_with("x\n\n"));
}

TEST_CASE("mbox: a stale dot-lock is removed", "[mailbox][mbox]") {
  TempDir dir;
  std::string mbox = dir.path + "/bob";
  std::string lock = dir.write("bob.lock", "12345\n");
  struct timespec times[2] = {{::time(nullptr) - 600, 0}, {::time(nullptr) - 600, 0}};
  REQUIRE(::utimensat(AT_FDCWD, lock.c_str(), times, 0) == 0);
  auto start = std::chrono::steady_clock::now();
  MailboxResult r = deliver_to_mbox(mbox, content("x\n"), quick_mbox());
  CHECK(r.ok());
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::milliseconds(250));
  CHECK_FALSE(file_exists(lock));
  CHECK(read_file(mbox).ends_with("x\n\n"));
}

TEST_CASE("mbox: the dot-lock is held during delivery, with the fcntl lock", "[mailbox][mbox]") {
  TempDir dir;
  std::string mbox = dir.write("bob", "", 0600);
  // A reader holds the fcntl lock until told to let go.
  int ready[2], release[2];
  REQUIRE(::pipe(ready) == 0);
  REQUIRE(::pipe(release) == 0);
  pid_t holder = ::fork();
  REQUIRE(holder >= 0);
  if (holder == 0) {
    int fd = ::open(mbox.c_str(), O_RDWR);
    struct flock fl {};
    fl.l_type = F_WRLCK;
    fl.l_whence = SEEK_SET;
    if (fd < 0 || ::fcntl(fd, F_SETLK, &fl) < 0) ::_exit(1);
    char c = 'r';
    (void)!::write(ready[1], &c, 1);
    (void)!::read(release[0], &c, 1);
    ::_exit(0);
  }
  char c;
  REQUIRE(::read(ready[0], &c, 1) == 1);

  // Not for long: a temporary failure, and our dot-lock is gone again.
  MailboxResult r = deliver_to_mbox(mbox, content("x\n"), quick_mbox());
  CHECK(r.temporary());
  CHECK(r.text.find("locked") != std::string::npos);
  CHECK_FALSE(file_exists(mbox + ".lock"));

  // A delivery that waits holds the dot-lock while it waits.
  pid_t deliverer = ::fork();
  REQUIRE(deliverer >= 0);
  if (deliverer == 0) {
    MboxOptions opt;
    opt.lock_wait = std::chrono::seconds(10);
    ::_exit(exit_code(deliver_to_mbox(mbox, content("x\n"), opt)));
  }
  bool saw_lock = false;
  for (int i = 0; i < 200 && !saw_lock; ++i) {
    saw_lock = file_exists(mbox + ".lock");
    if (!saw_lock) ::usleep(10000);
  }
  CHECK(saw_lock);
  CHECK(read_file(mbox).empty());
  REQUIRE(::write(release[1], "x", 1) == 1);
  int status = 0;
  REQUIRE(::waitpid(deliverer, &status, 0) == deliverer);
  ::waitpid(holder, nullptr, 0);
  CHECK((WIFEXITED(status) && WEXITSTATUS(status) == 0));
  CHECK(read_file(mbox).ends_with("x\n\n"));
  CHECK_FALSE(file_exists(mbox + ".lock"));
  for (int fd : {ready[0], ready[1], release[0], release[1]}) ::close(fd);
}

TEST_CASE("mbox: a size limit hit mid-write leaves the mailbox as it was", "[mailbox][mbox]") {
  TempDir dir;
  std::string mbox = dir.path + "/bob";
  REQUIRE(deliver_to_mbox(mbox, content("one\n")).ok());
  std::string before = read_file(mbox);
  MboxOptions opt;
  opt.size_limit = before.size() + 1000;
  std::string big(300000, 'y');  // more than one write buffer, so part is written
  MailboxResult r = deliver_to_mbox(mbox, content(big), opt);
  CHECK(r.permanent());
  CHECK(r.dsn == "5.2.2");
  CHECK(read_file(mbox) == before);
  CHECK_FALSE(file_exists(mbox + ".lock"));
  // Small enough still fits.
  CHECK(deliver_to_mbox(mbox, content("two\n"), opt).ok());
}

TEST_CASE("mbox: RLIMIT_FSIZE in the middle of a write leaves the mailbox as it was",
          "[mailbox][mbox]") {
  TempDir dir;
  std::string mbox = dir.path + "/bob";
  REQUIRE(deliver_to_mbox(mbox, content("one\n")).ok());
  std::string before = read_file(mbox);
  int code = in_child([&] {
    ::signal(SIGXFSZ, SIG_IGN);
    struct rlimit rl {};
    rl.rlim_cur = rl.rlim_max = before.size() + 100;
    if (::setrlimit(RLIMIT_FSIZE, &rl) < 0) return 99;
    return exit_code(deliver_to_mbox(mbox, content(std::string(5000, 'z') + "\n")));
  });
  CHECK(code == 52);  // EFBIG: 5.2.2
  CHECK(read_file(mbox) == before);
  CHECK_FALSE(file_exists(mbox + ".lock"));
}

TEST_CASE("mbox: concurrent deliveries from 4 processes give 100 intact messages",
          "[mailbox][mbox]") {
  TempDir dir;
  std::string mbox = dir.path + "/bob";
  constexpr int kProcs = 4, kEach = 25;
  constexpr size_t kBig = 150000;
  std::vector<pid_t> kids;
  for (int p = 0; p < kProcs; ++p) {
    pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      for (int i = 0; i < kEach; ++i) {
        // Bodies of different sizes, each needing several write() calls.
        std::string id = std::to_string(p) + "-" + std::to_string(i);
        std::string body = "Subject: " + id + "\n\n" + std::string(kBig + (i * 997) % 70000, 'a' + p) +
                           "\nend " + id + "\n";
        MboxOptions opt;
        opt.lock_wait = std::chrono::seconds(60);
        if (!deliver_to_mbox(mbox, content(body), opt).ok()) ::_exit(1);
      }
      ::_exit(0);
    }
    kids.push_back(pid);
  }
  for (pid_t pid : kids) {
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    CHECK((WIFEXITED(status) && WEXITSTATUS(status) == 0));
  }
  std::string text = read_file(mbox);
  // Split at separator lines; every piece must be exactly one whole message.
  std::vector<std::string> pieces;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t next = text.find("\n\nFrom alice@example.org ", pos);
    size_t end = next == std::string::npos ? text.size() : next + 2;
    pieces.push_back(text.substr(pos, end - pos));
    pos = end;
  }
  CHECK(pieces.size() == kProcs * kEach);
  std::set<std::string> seen;
  for (const auto& piece : pieces) {
    size_t nl = piece.find('\n');
    CHECK(std::regex_match(piece.substr(0, nl), kFromLine));
    std::string rest = piece.substr(nl + 1);
    REQUIRE(rest.starts_with(kPrefix + "Subject: "));
    std::string id = rest.substr(kPrefix.size() + 9, rest.find('\n', kPrefix.size()) - kPrefix.size() - 9);
    int p = id[0] - '0';
    int i = std::stoi(id.substr(2));
    std::string body = "Subject: " + id + "\n\n" + std::string(kBig + (i * 997) % 70000, 'a' + p) +
                       "\nend " + id + "\n";
    CHECK(rest == kPrefix + body + "\n");
    seen.insert(id);
  }
  CHECK(seen.size() == kProcs * kEach);
  CHECK_FALSE(file_exists(mbox + ".lock"));
}

TEST_CASE("spool mailbox: created for the user, a link or another owner's file refused", "[mailbox]") {
  TempDir dir;
  uid_t uid = ::geteuid();
  gid_t gid = ::getegid();
  std::string box = dir.path + "/user";
  MailboxResult made = prepare_spool_mailbox(box, uid, gid);
  REQUIRE(made.ok());
  CHECK(mode_of(box) == 0600);
  CHECK(prepare_spool_mailbox(box, uid, gid).ok());  // an existing one of the user's

  std::string victim = dir.write("victim", "keep\n");
  std::string link = dir.path + "/linked";
  REQUIRE(::symlink(victim.c_str(), link.c_str()) == 0);
  MailboxResult refused = prepare_spool_mailbox(link, uid, gid);
  CHECK(refused.temporary());
  CHECK(refused.text.find("symbolic link") != std::string::npos);
  CHECK(read_file(victim) == "keep\n");

  MailboxResult other = prepare_spool_mailbox(box, uid + 1, gid);
  CHECK(other.temporary());
  CHECK(other.text.find("not the recipient") != std::string::npos);
  if (uid == 0) {  // only root can give the file away
    std::string given = dir.path + "/given";
    REQUIRE(prepare_spool_mailbox(given, 65534, 65534).ok());
    struct stat st;
    REQUIRE(::stat(given.c_str(), &st) == 0);
    CHECK(st.st_uid == 65534);
  }
}

TEST_CASE("mbox_from_line names MAILER-DAEMON for the null sender", "[mailbox]") {
  CHECK(mbox_from_line("", 0).starts_with("From MAILER-DAEMON "));
  CHECK(mbox_from_line("a b@c", 0).starts_with("From a_b@c "));
  CHECK(mbox_from_line("x@y", 0).ends_with("\n"));
}
