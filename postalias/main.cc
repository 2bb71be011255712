// postalias: builds, queries and changes alias tables, as Postfix's postalias(1).
//   postalias [-c dir] [-f] [-i] [-r|-w] [-n|-N] [-v] [type:]file...
//   postalias [-c dir] [-f] -q key|- [type:]name...
//   postalias [-c dir] [-f] -d key|- [type:]name...
//   postalias [-c dir] [-f] -s [type:]name...
//   newaliases [-c dir] [-v]
// Builds file.db from an aliases(5) file: "name: value, value, ..." where a value
// is an address, /file/name, |command (or "|command args" in quotes), or
// :include:/file/name; a line that begins with white space continues the one
// before; # starts a comment line; a name with special characters goes in
// double quotes. Names are stored in lower case unless -f, and the values as
// one list separated by ", ". A missing colon, an empty name or a name without
// values is reported as file:line and leaves the old table untouched.
// The options are those of postmap(1). Run as newaliases, it rebuilds every
// table that alias_database names (hash:/etc/aliases builds /etc/aliases.db).
#include "mail/table_build.h"
#include "util/file.h"
#include "util/log.h"

int main(int argc, char** argv) {
  bool newaliases = argc > 0 && postern::basename_of(argv[0]) == "newaliases";
  postern::log_init(newaliases ? "newaliases" : "postalias", postern::LogSink::kCommandLine);
  return postern::run_table_command(
      newaliases ? postern::TableCommand::kNewaliases : postern::TableCommand::kPostalias, argc, argv);
}
