// hash: and btree: tables: Berkeley DB files (NAME.db) read by open_table() and
// written by postmap and postalias through DbWriter.
//
// File compatibility with Postfix on Linux: keys and values are stored with a
// trailing NUL, and a reader tries a key with the NUL first and then without, so
// either program reads the other's files.
//
// A table is never modified in place. DbWriter builds a complete new file under a
// temporary name in the same directory and renames it over the old one, so a
// reader sees the old table or the new one, never a mix; readers notice the new
// file (a new inode) and reopen it. Writers that change a table (delete, add)
// take turns, so that concurrent changes are not lost.
#pragma once

#include <sys/types.h>

#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>

#include "util/fd.h"

namespace postern {

enum class DbType { kHash, kBtree };

// The Berkeley DB type of a table type name ("hash", "btree"), or nothing.
std::optional<DbType> db_type_named(std::string_view type);

// The Berkeley DB cache of every hash: or btree: table that this process opens for
// reading from now on (0: the library's default of a few hundred KB). Daemons keep
// the default, as Postfix's berkeley_db_read_buffer_size does; postmap -q, which
// answers many keys at once, gives the cache room for a whole table so that each
// page is read from the file once. Memory is taken only as pages are read.
void set_db_read_cache_size(size_t bytes);

class DbFile;  // an open Berkeley DB handle, in table_db.cc

class DbWriter {
 public:
  enum class OnDuplicate { kKeepFirst, kReplace };

  // Starts db_path anew under a temporary name; mode is the new file's permissions.
  // nul: store keys and values with a trailing NUL (the Linux convention).
  DbWriter(DbType type, std::string db_path, mode_t mode, OnDuplicate on_duplicate, bool nul = true);
  // Removes the temporary file of a writer that was never committed.
  ~DbWriter();
  DbWriter(const DbWriter&) = delete;
  DbWriter& operator=(const DbWriter&) = delete;

  // Copies every entry of the current db_path except those whose key is in except;
  // returns how many were left out (postmap -d, postmap -i). A missing file is a
  // ConfigError, as when a reader opens it.
  size_t copy_current(const std::set<std::string, std::less<>>& except = {});
  // Adds an entry; returns false when the key was there already, in which case
  // the first value is kept or replaced as on_duplicate says.
  bool put(std::string_view key, std::string_view value);
  // Closes the new file, makes it durable, and renames it over db_path.
  void commit();

 private:
  DbType type_;
  std::string path_;
  std::string temp_path_;
  OnDuplicate on_duplicate_;
  bool nul_;
  std::unique_ptr<DbFile> db_;
  UniqueFd lock_;  // the table file in place, locked while this writer replaces it
  bool committed_ = false;
};

}  // namespace postern
