// Building, changing, querying and listing tables for postmap, postalias and newaliases.
#include "mail/table_build.h"

#include <sys/stat.h>
#include <sysexits.h>
#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <optional>
#include <vector>

#include "mail/config.h"
#include "mail/table.h"
#include "mail/table_db.h"
#include "util/cli.h"
#include "util/error.h"
#include "util/file.h"
#include "util/log.h"
#include "util/strings.h"

namespace postern {
namespace {

// The Berkeley DB file behind a hash: or btree: spec, and its source.
struct DbTarget {
  DbType type;
  std::string source;
  std::string db_path;
};

DbTarget db_target(std::string_view spec) {
  size_t colon = spec.find(':');
  std::optional<DbType> type = db_type_named(spec.substr(0, colon));
  if (colon == std::string_view::npos || !type)
    throw ConfigError(std::string(spec), 0, "only hash: and btree: tables can be built or changed");
  std::string name(spec.substr(colon + 1));
  if (name.empty()) throw ConfigError(std::string(spec), 0, "missing file name");
  return {*type, name, name + ".db"};
}

DbWriter::OnDuplicate on_duplicate(const BuildOptions& o) {
  return o.duplicates == Duplicates::kReplace ? DbWriter::OnDuplicate::kReplace : DbWriter::OnDuplicate::kKeepFirst;
}

void add_entries(DbWriter& writer, const std::vector<SourceEntry>& entries, const std::string& source,
                 const BuildOptions& o) {
  for (const SourceEntry& e : entries) {
    std::string key = o.fold_case ? lowercase(e.key) : e.key;
    if (!writer.put(key, e.value) && o.duplicates == Duplicates::kWarn)
      log_warn("%s:%d: duplicate entry: \"%s\"", source.c_str(), e.line, key.c_str());
  }
}

// The permissions of an existing table file, for the one that replaces it.
mode_t mode_of_table(const std::string& db_path) {
  struct stat st;
  return ::stat(db_path.c_str(), &st) == 0 ? st.st_mode & 07777 : 0644;
}

}  // namespace

void build_table(std::string_view spec, const BuildOptions& options) {
  DbTarget t = db_target(spec);
  UniqueFd fd = open_file(t.source, O_RDONLY);
  struct stat st;
  check_sys(::fstat(fd.get(), &st), "fstat " + t.source);
  std::string text = read_fd(fd.get());
  std::vector<SourceEntry> entries = parse_source(options.format, text, t.source);
  DbWriter writer(t.type, t.db_path, 0600 | (st.st_mode & 0044), on_duplicate(options), options.nul);
  add_entries(writer, entries, t.source, options);
  writer.commit();
}

void update_table(std::string_view spec, std::string_view text, const std::string& source_name,
                  const BuildOptions& options) {
  DbTarget t = db_target(spec);
  std::vector<SourceEntry> entries = parse_source(options.format, text, source_name);
  DbWriter writer(t.type, t.db_path, mode_of_table(t.db_path), on_duplicate(options), options.nul);
  if (file_exists(t.db_path)) writer.copy_current();
  add_entries(writer, entries, source_name, options);
  writer.commit();
}

size_t delete_from_table(std::string_view spec, const std::set<std::string, std::less<>>& keys,
                         const BuildOptions& options) {
  DbTarget t = db_target(spec);
  DbWriter writer(t.type, t.db_path, mode_of_table(t.db_path), on_duplicate(options), options.nul);
  size_t deleted = writer.copy_current(keys);
  if (deleted > 0) writer.commit();  // otherwise the untouched table stays, and the copy goes
  return deleted;
}

namespace {

struct CommandLine {
  std::string config_dir;
  BuildOptions build;
  bool incremental = false;            // -i
  std::optional<std::string> query;    // -q
  std::optional<std::string> remove;   // -d
  bool list = false;                   // -s
  std::vector<std::string> tables;
};

void print_usage(TableCommand command) {
  if (command == TableCommand::kNewaliases) {
    std::fprintf(stderr, "usage: newaliases [-c dir] [-v]\n");
    return;
  }
  const char* p = command == TableCommand::kPostmap ? "postmap" : "postalias";
  std::fprintf(stderr,
               "usage: %s [-c dir] [-f] [-i] [-r|-w] [-n|-N] [-v] [type:]file...\n"
               "       %s [-c dir] [-f] -q key|- [type:]name...\n"
               "       %s [-c dir] [-f] -d key|- [type:]name...\n"
               "       %s [-c dir] [-f] -s [type:]name...\n",
               p, p, p, p);
}

CommandLine parse_command_line(TableCommand command, int argc, char** argv) {
  CommandLine cl;
  bool replace = false, quiet = false;
  const char* flags = command == TableCommand::kNewaliases ? "c:v" : "c:d:finNq:rsvw";
  int c;
  opterr = 0;
  while ((c = getopt(argc, argv, flags)) != -1) {
    switch (c) {
      case 'c': cl.config_dir = optarg; break;
      case 'd': cl.remove = optarg; break;
      case 'f': cl.build.fold_case = false; break;
      case 'i': cl.incremental = true; break;
      case 'n': cl.build.nul = false; break;
      case 'N': cl.build.nul = true; break;
      case 'q': cl.query = optarg; break;
      case 'r': replace = true; break;
      case 's': cl.list = true; break;
      case 'v': log_set_verbose(log_verbose() + 1); break;
      case 'w': quiet = true; break;
      default:
        throw UsageError(optopt && std::string_view(flags).find(static_cast<char>(optopt)) != std::string_view::npos
                             ? format("option -%c needs an argument", optopt)
                             : format("unknown option -%c", optopt));
    }
  }
  for (int i = optind; i < argc; ++i) cl.tables.emplace_back(argv[i]);
  if (replace && quiet) throw UsageError("-r and -w exclude each other");
  cl.build.duplicates = replace ? Duplicates::kReplace : quiet ? Duplicates::kIgnore : Duplicates::kWarn;
  cl.build.format = command == TableCommand::kPostmap ? SourceFormat::kMap : SourceFormat::kAliases;
  int modes = cl.query.has_value() + cl.remove.has_value() + cl.list + cl.incremental;
  if (modes > 1) throw UsageError("-q, -d, -s and -i exclude each other");
  if (command == TableCommand::kNewaliases) {
    if (!cl.tables.empty()) throw UsageError("newaliases takes no table names");
  } else if (cl.tables.empty()) {
    throw UsageError("no table named");
  } else if (cl.incremental && cl.tables.size() != 1) {
    throw UsageError("-i reads one table's entries from standard input: name one table");
  }
  return cl;
}

// The Berkeley DB cache of each table postmap -q reads: room for the whole of most
// tables, since a stream of keys touches every page (Postfix's default
// berkeley_db_create_buffer_size). Pages are cached only as they are read.
constexpr size_t kQueryCacheSize = 16 * 1024 * 1024;

// "name" without a type gets default_database_type, as in Postfix.
std::string with_type(const std::string& name, const std::string& default_type) {
  return name.find(':') == std::string::npos ? default_type + ":" + name : name;
}

// The first table that knows the key answers; a temporary failure ends the search.
int query_one(TableList& tables, const std::string& key) {
  LookupResult r = tables.lookup(key);
  switch (r.status) {
    case LookupStatus::kFound: std::printf("%s\n", r.value.c_str()); return 0;
    case LookupStatus::kNotFound: return 1;
    case LookupStatus::kTempFail: break;
  }
  log_fatal_status(EX_TEMPFAIL, "temporary failure looking up \"%s\": %s", key.c_str(), r.error.c_str());
}

// The lookup of one key from standard input: an answer is "key<TAB>value".
bool answer_line(TableList& tables, std::string_view line) {
  std::string key(trim(line));
  if (key.empty()) return false;
  LookupResult r = tables.lookup(key);
  if (r.is_found()) {
    std::printf("%s\t%s\n", key.c_str(), r.value.c_str());
    return true;
  }
  if (r.is_temp_fail()) {
    std::fflush(stdout);  // the warning comes after the answers before it
    log_warn("temporary failure looking up \"%s\": %s", key.c_str(), r.error.c_str());
  }
  return false;
}

// Keys from standard input, one a line. Input is read in large chunks and the
// answers go out in large writes, yet another program can drive the lookup line
// by line: stdout is flushed whenever every complete line read so far has been
// answered, before waiting for more input.
int query_stream(TableList& tables) {
  constexpr size_t kChunk = 64 * 1024;
  static char out_buffer[kChunk];
  std::setvbuf(stdout, out_buffer, _IOFBF, sizeof out_buffer);
  bool found_any = false;
  std::string input;
  size_t start = 0;  // the first byte of input not yet answered
  for (;;) {
    size_t newline = input.find('\n', start);
    if (newline != std::string::npos) {
      found_any |= answer_line(tables, std::string_view(input).substr(start, newline - start));
      start = newline + 1;
      continue;
    }
    std::fflush(stdout);
    input.erase(0, start);
    start = 0;
    size_t have = input.size();
    input.resize(have + kChunk);
    ssize_t n = retry_eintr([&] { return ::read(STDIN_FILENO, input.data() + have, kChunk); });
    if (n < 0) throw SystemError(errno, "read standard input");
    input.resize(have + static_cast<size_t>(n));
    if (n == 0) break;
  }
  if (!input.empty()) found_any |= answer_line(tables, input);  // a last line without its newline
  std::fflush(stdout);
  return found_any ? 0 : 1;
}

int run(TableCommand command, const CommandLine& cl) {
  Config config = Config::load(Config::choose_dir(cl.config_dir));
  std::string default_type = config.str("default_database_type");
  if (command == TableCommand::kNewaliases) {
    for (const std::string& spec : split_list(config.str("alias_database")))
      build_table(with_type(spec, default_type), cl.build);
    return 0;
  }
  std::vector<std::string> specs;
  for (const std::string& name : cl.tables) specs.push_back(with_type(name, default_type));

  if (cl.query || cl.list) {
    if (cl.query) set_db_read_cache_size(kQueryCacheSize);
    TableList tables;
    for (const std::string& spec : specs) tables.add(open_table(spec, {.fold_case = cl.build.fold_case}));
    if (cl.query) return *cl.query == "-" ? query_stream(tables) : query_one(tables, *cl.query);
    for (const auto& table : tables.tables())
      table->for_each([](std::string_view k, std::string_view v) {
        std::printf("%.*s\t%.*s\n", static_cast<int>(k.size()), k.data(), static_cast<int>(v.size()), v.data());
      });
    return 0;
  }
  if (cl.remove) {
    std::set<std::string, std::less<>> keys;
    auto add = [&](std::string_view key) {
      if (!key.empty()) keys.insert(cl.build.fold_case ? lowercase(key) : std::string(key));
    };
    if (*cl.remove == "-") {
      std::string line;
      while (std::getline(std::cin, line)) add(trim(line));
    } else {
      add(*cl.remove);
    }
    size_t deleted = 0;
    for (const std::string& spec : specs) deleted += delete_from_table(spec, keys, cl.build);
    return deleted > 0 ? 0 : 1;
  }
  if (cl.incremental) {
    update_table(specs.front(), read_fd(STDIN_FILENO), "stdin", cl.build);
    return 0;
  }
  for (const std::string& spec : specs) build_table(spec, cl.build);
  return 0;
}

}  // namespace

int run_table_command(TableCommand command, int argc, char** argv) {
  return run_command_line([&] { return parse_command_line(command, argc, argv); },
                          [&] { print_usage(command); },
                          [&](const CommandLine& cl) { return run(command, cl); });
}

}  // namespace postern
