// postern: starts, stops and checks the mail system, as Postfix's postfix(1).
//   postern [-c dir] start    checks the configuration, creates the spool tree when
//                             it is missing and starts master; returns when master
//                             is ready (0) or could not start (1)
//   postern [-c dir] start-fg as start, but master stays in the foreground (as
//                             Postfix's start-fg: for containers, supervisors and
//                             `make run`); logs go to maillog_file, else the terminal
//   postern [-c dir] stop     asks master to stop (SIGTERM) and waits until it has
//   postern [-c dir] reload   asks master to re-read main.cf and master.cf (SIGHUP)
//   postern [-c dir] status   "postern is running as PID N" (0) or
//                             "postern is not running" (1)
//   postern [-c dir] check    checks the configuration and the spool tree's owners
//                             and modes, and corrects what it can; run by root, it
//                             first creates mail_owner (a system user with its own
//                             group, no home, no login shell) and setgid_group (a
//                             system group) when they do not exist, with useradd and
//                             groupadd, as Postfix's packages do at installation;
//                             a domain in two address classes is an error
//   postern [-c dir] user add|del|passwd|quota|list ...
//   postern [-c dir] domain add|del|list ...
//                             manage virtual users and domains in hash: files or
//                             MariaDB (virtual_user_database; postern/users.h)
// master is $daemon_directory/master; the running one is found through the lock
// on queue_directory/pid/master.pid.
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "mail/address_class.h"
#include "mail/config.h"
#include "mail/master_cf.h"
#include "mail/spool.h"
#include "util/cli.h"
#include "util/error.h"
#include "util/file.h"
#include "util/log.h"
#include "util/process.h"
#include "users.h"

using namespace postern;

namespace {

std::string pid_file_of(const Config& config) { return config.str("queue_directory") + "/pid/master.pid"; }

// The pid of the process that holds the master lock, or 0 when none does.
pid_t running_master(const Config& config) {
  UniqueFd fd = open_file_if_exists(pid_file_of(config), O_RDONLY);
  if (!fd.valid()) return 0;
  struct flock fl {};
  fl.l_type = F_WRLCK;
  fl.l_whence = SEEK_SET;
  check_sys(::fcntl(fd.get(), F_GETLK, &fl), "lock test on " + pid_file_of(config));
  return fl.l_type == F_UNLCK ? 0 : fl.l_pid;
}

// The configuration, checked: every problem is reported, the first one thrown.
Config checked_config(const std::string& dir) {
  Config config = Config::load(dir);
  auto problems = config.check();
  if (!problems.empty()) {
    for (size_t i = 1; i < problems.size(); ++i) log_error("%s", problems[i].c_str());
    throw ConfigError(config.main_cf_path(), 0, problems.front());
  }
  load_master_cf(config);
  return config;
}

// Who owns the spool: mail_owner when we are root; ourselves otherwise (an
// instance run by an ordinary user, as `make run` and the tests do).
SpoolOwners owners_for(const Config& config) {
  if (::geteuid() != 0) {
    SpoolOwners own;
    own.owner = own.root_uid = ::geteuid();
    own.group = own.root_gid = own.setgid_group = ::getegid();
    return own;
  }
  auto owners = spool_owners(config);
  if (!owners) throw ConfigError(config.main_cf_path(), 0, owners.error());
  return *owners;
}

int start(const Config& config, bool foreground) {
  if (pid_t pid = running_master(config)) {
    log_error("the mail system is already running as PID %d", int(pid));
    return 1;
  }
  create_spool(config.str("queue_directory"), owners_for(config));
  std::string master = config.str("daemon_directory") + "/master";
  std::string dir = config.dir();
  if (foreground) {
    log_info("starting the mail system in the foreground");
    ::execl(master.c_str(), "master", "-c", dir.c_str(), "-d", static_cast<char*>(nullptr));
    throw SystemError(errno, "exec " + master);
  }
  pid_t pid = check_sys(::fork(), "fork");
  if (pid == 0) {
    ::execl(master.c_str(), "master", "-c", dir.c_str(), static_cast<char*>(nullptr));
    log_error("exec %s: %m", master.c_str());
    ::_exit(127);
  }
  // master returns once it is ready, or with 1 when it could not start.
  int status;
  check_sys(retry_eintr([&] { return ::waitpid(pid, &status, 0); }), "waitpid");
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    log_error("master did not start");
    return 1;
  }
  log_info("starting the mail system");
  return 0;
}

int stop(const Config& config) {
  pid_t pid = running_master(config);
  if (!pid) {
    log_error("the mail system is not running");
    return 1;
  }
  check_sys(::kill(pid, SIGTERM), "kill " + std::to_string(pid));
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (running_master(config) == pid) {
    if (std::chrono::steady_clock::now() > deadline) {
      log_error("master (PID %d) did not stop within 30s", int(pid));
      return 1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  log_info("stopping the mail system");
  return 0;
}

int reload(const Config& config) {
  pid_t pid = running_master(config);
  if (!pid) {
    log_error("the mail system is not running");
    return 1;
  }
  check_sys(::kill(pid, SIGHUP), "kill " + std::to_string(pid));
  log_info("refreshing the mail system");
  return 0;
}

int status(const Config& config) {
  if (pid_t pid = running_master(config)) {
    std::printf("postern is running as PID %d\n", int(pid));
    return 0;
  }
  std::printf("postern is not running\n");
  return 1;
}

// Creates mail_owner and setgid_group when they are missing (root only).
// Returns false when one is missing and could not be created.
bool create_missing_accounts(const Config& config) {
  std::string owner = config.str("mail_owner");
  std::string group = config.str("setgid_group");
  bool ok = true;
  if (!::getgrnam(group.c_str())) {
    log_warn("creating the group %s (setgid_group)", group.c_str());
    ok = run_program({"/usr/sbin/groupadd", "--system", group}) == 0 && ok;
  }
  if (!::getpwnam(owner.c_str())) {
    log_warn("creating the user %s (mail_owner)", owner.c_str());
    ok = run_program({"/usr/sbin/useradd", "--system", "--user-group", "--no-create-home", "--home-dir",
                      "/nonexistent", "--shell", "/usr/sbin/nologin", "--comment", "Postern mail system", owner}) ==
             0 &&
         ok;
  }
  if (!ok) log_error("could not create mail_owner %s or setgid_group %s", owner.c_str(), group.c_str());
  return ok;
}

int check(const Config& config) {
  auto conflicts = domain_class_conflicts(config);  // a domain in two address classes
  for (const std::string& conflict : conflicts) log_error("%s", conflict.c_str());
  if (!conflicts.empty()) return 1;
  if (::geteuid() == 0 && !create_missing_accounts(config)) return 1;
  std::string spool = config.str("queue_directory");
  SpoolOwners owners = owners_for(config);
  struct stat st;
  if (::stat(spool.c_str(), &st) < 0 && errno == ENOENT) {  // a new system: nothing to report
    create_spool(spool, owners);
    log_info("created the spool %s", spool.c_str());
    return 0;
  }
  auto problems = check_spool(spool, owners);
  if (problems.empty()) return 0;
  for (const auto& p : problems) log_warn("%s", p.c_str());
  create_spool(spool, owners);
  problems = check_spool(spool, owners);
  for (const auto& p : problems) log_error("not corrected: %s", p.c_str());
  return problems.empty() ? 0 : 1;
}

constexpr const char* kUsage =
    "usage: postern [-c dir] start|start-fg|stop|reload|status|check, or postern [-c dir] user|domain ...";

int run(int argc, char** argv) {
  size_t skip = argc > 2 && std::string_view(argv[1]) == "-c" ? 2 : 0;  // postern [-c dir] user|domain ...
  if (std::vector<std::string> words(argv + 1 + skip, argv + argc); is_user_admin_command(words))
    return run_user_admin(Config::choose_dir(skip ? argv[2] : ""), words);
  std::string dir;
  std::string verb;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "-c" && i + 1 < argc) dir = argv[++i];
    else if (verb.empty() && !a.empty() && a[0] != '-') verb = a;
    else throw UsageError(kUsage);
  }
  Config config = checked_config(Config::choose_dir(dir));
  if (verb == "start") return start(config, false);
  if (verb == "start-fg") return start(config, true);
  if (verb == "stop") return stop(config);
  if (verb == "reload") return reload(config);
  if (verb == "status") return status(config);
  if (verb == "check") return check(config);
  throw UsageError(kUsage);
}

}  // namespace

int main(int argc, char** argv) {
  log_init("postern", LogSink::kCommandLine);
  return run_command_line([&] { return run(argc, argv); });
}
