// Unit tests for queue files and the spool: the record format (round trip and a
// golden byte dump), the reader against truncated and damaged files, the in-place
// recipient mark, moves that refuse hostile IDs, and the startup scan.
#include <catch2/catch.hpp>

#include "temp_dir.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

#include "mail/queue_file.h"
#include "mail/queue_id.h"
#include "mail/spool.h"
#include "util/file.h"

using namespace postern;
using postern::test::TempDir;
namespace fs = std::filesystem;

namespace {

SpoolOwners own_ids() {
  SpoolOwners o;
  o.owner = o.root_uid = ::geteuid();
  o.group = o.setgid_group = o.root_gid = ::getegid();
  return o;
}

// A temporary spool with every folder.
struct TestSpool {
  TempDir tmp;
  std::string root = tmp.path + "/spool";
  TestSpool() { create_spool(root, own_ids()); }
  std::string dir(QueueName q) const { return root + "/" + std::string(queue_folder(q)); }
};

std::vector<std::string> names_in(const std::string& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

mode_t mode_of(const std::string& path) {
  struct stat st;
  REQUIRE(::lstat(path.c_str(), &st) == 0);
  return st.st_mode & 07777;
}

// Writes a small complete queue file into dir and returns its path.
std::string small_message(const std::string& dir, std::vector<std::string> rcpts = {"b@example.org"}) {
  QueueFileWriter w(dir);
  w.set_sender("a@example.com");
  for (const auto& r : rcpts) w.add_recipient(r);
  w.write_content("Subject: hi\n\nbody\n");
  return w.commit();
}

// Overwrites path with bytes, keeping or dropping u+x.
void put_bytes(const std::string& path, const std::string& bytes, mode_t mode) {
  ::unlink(path.c_str());
  UniqueFd fd = open_file(path, O_WRONLY | O_CREAT | O_EXCL, mode);
  write_all(fd.get(), bytes);
  REQUIRE(::fchmod(fd.get(), mode) == 0);
}

std::string hex(const std::string& bytes) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (unsigned char c : bytes) {
    out += digits[c >> 4];
    out += digits[c & 15];
  }
  return out;
}

}  // namespace

TEST_CASE("queue file: every record type survives a round trip", "[queue_file]") {
  TestSpool spool;
  std::string big(200000, 'x');  // several flushes; the header/body boundary falls between two writes
  QueueFileWriter w(spool.dir(QueueName::kIncoming));
  std::string id = w.queue_id();
  REQUIRE(is_valid_queue_id(id));
  CHECK(mode_of(w.temp_path()) == 0600);
  w.set_arrival_time(1700000000, 654321);
  w.set_sender("");  // the null sender <>
  w.set_envid("QQ314159");
  w.set_ret(DsnRet::kHeaders);
  w.add_attribute(attr::kClientAddress, "192.0.2.7");
  w.add_attribute(attr::kHeloName, "client.example");
  w.add_attribute("future_thing", std::string("with\0nul", 8));
  w.add_recipient("one@example.org", "rfc822;One@Example.org", kNotifySuccess | kNotifyFailure);
  w.add_recipient("two@example.org");
  w.add_recipient("three@example.org", "", kNotifyNever);
  w.write_content("Subject: big\n");
  w.write_content("X: y\n");
  w.write_content("\nbody starts here\n");
  w.write_content(big);
  w.add_recipient("extracted@example.net", "rfc822;extracted@example.net", kNotifyDelay);
  w.add_attribute(attr::kSaslUsername, "alice");
  std::string path = w.commit();
  CHECK(path == spool.dir(QueueName::kIncoming) + "/" + id);
  CHECK(mode_of(path) == 0700);
  CHECK(names_in(spool.dir(QueueName::kIncoming)) == std::vector<std::string>{id});

  QueueFileStatus status = QueueFileStatus::kCorrupt;
  auto qf = QueueFile::open(path, O_RDONLY, &status);
  REQUIRE(qf.ok());
  CHECK(status == QueueFileStatus::kOk);
  CHECK(qf->queue_id() == id);
  const QueueEnvelope& env = qf->envelope();
  CHECK(env.arrival_seconds == 1700000000);
  CHECK(env.arrival_microseconds == 654321);
  CHECK(env.sender.empty());
  CHECK(env.envid == "QQ314159");
  CHECK(env.ret == DsnRet::kHeaders);
  CHECK(env.attribute(attr::kClientAddress) == "192.0.2.7");
  CHECK(env.attribute(attr::kHeloName) == "client.example");
  CHECK(env.attribute("future_thing") == std::string("with\0nul", 8));
  CHECK(env.attribute(attr::kSaslUsername) == "alice");
  CHECK(env.attribute("absent").empty());
  REQUIRE(env.recipients.size() == 4);
  CHECK(env.recipients[0].address == "one@example.org");
  CHECK(env.recipients[0].orcpt == "rfc822;One@Example.org");
  CHECK(env.recipients[0].notify == (kNotifySuccess | kNotifyFailure));
  CHECK(env.recipients[1].address == "two@example.org");
  CHECK(env.recipients[1].orcpt.empty());
  CHECK(env.recipients[1].notify == 0);
  CHECK(env.recipients[2].notify == kNotifyNever);
  CHECK(env.recipients[3].address == "extracted@example.net");
  CHECK(env.recipients[3].notify == kNotifyDelay);
  CHECK(env.recipients[3].offset == env.content_offset + env.content_size);  // right after the content
  for (const auto& r : env.recipients) CHECK_FALSE(r.done);
  CHECK(env.undone_count() == 4);
  std::string text = "Subject: big\nX: y\n\nbody starts here\n" + big;
  CHECK(env.content_size == text.size());
  CHECK(qf->content() == text);
  CHECK(qf->header() == "Subject: big\nX: y\n\n");
  CHECK(qf->body() == "body starts here\n" + big);
  char buf[4];
  CHECK(qf->read_content(text.size() - 2, buf, sizeof buf) == 2);
  CHECK(qf->read_content(text.size(), buf, sizeof buf) == 0);
}

TEST_CASE("queue file: a message without a body, and one that is empty", "[queue_file]") {
  TestSpool spool;
  for (std::string text : {std::string("Subject: only headers\n"), std::string()}) {
    QueueFileWriter w(spool.dir(QueueName::kIncoming));
    w.set_sender("a@example.com");
    w.add_recipient("b@example.org");
    if (!text.empty()) w.write_content(text);
    auto qf = QueueFile::open(w.commit());
    REQUIRE(qf.ok());
    CHECK(qf->content() == text);
    CHECK(qf->header() == text);
    CHECK(qf->body().empty());
    CHECK(qf->envelope().body_offset == qf->envelope().content_offset + text.size());
  }
}

TEST_CASE("queue file: golden bytes", "[queue_file]") {
  TestSpool spool;
  QueueFileWriter w(spool.dir(QueueName::kIncoming));
  w.set_arrival_time(1700000000, 123456);
  w.set_sender("a@x");
  w.set_envid("E1");
  w.set_ret(DsnRet::kFull);
  w.add_attribute(attr::kClientAddress, "10.0.0.1");
  w.add_recipient("b@y", "rfc822;b@y", kNotifySuccess | kNotifyFailure);
  w.write_content("Subject: t\n\nhi\n");
  std::string path = w.commit();
  const std::string golden =
      "56" "00000004" "00000001"                    // V  version 1
      "53" "0000001c"                               // S  28 bytes:
      "0000000000000086"                            //    content offset 134
      "000000000000000f"                            //    content size 15
      "0000000000000092"                            //    body offset 146
      "00000001"                                    //    1 recipient
      "54" "0000000c" "000000006553f100" "0001e240"  // T  1700000000 s, 123456 us
      "46" "00000003" "614078"                      // F  a@x
      "45" "00000002" "4531"                        // E  E1
      "4d" "00000001" "46"                          // M  RET=FULL
      "41" "00000017" "636c69656e745f61646472657373" "00" "31302e302e302e31"  // A client_address=10.0.0.1
      "52" "00000010" "06" "000a" "7266633832323b624079" "624079"  // R  notify, orcpt, b@y
      "43" "0000000f" "5375626a6563743a20740a0a68690a"                // C  Subject: t\n\nhi\n
      "5a" "00000000";                                                // Z  END
  CHECK(hex(read_file(path)) == golden);
}

TEST_CASE("queue file: truncation at every offset is an error, never a crash", "[queue_file]") {
  TestSpool spool;
  std::string good = small_message(spool.dir(QueueName::kIncoming), {"b@example.org", "c@example.org"});
  const std::string bytes = read_file(good);
  REQUIRE(QueueFile::open(good).ok());
  std::string cut = spool.dir(QueueName::kDeferred) + "/" + basename_of(good);
  for (size_t n = 0; n < bytes.size(); ++n) {
    put_bytes(cut, bytes.substr(0, n), 0700);
    QueueFileStatus status = QueueFileStatus::kOk;
    auto qf = QueueFile::open(cut, O_RDONLY, &status);
    INFO("length " << n << ": " << qf.error());
    CHECK_FALSE(qf.ok());
    CHECK(status == QueueFileStatus::kIncomplete);
  }
  put_bytes(cut, bytes, 0700);
  CHECK(QueueFile::open(cut).ok());
  put_bytes(cut, bytes + "x", 0700);
  QueueFileStatus status = QueueFileStatus::kOk;
  CHECK_FALSE(QueueFile::open(cut, O_RDONLY, &status).ok());
  CHECK(status == QueueFileStatus::kCorrupt);
}

TEST_CASE("queue file: damaged bytes are an error or a valid file, never a crash", "[queue_file]") {
  TestSpool spool;
  std::string good = small_message(spool.dir(QueueName::kIncoming));
  const std::string bytes = read_file(good);
  std::string bad = spool.dir(QueueName::kDeferred) + "/" + basename_of(good);
  size_t failures = 0, tries = 0;
  for (size_t i = 0; i < bytes.size(); ++i) {
    for (int v : {0x00, 0x01, 0x7f, 0x80, 0xff, int{'R'}, int{'Z'}}) {
      if (static_cast<unsigned char>(bytes[i]) == v) continue;
      std::string copy = bytes;
      copy[i] = static_cast<char>(v);
      put_bytes(bad, copy, 0700);
      auto qf = QueueFile::open(bad);
      ++tries;
      if (!qf.ok()) ++failures;
      else CHECK(qf->content().size() == qf->envelope().content_size);
    }
  }
  // Bytes in addresses and content may change freely; lengths, types and sizes may not.
  CHECK(failures > tries / 3);
}

TEST_CASE("queue file: no END or no owner-execute bit means incomplete", "[queue_file]") {
  TestSpool spool;
  std::string good = small_message(spool.dir(QueueName::kIncoming));
  const std::string bytes = read_file(good);
  REQUIRE(bytes.substr(bytes.size() - 5) == std::string("Z\0\0\0\0", 5));
  std::string path = spool.dir(QueueName::kDeferred) + "/" + basename_of(good);

  put_bytes(path, bytes, 0700);
  CHECK(QueueFile::open(path).ok());

  put_bytes(path, bytes, 0600);
  QueueFileStatus status = QueueFileStatus::kOk;
  auto no_x = QueueFile::open(path, O_RDONLY, &status);
  CHECK_FALSE(no_x.ok());
  CHECK(status == QueueFileStatus::kIncomplete);
  CHECK(no_x.error().find("owner-execute") != std::string::npos);

  put_bytes(path, bytes.substr(0, bytes.size() - 5), 0700);
  status = QueueFileStatus::kOk;
  auto no_end = QueueFile::open(path, O_RDONLY, &status);
  CHECK_FALSE(no_end.ok());
  CHECK(status == QueueFileStatus::kIncomplete);
  CHECK(no_end.error().find("END") != std::string::npos);

  status = QueueFileStatus::kOk;
  CHECK_FALSE(QueueFile::open(spool.dir(QueueName::kHold) + "/0000000000z1", O_RDONLY, &status).ok());
  CHECK(status == QueueFileStatus::kMissing);
}

TEST_CASE("queue file: wrong record types and lengths are corrupt", "[queue_file]") {
  TestSpool spool;
  std::string good = small_message(spool.dir(QueueName::kIncoming));
  const std::string bytes = read_file(good);
  std::string path = spool.dir(QueueName::kDeferred) + "/" + basename_of(good);
  auto status_of = [&](std::string copy) {
    put_bytes(path, copy, 0700);
    QueueFileStatus status = QueueFileStatus::kOk;
    auto qf = QueueFile::open(path, O_RDONLY, &status);
    INFO(qf.error());
    CHECK_FALSE(qf.ok());
    return status;
  };
  std::string unknown = bytes;
  unknown[9] = 'Q';  // the SIZE record's type
  CHECK(status_of(unknown) == QueueFileStatus::kCorrupt);
  std::string huge = bytes;
  huge[10] = '\x7f';  // the SIZE record's length
  CHECK(status_of(huge) == QueueFileStatus::kCorrupt);
  std::string version = bytes;
  version[8] = 2;
  CHECK(status_of(version) == QueueFileStatus::kCorrupt);
  std::string count = bytes;
  count[41] = 2;  // the recipient count in SIZE
  CHECK(status_of(count) == QueueFileStatus::kCorrupt);
}

TEST_CASE("queue file: marking a recipient done rewrites one byte", "[queue_file]") {
  TestSpool spool;
  std::string path = small_message(spool.dir(QueueName::kIncoming), {"b@example.org", "c@example.org"});
  const std::string before = read_file(path);
  uint64_t offset;
  {
    auto qf = QueueFile::open(path, O_RDWR);
    REQUIRE(qf.ok());
    REQUIRE(qf->envelope().recipients.size() == 2);
    offset = qf->envelope().recipients[1].offset;
    REQUIRE(mark_recipient_done(qf->fd(), offset).ok());
    CHECK(mark_recipient_done(qf->fd(), offset, true).ok());  // again, with fdatasync: harmless
  }
  const std::string after = read_file(path);
  REQUIRE(after.size() == before.size());
  std::vector<size_t> changed;
  for (size_t i = 0; i < before.size(); ++i)
    if (before[i] != after[i]) changed.push_back(i);
  CHECK(changed == std::vector<size_t>{offset});
  CHECK(after[offset] == 'D');

  auto again = QueueFile::open(path);
  REQUIRE(again.ok());
  CHECK_FALSE(again->envelope().recipients[0].done);
  CHECK(again->envelope().recipients[1].done);
  CHECK(again->envelope().recipients[1].address == "c@example.org");
  CHECK(again->envelope().undone_count() == 1);

  // An offset that is not a recipient record changes nothing.
  auto rw = QueueFile::open(path, O_RDWR);
  REQUIRE(rw.ok());
  for (uint64_t bad : {uint64_t{0}, uint64_t{9}, offset + 1, uint64_t{after.size()}, uint64_t{1} << 40})
    CHECK_FALSE(mark_recipient_done(rw->fd(), bad).ok());
  CHECK(read_file(path) == after);
}

TEST_CASE("queue file: moves go by rename and refuse IDs that leave the spool", "[queue_file]") {
  TestSpool spool;
  std::string path = small_message(spool.dir(QueueName::kIncoming));
  std::string id = basename_of(path);
  put_bytes(spool.root + "/x", "outside", 0700);
  for (const std::string& bad : std::vector<std::string>{"../x", "a/b", "", ".", "..", "../../etc/passwd", id + "/", "/" + id, id + ".tmp"}) {
    INFO(bad);
    CHECK_FALSE(move_queue_file(spool.root, bad, QueueName::kIncoming, QueueName::kActive).ok());
  }
  CHECK(file_exists(spool.root + "/x"));
  CHECK(names_in(spool.dir(QueueName::kActive)).empty());

  REQUIRE(move_queue_file(spool.root, id, QueueName::kIncoming, QueueName::kActive).ok());
  CHECK(names_in(spool.dir(QueueName::kIncoming)).empty());
  CHECK(names_in(spool.dir(QueueName::kActive)) == std::vector<std::string>{id});
  CHECK_FALSE(move_queue_file(spool.root, id, QueueName::kIncoming, QueueName::kActive).ok());  // gone
  REQUIRE(move_queue_file(spool.root, id, QueueName::kActive, QueueName::kHold, true).ok());
  REQUIRE(move_queue_file(spool.root, id, QueueName::kHold, QueueName::kDeferred).ok());
  CHECK(QueueFile::open(queue_file_path(spool.root, QueueName::kDeferred, id)).ok());

  // Never over an existing file of the same ID.
  put_bytes(spool.dir(QueueName::kActive) + "/" + id, "other", 0700);
  CHECK_FALSE(move_queue_file(spool.root, id, QueueName::kDeferred, QueueName::kActive).ok());
  CHECK(read_file(spool.dir(QueueName::kActive) + "/" + id) == "other");
  CHECK(file_exists(spool.dir(QueueName::kDeferred) + "/" + id));
}

TEST_CASE("queue file: a writer that never commits leaves nothing behind", "[queue_file]") {
  TestSpool spool;
  std::string dir = spool.dir(QueueName::kIncoming);
  {
    QueueFileWriter w(dir);
    w.set_sender("a@example.com");
    w.add_recipient("b@example.org");
    w.write_content(std::string(300000, 'y'));
    CHECK(file_exists(w.temp_path()));
    CHECK(names_in(dir).size() == 1);
  }
  CHECK(names_in(dir).empty());
  {
    QueueFileWriter w(dir);
    w.set_sender("a@example.com");
    CHECK_THROWS_AS(w.commit(), std::logic_error);  // no recipients: a bug in the caller
    w.write_content("text");
    CHECK_THROWS_AS(w.set_sender("late@example.com"), std::logic_error);
    CHECK_THROWS_AS(w.add_recipient("x", "", kNotifyNever | kNotifyDelay), std::invalid_argument);
  }
  CHECK(names_in(dir).empty());
}

TEST_CASE("queue file: commit into another folder, ids differ per file", "[queue_file]") {
  TestSpool spool;
  QueueFileWriter w(spool.dir(QueueName::kMaildrop), 0644);
  CHECK(mode_of(w.temp_path()) == 0644);
  w.set_sender("user@localhost");
  w.add_recipient("b@example.org");
  std::string second = small_message(spool.dir(QueueName::kIncoming));
  CHECK(w.queue_id() != basename_of(second));
  std::string path = w.commit(spool.dir(QueueName::kIncoming), QueueFileWriter::FolderSync::kLater);
  sync_folder(spool.dir(QueueName::kIncoming));
  CHECK(path == spool.dir(QueueName::kIncoming) + "/" + w.queue_id());
  CHECK(mode_of(path) == 0744);
  CHECK(QueueFile::open(path).ok());
  CHECK(names_in(spool.dir(QueueName::kMaildrop)).empty());
}

TEST_CASE("spool: create, check, list", "[queue_file]") {
  TestSpool spool;
  CHECK(check_spool(spool.root, own_ids()).empty());
  // The modes docs/queue.md promises, spelled out here rather than taken from the table.
  const std::vector<std::pair<std::string, mode_t>> modes = {
      {"", 0755},         {"maildrop", 01730}, {"incoming", 0700}, {"active", 0700}, {"deferred", 0700},
      {"hold", 0700},     {"corrupt", 0700},   {"bounce", 0700},   {"defer", 0700},  {"trace", 0700},
      {"private", 0700},  {"public", 0710},    {"pid", 0755}};
  CHECK(kSpoolFolders.size() == modes.size());
  for (const auto& [name, mode] : modes) {
    INFO(name);
    CHECK(fs::is_directory(spool.root + "/" + name));
    CHECK(mode_of(spool.root + "/" + name) == mode);
  }

  REQUIRE(::chmod(spool.dir(QueueName::kHold).c_str(), 0755) == 0);
  auto problems = check_spool(spool.root, own_ids());
  REQUIRE(problems.size() == 1);
  CHECK(problems[0].find("hold") != std::string::npos);
  create_spool(spool.root, own_ids());  // repairs
  CHECK(check_spool(spool.root, own_ids()).empty());

  std::vector<std::string> ids;
  for (int i = 0; i < 3; ++i) ids.push_back(basename_of(small_message(spool.dir(QueueName::kDeferred))));
  QueueFileWriter pending(spool.dir(QueueName::kDeferred));
  put_bytes(spool.dir(QueueName::kDeferred) + "/README", "junk", 0600);
  std::sort(ids.begin(), ids.end());
  CHECK(list_queue(spool.root, QueueName::kDeferred) == ids);
  CHECK(list_queue(spool.root, QueueName::kHold).empty());
}

TEST_CASE("spool: the startup scan removes incomplete files and keeps complete ones", "[queue_file]") {
  TestSpool spool;
  std::string complete_in = small_message(spool.dir(QueueName::kIncoming));
  std::string complete_def = small_message(spool.dir(QueueName::kDeferred));
  std::string bytes = read_file(complete_def);

  // What a writer that crashed before commit() leaves: a temporary file.
  std::string temp = spool.dir(QueueName::kIncoming) + "/tmp.99999.0";
  put_bytes(temp, bytes.substr(0, 40), 0600);
  REQUIRE(file_exists(temp));
  std::string no_x_in = spool.dir(QueueName::kIncoming) + "/0000000000z1";
  put_bytes(no_x_in, bytes, 0600);
  std::string no_x_def = spool.dir(QueueName::kDeferred) + "/0000000000z2";
  put_bytes(no_x_def, bytes, 0600);
  std::string no_end_def = spool.dir(QueueName::kDeferred) + "/0000000000z3";
  put_bytes(no_end_def, bytes.substr(0, bytes.size() - 5), 0700);
  std::string junk = spool.dir(QueueName::kHold) + "/notes";
  put_bytes(junk, "x", 0600);

  // Young files are left to the writer that may still own them.
  SpoolScan careful = scan_spool(spool.root, 3600);
  CHECK(careful.removed.empty());
  CHECK(file_exists(temp));
  CHECK(file_exists(no_x_in));

  SpoolScan scan = scan_spool(spool.root);
  CHECK(scan.complete == 2);
  std::sort(scan.removed.begin(), scan.removed.end());
  CHECK(scan.removed == std::vector<std::string>{"incoming/0000000000z1", "incoming/" + basename_of(temp)});
  CHECK_FALSE(file_exists(temp));
  CHECK_FALSE(file_exists(no_x_in));
  CHECK(file_exists(complete_in));
  CHECK(file_exists(complete_def));
  CHECK(names_in(spool.dir(QueueName::kCorrupt)) == std::vector<std::string>{"0000000000z2", "0000000000z3"});
  CHECK(file_exists(junk));
  REQUIRE(scan.skipped.size() == 1);
  CHECK(scan.skipped[0].find("hold/notes") == 0);

  SpoolScan second = scan_spool(spool.root);
  CHECK(second.complete == 2);
  CHECK(second.removed.empty());
  CHECK(second.quarantined.empty());
}

TEST_CASE("queue file: finish_unnamed hands over a complete file without a name", "[queue_file]") {
  TempDir tmp;
  UniqueFd fd;
  {
    QueueFileWriter w(tmp.path);
    w.set_sender("a@example.com");
    w.add_recipient("b@example.org");
    w.write_content("Subject: hi\n\nbody\n");
    fd = w.finish_unnamed();
    CHECK_THROWS_AS(w.commit(), std::logic_error);
  }
  CHECK(names_in(tmp.path).empty());  // the temporary name is gone with the writer
  auto qf = QueueFile::from_fd(std::move(fd), "standard input");
  REQUIRE(qf);
  CHECK(qf->envelope().sender == "a@example.com");
  CHECK(qf->content() == "Subject: hi\n\nbody\n");
}

TEST_CASE("spool: a complete temporary file in maildrop is recovered, not removed", "[queue_file]") {
  TestSpool spool;
  std::string bytes = read_file(small_message(spool.dir(QueueName::kDeferred)));
  std::string lost = spool.dir(QueueName::kMaildrop) + "/tmp.4242.0";
  put_bytes(lost, bytes, 0744);
  std::string half = spool.dir(QueueName::kMaildrop) + "/tmp.4242.1";
  put_bytes(half, bytes, 0644);  // no owner-execute bit: never finished
  struct timespec old[2] = {{::time(nullptr) - 60, 0}, {::time(nullptr) - 60, 0}};
  REQUIRE(::utimensat(AT_FDCWD, lost.c_str(), old, 0) == 0);
  REQUIRE(::utimensat(AT_FDCWD, half.c_str(), old, 0) == 0);
  SpoolScan scan = scan_spool(spool.root);
  REQUIRE(scan.recovered.size() == 1);
  std::vector<std::string> left = names_in(spool.dir(QueueName::kMaildrop));
  REQUIRE(left.size() == 1);
  CHECK(is_valid_queue_id(left[0]));
  CHECK(scan.recovered[0] == "maildrop/" + left[0]);
  CHECK(read_file(spool.dir(QueueName::kMaildrop) + "/" + left[0]) == bytes);
  CHECK(scan.removed == std::vector<std::string>{"maildrop/tmp.4242.1"});
}

TEST_CASE("spool: requeue_active moves active back to incoming", "[queue_file]") {
  TestSpool spool;
  std::string id = basename_of(small_message(spool.dir(QueueName::kIncoming)));
  REQUIRE(move_queue_file(spool.root, id, QueueName::kIncoming, QueueName::kActive).ok());
  CHECK(requeue_active(spool.root) == 1);
  CHECK(list_queue(spool.root, QueueName::kIncoming) == std::vector<std::string>{id});
  CHECK(list_queue(spool.root, QueueName::kActive).empty());
}
