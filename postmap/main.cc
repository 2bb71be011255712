// postmap: builds, queries and changes lookup tables, as Postfix's postmap(1).
//   postmap [-c dir] [-f] [-i] [-r|-w] [-n|-N] [-v] [type:]file...
//   postmap [-c dir] [-f] -q key|- [type:]name...
//   postmap [-c dir] [-f] -d key|- [type:]name...
//   postmap [-c dir] [-f] -s [type:]name...
// Builds file.db from the source file, whose lines read "key whitespace value"
// (a line that begins with white space continues the one before; # starts a
// comment line; a key with white space goes in double quotes). The type is
// hash or btree, default_database_type when not given. Keys are stored in lower
// case unless -f. The new table replaces the old one whole: a source with an
// error (reported as file:line) leaves the old table untouched.
// A key that appears twice keeps its first value with a warning; -r keeps the
// last one instead, -w keeps the first quietly. -i adds the entries read from
// standard input to the table. -N (the default) stores keys and values with a
// trailing NUL as Postfix does on Linux, -n without.
// -q key looks key up in the tables (any type) in order and prints the value:
// exit status 0 found, 1 not found, 75 on a temporary failure. -q - reads keys
// from standard input, one a line, and prints "key<TAB>value" for each found.
// -d key deletes key (exit 0 when something was deleted, 1 when not), -d - the
// keys read from standard input. -s lists every entry as "key<TAB>value".
#include "mail/table_build.h"
#include "util/log.h"

int main(int argc, char** argv) {
  postern::log_init("postmap", postern::LogSink::kCommandLine);
  return postern::run_table_command(postern::TableCommand::kPostmap, argc, argv);
}
