// postern user / postern domain: hosted (virtual) users and domains, in the one
// user database every service reads (conf/mysql-schema.sql, conf/hash-layout.md).
//   postern [-c dir] domain add DOMAIN
//   postern [-c dir] domain del DOMAIN          refused while the domain has users
//   postern [-c dir] domain list
//   postern [-c dir] user add ADDRESS [-m MAILBOX] [-q BYTES] [-s SCHEME] [-p]
//   postern [-c dir] user del ADDRESS
//   postern [-c dir] user passwd ADDRESS [-s SCHEME] [-p]
//   postern [-c dir] user quota ADDRESS BYTES   0: the default (virtual_mailbox_quota)
//   postern [-c dir] user list [DOMAIN]         "address mailbox quota", one a line
// virtual_user_database says where: hash:DIRECTORY (the text files vdomains,
// vmailbox, vquota and vpasswd there, each rebuilt into its .db after a change) or
// mysql:/path/file.cf (hosts, user, password, dbname as in mysql_table(5); that
// user needs INSERT, UPDATE and DELETE on the schema's tables).
// The password is asked twice on the terminal without echo, or read from standard
// input with -p, by postpasswd (which lives next to postern), and stored as its
// crypt(3) hash: yescrypt unless -s says bcrypt or sha512-crypt. It is never
// printed or logged. MAILBOX defaults to DOMAIN/LOCALPART/ (a Maildir under
// virtual_mailbox_base). Names are stored in lower case. A duplicate user or
// domain, a user of an unknown domain, or a user or domain that does not exist
// is refused with a message and exit status 1, and nothing changes.
#include "users.h"

#include <errmsg.h>
#include <grp.h>
#include <mysql.h>
#include <pwd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <optional>

#include "mail/address.h"
#include "mail/config.h"
#include "mail/maildir_quota.h"
#include "mail/table_build.h"
#include "mail/table_source.h"
#include "util/error.h"
#include "util/fd.h"
#include "util/file.h"
#include "util/log.h"
#include "util/logical_lines.h"
#include "util/strings.h"

namespace postern {
namespace {

struct User {
  std::string address;
  std::string mailbox;
  uint64_t quota = 0;
};

// A refusal the administrator must see: message on standard error, exit status 1.
class Refused : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The user database, whichever backend holds it.
class UserDatabase {
 public:
  virtual ~UserDatabase() = default;
  virtual std::vector<std::string> domains() = 0;
  virtual void add_domain(const std::string& domain) = 0;
  virtual void delete_domain(const std::string& domain) = 0;
  virtual std::vector<User> users(const std::string& domain) = 0;  // "" for all
  virtual void add_user(const User& user, const std::string& hash) = 0;
  virtual void delete_user(const std::string& address) = 0;
  virtual void set_password(const std::string& address, const std::string& hash) = 0;
  virtual void set_quota(const std::string& address, uint64_t quota) = 0;

  bool has_domain(const std::string& domain) {
    auto all = domains();
    return std::find(all.begin(), all.end(), domain) != all.end();
  }
  std::optional<User> user(const std::string& address) {
    for (User& u : users(split_address(address).domain))
      if (u.address == address) return u;
    return std::nullopt;
  }
};

// ---------------------------------------------------------------- hash: files

// Text tables in one directory, each rebuilt into its .db after a change. The
// password file is readable by mail_owner's group only (auth reads it as mail_owner).
class HashDatabase : public UserDatabase {
 public:
  HashDatabase(std::string dir, std::string mail_owner) : dir_(std::move(dir)), mail_owner_(std::move(mail_owner)) {}

  std::vector<std::string> domains() override {
    std::vector<std::string> out;
    for (const auto& [key, value] : read("vdomains")) out.push_back(key);
    return out;
  }
  void add_domain(const std::string& domain) override {
    auto entries = read("vdomains");
    entries[domain] = "OK";
    write("vdomains", entries, 0644);
  }
  void delete_domain(const std::string& domain) override {
    auto entries = read("vdomains");
    entries.erase(domain);
    write("vdomains", entries, 0644);
  }
  std::vector<User> users(const std::string& domain) override {
    auto quotas = read("vquota");
    std::vector<User> out;
    for (const auto& [address, mailbox] : read("vmailbox")) {
      if (!domain.empty() && split_address(address).domain != domain) continue;
      auto quota = quotas.count(address) ? parse_int(quotas[address]) : std::nullopt;
      out.push_back({address, mailbox, quota ? uint64_t(*quota) : 0});
    }
    return out;
  }
  void add_user(const User& user, const std::string& hash) override {
    change("vpasswd", user.address, hash, 0640);
    change("vquota", user.address, user.quota ? std::to_string(user.quota) : "", 0644);
    change("vmailbox", user.address, user.mailbox, 0644);  // last: the user exists once it is there
  }
  void delete_user(const std::string& address) override {
    change("vmailbox", address, "", 0644);  // first: mail is refused from now on
    change("vquota", address, "", 0644);
    change("vpasswd", address, "", 0640);
  }
  void set_password(const std::string& address, const std::string& hash) override {
    change("vpasswd", address, hash, 0640);
  }
  void set_quota(const std::string& address, uint64_t quota) override {
    change("vquota", address, quota ? std::to_string(quota) : "", 0644);
  }

 private:
  using Entries = std::map<std::string, std::string>;

  Entries read(const std::string& name) {
    std::string path = dir_ + "/" + name;
    Entries entries;
    if (!file_exists(path)) return entries;
    for (const SourceEntry& e : parse_source(SourceFormat::kMap, read_file(path), path))
      entries[lowercase(e.key)] = e.value;
    return entries;
  }

  // Sets (or with an empty value removes) one entry of a table.
  void change(const std::string& name, const std::string& key, const std::string& value, mode_t mode) {
    Entries entries = read(name);
    if (value.empty()) entries.erase(key);
    else entries[key] = value;
    write(name, entries, mode);
  }

  void write(const std::string& name, const Entries& entries, mode_t mode) {
    std::string path = dir_ + "/" + name;
    std::string text = "# Written by postern user/domain (conf/hash-layout.md); edit with care.\n";
    for (const auto& [key, value] : entries) text += key + " " + value + "\n";
    struct passwd* owner = mode == 0640 && ::geteuid() == 0 ? ::getpwnam(mail_owner_.c_str()) : nullptr;
    AtomicFile file(path, mode);
    if (owner) check_sys(::fchown(file.fd(), 0, owner->pw_gid), "chown " + file.temp_path());
    file.write(text);
    file.commit();
    build_table("hash:" + path, BuildOptions{});
    if (owner) check_sys(::chown((path + ".db").c_str(), 0, owner->pw_gid), "chown " + path + ".db");
  }

  std::string dir_;
  std::string mail_owner_;
};

// ---------------------------------------------------------------- MariaDB

class MysqlDatabase : public UserDatabase {
 public:
  explicit MysqlDatabase(const std::string& cf) : db_(mysql_init(nullptr)) {
    std::map<std::string, std::string> attrs;
    for_each_logical_line(read_file(cf), cf, [&](std::string_view line, int number) {
      attrs.insert(split_assignment(line, cf, number, "attribute"));
    });
    std::string host = attrs.count("hosts") ? split_list(attrs["hosts"]).front() : "localhost";
    std::string socket_path;
    if (host.starts_with("unix:")) socket_path = host.substr(5);
    else if (host.starts_with("/")) socket_path = host;
    if (host.starts_with("inet:")) host = host.substr(5);
    unsigned port = 0;
    if (socket_path.empty() && host.rfind(':') != std::string::npos && host.back() != ']') {
      port = unsigned(parse_int(host.substr(host.rfind(':') + 1)).value_or(0));
      host = host.substr(0, host.rfind(':'));
    }
    unsigned timeout = 10;
    mysql_options(db_.get(), MYSQL_OPT_CONNECT_TIMEOUT, &timeout);
    mysql_options(db_.get(), MYSQL_SET_CHARSET_NAME, "utf8mb4");
    if (!mysql_real_connect(db_.get(), socket_path.empty() ? host.c_str() : nullptr, attrs["user"].c_str(),
                            attrs["password"].c_str(), attrs["dbname"].c_str(), port,
                            socket_path.empty() ? nullptr : socket_path.c_str(), 0))
      throw Refused(cf + ": cannot connect to the database: " + mysql_error(db_.get()));
  }

  std::vector<std::string> domains() override {
    std::vector<std::string> out;
    for (auto& row : query("SELECT domain FROM domains ORDER BY domain")) out.push_back(row[0]);
    return out;
  }
  void add_domain(const std::string& domain) override {
    run("INSERT INTO domains (domain) VALUES (" + quote(domain) + ")");
  }
  void delete_domain(const std::string& domain) override {
    run("DELETE FROM domains WHERE domain = " + quote(domain));
  }
  std::vector<User> users(const std::string& domain) override {
    std::vector<User> out;
    std::string where = domain.empty() ? "" : " WHERE domain = " + quote(domain);
    for (auto& row : query("SELECT email, maildir, quota FROM users" + where + " ORDER BY email"))
      out.push_back({row[0], row[1], uint64_t(parse_int(row[2]).value_or(0))});
    return out;
  }
  void add_user(const User& user, const std::string& hash) override {
    run("INSERT INTO users (email, domain, password, maildir, quota) VALUES (" + quote(user.address) + ", " +
        quote(split_address(user.address).domain) + ", " + quote(hash) + ", " + quote(user.mailbox) + ", " +
        std::to_string(user.quota) + ")");
  }
  void delete_user(const std::string& address) override {
    run("DELETE FROM users WHERE email = " + quote(address));
  }
  void set_password(const std::string& address, const std::string& hash) override {
    run("UPDATE users SET password = " + quote(hash) + " WHERE email = " + quote(address));
  }
  void set_quota(const std::string& address, uint64_t quota) override {
    run("UPDATE users SET quota = " + std::to_string(quota) + " WHERE email = " + quote(address));
  }

 private:
  struct Closer {
    void operator()(MYSQL* m) const { mysql_close(m); }
  };

  std::string quote(const std::string& value) {
    std::string out(value.size() * 2 + 1, '\0');
    out.resize(mysql_real_escape_string(db_.get(), out.data(), value.data(), value.size()));
    return "'" + out + "'";
  }

  void run(const std::string& sql) {
    if (mysql_real_query(db_.get(), sql.data(), sql.size()) != 0)
      throw Refused(std::string("database: ") + mysql_error(db_.get()));
  }

  std::vector<std::vector<std::string>> query(const std::string& sql) {
    run(sql);
    std::unique_ptr<MYSQL_RES, void (*)(MYSQL_RES*)> result(mysql_store_result(db_.get()), mysql_free_result);
    if (!result) throw Refused(std::string("database: ") + mysql_error(db_.get()));
    std::vector<std::vector<std::string>> rows;
    unsigned columns = mysql_num_fields(result.get());
    while (MYSQL_ROW row = mysql_fetch_row(result.get())) {
      rows.emplace_back();
      for (unsigned i = 0; i < columns; ++i) rows.back().push_back(row[i] ? row[i] : "");
    }
    return rows;
  }

  std::unique_ptr<MYSQL, Closer> db_;
};

std::unique_ptr<UserDatabase> open_database(const Config& config) {
  std::string spec = config.str("virtual_user_database");
  const Config::Entry* entry = config.entry("virtual_user_database");
  auto error = [&](const std::string& what) {
    return ConfigError(entry ? entry->file : config.main_cf_path(), entry ? entry->line : 0,
                       "virtual_user_database: " + what);
  };
  if (spec.starts_with("hash:") && spec.size() > 5) {
    std::string dir = spec.substr(5);
    struct stat st;
    if (::stat(dir.c_str(), &st) < 0 || !S_ISDIR(st.st_mode)) throw error(dir + " is not a directory");
    return std::make_unique<HashDatabase>(dir, config.str("mail_owner"));
  }
  if (spec.starts_with("mysql:") && spec.size() > 6) return std::make_unique<MysqlDatabase>(spec.substr(6));
  throw error(spec.empty() ? "not set (hash:DIRECTORY or mysql:/path/file.cf)"
                           : "\"" + spec + "\" is neither hash:DIRECTORY nor mysql:/path/file.cf");
}

// ---------------------------------------------------------------- the commands

// The crypt(3) hash of a new password, from postpasswd next to this program: it
// asks on the terminal without echo (or reads standard input with -p).
std::string new_password_hash(const std::string& scheme, bool from_stdin) {
  char self[4096];
  ssize_t n = ::readlink("/proc/self/exe", self, sizeof self - 1);
  if (n < 0) throw SystemError(errno, "readlink /proc/self/exe");
  std::string program = dirname_of(std::string(self, size_t(n))) + "/postpasswd";
  std::vector<std::string> args = {program};
  if (!scheme.empty()) args.insert(args.end(), {"-s", scheme});
  if (from_stdin) args.push_back("-p");
  int out[2];
  check_sys(::pipe2(out, O_CLOEXEC), "pipe");
  UniqueFd read_end(out[0]), write_end(out[1]);
  pid_t pid = check_sys(::fork(), "fork");
  if (pid == 0) {
    ::dup2(write_end.get(), STDOUT_FILENO);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execv(program.c_str(), argv.data());
    std::fprintf(stderr, "postern: cannot run %s: %s\n", program.c_str(), std::strerror(errno));
    ::_exit(127);
  }
  write_end.reset();
  std::string hash(trim(read_fd(read_end.get())));
  int status = 0;
  check_sys(retry_eintr([&] { return ::waitpid(pid, &status, 0); }), "waitpid");
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || hash.empty())
    throw Refused("no password set (postpasswd failed)");
  return hash;
}

std::string checked_domain(const std::string& text) {
  auto parsed = parse_mailbox("postmaster@" + text);
  if (!parsed || text.empty() || text.front() == '[')
    throw Refused("bad domain name \"" + text + "\"");
  return parsed->domain;
}

std::string checked_address(const std::string& text) {
  auto parsed = parse_mailbox(text);
  if (!parsed || parsed->domain.empty() || parsed->domain.front() == '[' ||
      parsed->local.find_first_of(" \t\"\\") != std::string::npos)
    throw Refused("bad address \"" + text + "\": expected user@domain");
  return lowercase(parsed->local) + "@" + parsed->domain;
}

uint64_t checked_quota(const std::string& text) {
  auto quota = parse_int(text);
  if (!quota || *quota < 0) throw Refused("bad quota \"" + text + "\": expected a number of bytes (0: the default)");
  return uint64_t(*quota);
}

// The options after a user command's operands: -m MAILBOX -q BYTES -s SCHEME -p.
struct UserOptions {
  std::string mailbox, scheme;
  std::optional<uint64_t> quota;
  bool from_stdin = false;
};

UserOptions user_options(const std::vector<std::string>& args, size_t from, const std::string& allowed) {
  UserOptions o;
  for (size_t i = from; i < args.size(); ++i) {
    const std::string& a = args[i];
    bool takes_value = a == "-m" || a == "-q" || a == "-s";
    bool known = a.size() == 2 && a[0] == '-' && allowed.find(a[1]) != std::string::npos;
    if (!known || (takes_value && i + 1 == args.size()))
      throw UsageError("unexpected \"" + a + "\"");
    if (a == "-p") o.from_stdin = true;
    else if (a == "-m") o.mailbox = args[++i];
    else if (a == "-q") o.quota = checked_quota(args[++i]);
    else o.scheme = args[++i];
  }
  return o;
}

int domain_command(UserDatabase& db, const std::vector<std::string>& args) {
  const std::string& verb = args.size() > 1 ? args[1] : "";
  if (verb == "list" && args.size() == 2) {
    for (const std::string& d : db.domains()) std::printf("%s\n", d.c_str());
    return 0;
  }
  if ((verb == "add" || verb == "del") && args.size() == 3) {
    std::string domain = checked_domain(args[2]);
    bool exists = db.has_domain(domain);
    if (verb == "add") {
      if (exists) throw Refused("domain " + domain + " already exists");
      db.add_domain(domain);
    } else {
      if (!exists) throw Refused("no such domain: " + domain);
      size_t users = db.users(domain).size();
      if (users > 0)
        throw Refused("domain " + domain + " still has " + std::to_string(users) + " user" + (users == 1 ? "" : "s") +
                      "; delete them first");
      db.delete_domain(domain);
    }
    log_info("domain %s: %s", domain.c_str(), verb == "add" ? "added" : "deleted");
    return 0;
  }
  throw UsageError("usage: postern domain add|del DOMAIN, postern domain list");
}

int user_command(UserDatabase& db, const std::vector<std::string>& args) {
  const std::string& verb = args.size() > 1 ? args[1] : "";
  if (verb == "list" && args.size() <= 3) {
    std::string domain = args.size() == 3 ? checked_domain(args[2]) : "";
    for (const User& u : db.users(domain))
      std::printf("%s %s %llu\n", u.address.c_str(), u.mailbox.c_str(), (unsigned long long)u.quota);
    return 0;
  }
  if (args.size() < 3 || !(verb == "add" || verb == "del" || verb == "passwd" || verb == "quota"))
    throw UsageError("usage: postern user add|del|passwd|quota ADDRESS ..., postern user list [DOMAIN]");
  std::string address = checked_address(args[2]);
  std::string domain = split_address(address).domain;
  if (verb == "quota" && args.size() != 4) throw UsageError("usage: postern user quota ADDRESS BYTES");
  const char* allowed = verb == "add" ? "mqsp" : verb == "passwd" ? "sp" : "";
  UserOptions o = verb == "quota" ? UserOptions{} : user_options(args, 3, allowed);
  std::optional<uint64_t> quota = verb == "quota" ? std::optional(checked_quota(args[3])) : o.quota;
  std::optional<User> existing = db.user(address);
  if (verb == "add") {
    if (!db.has_domain(domain)) throw Refused("unknown domain " + domain + ": add it first with postern domain add");
    if (existing) throw Refused("user " + address + " already exists");
    User user{address, o.mailbox.empty() ? domain + "/" + split_address(address).local + "/" : o.mailbox,
              quota.value_or(0)};
    if (user.mailbox.front() == '/' || user.mailbox.find("..") != std::string::npos ||
        user.mailbox.find_first_of(" \t\n") != std::string::npos)
      throw Refused("bad mailbox \"" + user.mailbox + "\": a path relative to virtual_mailbox_base");
    db.add_user(user, new_password_hash(o.scheme, o.from_stdin));
  } else if (!existing) {
    throw Refused("no such user: " + address);
  } else if (verb == "del") {
    db.delete_user(address);
  } else if (verb == "passwd") {
    db.set_password(address, new_password_hash(o.scheme, o.from_stdin));
  } else {
    db.set_quota(address, *quota);
  }
  log_info("user %s: %s", address.c_str(),
           verb == "add" ? "added" : verb == "del" ? "deleted" : verb == "passwd" ? "password changed" : "quota set");
  return 0;
}

}  // namespace

bool is_user_admin_command(const std::vector<std::string>& args) {
  return !args.empty() && (args[0] == "user" || args[0] == "domain");
}

int run_user_admin(const std::string& config_dir, const std::vector<std::string>& args) {
  Config config = Config::load(config_dir);
  try {
    auto db = open_database(config);
    return args[0] == "user" ? user_command(*db, args) : domain_command(*db, args);
  } catch (const Refused& e) {
    log_error("%s", e.what());
    return 1;
  }
}

}  // namespace postern
