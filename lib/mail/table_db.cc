// hash: and btree: tables on Berkeley DB 5.3: the reader behind open_table(),
// which follows a file that postmap replaced, and DbWriter, which builds a new
// file beside the old one and renames it into place.
#include "mail/table_db.h"

#include <db.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <functional>
#include <utility>

#include "mail/table.h"
#include "mail/table_types.h"
#include "util/error.h"
#include "util/file.h"
#include "util/log.h"

namespace postern {

namespace {

// Berkeley DB's own messages add detail to the error codes we report; keep them for -v.
void db_message(const DB_ENV*, const char*, const char* message) { log_debug("berkeley db: %s", message); }

std::string db_error(int ret) { return db_strerror(ret); }

[[noreturn]] void throw_db(int ret, const std::string& what) {
  if (ret > 0) throw SystemError(ret, what);
  throw ConfigError(what, 0, db_error(ret));
}

DBT make_dbt(std::string_view bytes) {
  DBT d;
  std::memset(&d, 0, sizeof d);
  d.data = const_cast<char*>(bytes.data());
  d.size = static_cast<u_int32_t>(bytes.size());
  return d;
}

std::string_view view_of(const DBT& d) { return {static_cast<const char*>(d.data), d.size}; }

// A key or value as the tools show it: without the trailing NUL of the Linux convention.
std::string_view without_nul(std::string_view s) {
  return !s.empty() && s.back() == '\0' ? s.substr(0, s.size() - 1) : s;
}

// A Berkeley DB cursor, closed when the owner goes away.
class DbCursor {
 public:
  explicit DbCursor(DB* db, const std::string& path) {
    int ret = db->cursor(db, nullptr, &cursor_, 0);
    if (ret != 0) throw_db(ret, "cursor on " + path);
  }
  ~DbCursor() { cursor_->close(cursor_); }
  DbCursor(const DbCursor&) = delete;
  DbCursor& operator=(const DbCursor&) = delete;
  DBC* get() const { return cursor_; }

 private:
  DBC* cursor_ = nullptr;
};

}  // namespace

// An open Berkeley DB handle, closed when the owner goes away.
class DbFile {
 public:
  // cache_bytes: the size of Berkeley DB's page cache for this file, 0 for its default.
  DbFile(DbType type, std::string path, u_int32_t flags, int mode, size_t cache_bytes = 0)
      : path_(std::move(path)) {
    DB* db = nullptr;
    int ret = db_create(&db, nullptr, 0);
    if (ret != 0) throw_db(ret, "db_create for " + path_);
    db_.reset(db);  // owned from here on: a handle whose open fails must still be closed
    db_->set_errcall(db_.get(), db_message);
    if (cache_bytes > 0) {
      constexpr size_t kGig = size_t{1} << 30;
      ret = db_->set_cachesize(db_.get(), static_cast<u_int32_t>(cache_bytes / kGig),
                               static_cast<u_int32_t>(cache_bytes % kGig), 1);
      if (ret != 0) throw_db(ret, "cache size for " + path_);
    }
    ret = db_->open(db_.get(), nullptr, path_.c_str(), nullptr, type == DbType::kHash ? DB_HASH : DB_BTREE,
                    flags, mode);
    if (ret != 0) {
      if (flags & DB_RDONLY) throw ConfigError(path_, 0, "cannot open table: " + db_error(ret));
      throw_db(ret, "create " + path_);
    }
  }

  int fd() const {
    int fd = -1;
    int ret = db_->fd(db_.get(), &fd);
    if (ret != 0) throw_db(ret, "fd of " + path_);
    return fd;
  }

  // The value stored under exactly these bytes: 0 found, DB_NOTFOUND, or an error code.
  // value points into Berkeley DB's own memory, valid until the next call on this file.
  int get(std::string_view key, std::string_view& value) const {
    DBT k = make_dbt(key);
    DBT v = make_dbt({});
    int ret = db_->get(db_.get(), nullptr, &k, &v, 0);
    if (ret == 0) value = view_of(v);
    return ret;
  }

  // Stores an entry; returns false when keep_existing and the key was there.
  bool put(std::string_view key, std::string_view value, bool keep_existing) {
    DBT k = make_dbt(key);
    DBT v = make_dbt(value);
    int ret = db_->put(db_.get(), nullptr, &k, &v, keep_existing ? DB_NOOVERWRITE : 0);
    if (ret == DB_KEYEXIST) return false;
    if (ret != 0) throw_db(ret, "write " + path_);
    return true;
  }

  // Every entry as stored, trailing NULs included.
  void for_each_raw(const std::function<void(std::string_view, std::string_view)>& fn) const {
    DbCursor cursor(db_.get(), path_);
    DBT k = make_dbt({});
    DBT v = make_dbt({});
    int ret;
    while ((ret = cursor.get()->get(cursor.get(), &k, &v, DB_NEXT)) == 0) fn(view_of(k), view_of(v));
    if (ret != DB_NOTFOUND) throw_db(ret, "read " + path_);
  }

  // Closes and reports a failure to flush, which the destructor cannot.
  void close() {
    DB* db = db_.release();
    int ret = db->close(db, 0);
    if (ret != 0) throw_db(ret, "close " + path_);
  }

 private:
  struct Closer {
    void operator()(DB* db) const noexcept { db->close(db, 0); }
  };
  std::string path_;
  std::unique_ptr<DB, Closer> db_;
};

namespace {
size_t read_cache_size = 0;  // set_db_read_cache_size
}  // namespace

void set_db_read_cache_size(size_t bytes) { read_cache_size = bytes; }

std::optional<DbType> db_type_named(std::string_view type) {
  if (type == "hash") return DbType::kHash;
  if (type == "btree") return DbType::kBtree;
  return std::nullopt;
}

namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kRecheckInterval = std::chrono::seconds(1);

// Which file a path named at one moment: a rebuilt table is a new inode.
struct FileIdentity {
  dev_t dev = 0;
  ino_t ino = 0;
  struct timespec mtime {};
  bool operator==(const FileIdentity& o) const {
    return dev == o.dev && ino == o.ino && mtime.tv_sec == o.mtime.tv_sec && mtime.tv_nsec == o.mtime.tv_nsec;
  }
  static FileIdentity of(const struct stat& st) { return {st.st_dev, st.st_ino, st.st_mtim}; }
};

class DbTable final : public Table {
 public:
  DbTable(std::string_view type_name, DbType type, std::string_view name, const TableOptions& options)
      : Table(std::string(type_name) + ":" + std::string(name), options),
        type_(type),
        db_path_(std::string(name) + ".db") {
    if (name.empty()) throw ConfigError(spec(), 0, "missing file name");
    open();
  }

  void for_each(const std::function<void(std::string_view, std::string_view)>& fn) override {
    db_->for_each_raw([&](std::string_view k, std::string_view v) { fn(without_nul(k), without_nul(v)); });
  }

 protected:
  LookupResult do_lookup(const std::string& key) override {
    follow_rebuild();
    std::string_view value;
    int ret = db_->get(std::string_view(key.c_str(), key.size() + 1), value);  // Postfix's form, with the NUL
    if (ret == DB_NOTFOUND) ret = db_->get(key, value);
    if (ret == DB_NOTFOUND) return LookupResult::not_found();
    if (ret != 0) return LookupResult::temp_fail(spec() + ": " + db_error(ret));
    return LookupResult::found(std::string(without_nul(value)));
  }

 private:
  void open() {
    auto db = std::make_unique<DbFile>(type_, db_path_, DB_RDONLY, 0, read_cache_size);
    struct stat st;
    check_sys(::fstat(db->fd(), &st), "fstat " + db_path_);
    db_ = std::move(db);
    opened_ = failed_ = FileIdentity::of(st);
    checked_ = Clock::now();
  }

  // A long-running reader picks up a table that postmap rebuilt since it opened it.
  void follow_rebuild() {
    Clock::time_point now = Clock::now();
    if (now - checked_ < kRecheckInterval) return;
    checked_ = now;
    struct stat st;
    if (::stat(db_path_.c_str(), &st) < 0) return;  // gone for a moment: keep the open file
    FileIdentity current = FileIdentity::of(st);
    if (current == opened_ || current == failed_) return;
    try {
      open();
      log_debug("%s: reopened after a rebuild", db_path_.c_str());
    } catch (const std::exception& e) {
      failed_ = current;  // warn once per bad file, go on with the open one
      log_warn("%s: keeping the table open before: %s", db_path_.c_str(), e.what());
    }
  }

  DbType type_;
  std::string db_path_;
  std::unique_ptr<DbFile> db_;
  FileIdentity opened_;
  FileIdentity failed_;
  Clock::time_point checked_;
};

// Writers take turns on the table file that is in place: an exclusive flock(2) on
// it, held from reading the old entries until the new file is renamed over it, so
// that two updates (postmap -d, -i) never lose each other's change. A writer that
// waited may hold the lock of a file another one has just replaced: it tries again
// on the new one. flock, not fcntl: closing Berkeley DB's own descriptor for the
// same file must not release the lock. Returns no fd when there is no file yet.
UniqueFd lock_current(const std::string& path) {
  for (;;) {
    UniqueFd fd = open_file_if_exists(path, O_RDONLY);
    if (!fd.valid()) return fd;
    check_sys(retry_eintr([&] { return ::flock(fd.get(), LOCK_EX); }), "lock " + path);
    struct stat held, now;
    check_sys(::fstat(fd.get(), &held), "fstat " + path);
    if (::stat(path.c_str(), &now) == 0 && now.st_dev == held.st_dev && now.st_ino == held.st_ino) return fd;
  }
}

}  // namespace

std::unique_ptr<Table> open_hash_table(std::string_view name, const TableOptions& options) {
  return std::make_unique<DbTable>("hash", DbType::kHash, name, options);
}

std::unique_ptr<Table> open_btree_table(std::string_view name, const TableOptions& options) {
  return std::make_unique<DbTable>("btree", DbType::kBtree, name, options);
}

DbWriter::DbWriter(DbType type, std::string db_path, mode_t mode, OnDuplicate on_duplicate, bool nul)
    : type_(type),
      path_(std::move(db_path)),
      temp_path_(path_ + ".tmp." + std::to_string(::getpid())),
      on_duplicate_(on_duplicate),
      nul_(nul) {
  ::unlink(temp_path_.c_str());  // a leftover of a crashed run with our pid
  db_ = std::make_unique<DbFile>(type_, temp_path_, DB_CREATE | DB_EXCL, mode);
  try {
    check_sys(::fchmod(db_->fd(), mode), "chmod " + temp_path_);  // exactly mode, whatever the umask
  } catch (...) {
    db_.reset();
    ::unlink(temp_path_.c_str());
    throw;
  }
}

DbWriter::~DbWriter() {
  if (committed_) return;
  db_.reset();
  ::unlink(temp_path_.c_str());
}

size_t DbWriter::copy_current(const std::set<std::string, std::less<>>& except) {
  if (!lock_.valid()) lock_ = lock_current(path_);
  DbFile current(type_, path_, DB_RDONLY, 0);
  size_t left_out = 0;
  current.for_each_raw([&](std::string_view k, std::string_view v) {
    if (except.count(without_nul(k))) ++left_out;
    else db_->put(k, v, false);
  });
  return left_out;
}

bool DbWriter::put(std::string_view key, std::string_view value) {
  std::string k(key), v(value);
  if (nul_) {
    k.push_back('\0');
    v.push_back('\0');
  }
  if (db_->put(k, v, true)) return true;
  if (on_duplicate_ == OnDuplicate::kReplace) db_->put(k, v, false);
  return false;
}

void DbWriter::commit() {
  db_->close();
  db_.reset();
  UniqueFd fd = open_file(temp_path_, O_RDONLY);
  fsync_fd(fd.get(), temp_path_);
  fd.reset();
  if (!lock_.valid()) lock_ = lock_current(path_);
  if (::rename(temp_path_.c_str(), path_.c_str()) < 0)
    throw SystemError(errno, "rename " + temp_path_ + " to " + path_);
  committed_ = true;
  lock_.reset();
  fsync_parent_dir(path_);
}

}  // namespace postern
