// master: the Postern supervisor, as Postfix's master(8).
//   master [-c dir] [-d] [-v]
// Reads main.cf and master.cf (an error is reported as file:line and nothing
// starts), locks queue_directory/pid/master.pid so that one master runs per spool,
// opens every listener of master.cf and starts each service's processes when a
// client arrives, up to its process limit, under the contract of
// lib/mail/daemon.h.  A service whose processes keep crashing is throttled.
// A service with a wakeup time (column 6) is triggered every that many seconds by
// a connection to its socket, which starts a process when none runs (pickup and
// qmgr scan their queues on a trigger); "N?" wakes only a service that has a
// process running.  chroot=y (master running as root) makes pickup, bounce and
// cleanup (when virtual_alias_maps is empty) chroot themselves into
// queue_directory before they give up root; the
// other daemons open files outside the spool while they run and are started
// unchrooted, with a warning naming the master.cf line.
// Without -d master detaches and returns once it is ready (listeners open, pid
// file written) with status 0, or with 1 when it could not start.  -d keeps it in
// the foreground and logs to maillog_file, or to the terminal when that is empty.
// SIGHUP re-reads the configuration (a bad one is logged and the old one kept);
// SIGTERM stops the children, removes the pid file and exits.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <string>

#include "mail/config.h"
#include "mail/master_cf.h"
#include "master.h"
#include "util/cli.h"
#include "util/error.h"
#include "util/event.h"
#include "util/file.h"
#include "util/lock.h"
#include "util/log.h"

using namespace postern;

namespace {

struct Options {
  std::string config_dir;
  bool foreground = false;
  int verbose = 0;
};

Options parse_options(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "-c" && i + 1 < argc) o.config_dir = argv[++i];
    else if (a == "-d") o.foreground = true;
    else if (a == "-v") ++o.verbose;
    else throw UsageError("usage: master [-c dir] [-d] [-v]");
  }
  o.config_dir = Config::choose_dir(o.config_dir);
  return o;
}

// Detaches; the parent waits for the child's "ready" byte and exits 0, or 1 when
// the child died first.  Returns the pipe's write end in the child.
UniqueFd detach() {
  int fds[2];
  check_sys(::pipe2(fds, O_CLOEXEC), "pipe");
  UniqueFd read_end(fds[0]), write_end(fds[1]);
  pid_t pid = check_sys(::fork(), "fork");
  if (pid > 0) {
    write_end.reset();
    char c;
    ssize_t n = retry_eintr([&] { return ::read(read_end.get(), &c, 1); });
    if (n == 1) ::_exit(0);
    int status;
    retry_eintr([&] { return ::waitpid(pid, &status, 0); });  // it failed; leave no zombie
    ::_exit(1);
  }
  check_sys(::setsid(), "setsid");
  return write_end;
}

int run(int argc, char** argv) {
  Options options = parse_options(argc, argv);
  log_set_verbose(options.verbose);
  Config config = Config::load(options.config_dir);
  auto problems = config.check();
  if (!problems.empty()) {
    for (size_t i = 1; i < problems.size(); ++i) log_error("%s", problems[i].c_str());
    throw ConfigError(config.main_cf_path(), 0, problems.front());
  }
  std::vector<MasterService> services = load_master_cf(config);
  child_credentials(config);  // mail_owner must exist before anything starts

  UniqueFd ready;
  if (!options.foreground) ready = detach();
  ::umask(022);

  // One master per spool: the lock lives as long as this process.
  std::string pid_file = config.str("queue_directory") + "/pid/master.pid";
  UniqueFd pid_fd = open_file(pid_file, O_RDWR | O_CREAT, 0644);
  FileLock lock = FileLock::try_lock(pid_fd.get(), FileLock::Mode::kExclusive);
  if (!lock.held()) {
    std::string running = read_fd(pid_fd.get());
    while (!running.empty() && (running.back() == '\n' || running.back() == ' ')) running.pop_back();
    log_fatal("the mail system is already running as PID %s (%s is locked)", running.c_str(), pid_file.c_str());
  }
  std::string pid_text = std::to_string(::getpid()) + "\n";
  check_sys(::ftruncate(pid_fd.get(), 0), "truncate " + pid_file);
  check_sys(::pwrite(pid_fd.get(), pid_text.data(), pid_text.size(), 0), "write " + pid_file);

  EventLoop loop;
  Master master(loop, std::move(config), std::move(services));
  bool stopping = false;
  SignalWatcher on_term(loop, SIGTERM, [&] { stopping = true; loop.stop(); });
  SignalWatcher on_int(loop, SIGINT, [&] { stopping = true; loop.stop(); });
  SignalWatcher on_hup(loop, SIGHUP, [&] { log_info("reload requested"); master.reload(); });
  SignalWatcher on_chld(loop, SIGCHLD, [&] { master.reap(); });

  std::string maillog = Config::load(options.config_dir).str("maillog_file");
  if (options.foreground) {
    log_init("master", LogSink::kFile, maillog.empty() ? "/dev/stderr" : maillog);
  } else {
    log_init("master", maillog.empty() ? LogSink::kSyslog : LogSink::kFile, maillog);
    write_all(ready.get(), "r");
    ready.reset();
    UniqueFd null = open_file("/dev/null", O_RDWR);
    for (int fd = 0; fd <= 2; ++fd) ::dup2(null.get(), fd);
  }
  log_info("daemon started as PID %d", int(::getpid()));
  while (!stopping) loop.run();
  log_info("terminating on signal");
  master.shutdown();
  ::unlink(pid_file.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  log_init("master", LogSink::kCommandLine);
  return run_command_line([&] { return run(argc, argv); });
}
