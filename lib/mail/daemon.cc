// The child side of the master <-> child contract (daemon.h).
#include "mail/daemon.h"

#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <chrono>
#include <ctime>
#include <cstdlib>
#include <memory>

#include "util/error.h"
#include "util/event.h"
#include "util/file.h"
#include "util/log.h"
#include "util/strings.h"
#include "util/socket.h"

namespace postern {

DaemonArgs parse_daemon_args(int argc, char** argv) {
  DaemonArgs out;
  int i = 1;
  auto value = [&](const std::string& opt) -> std::string {
    if (i + 1 >= argc) throw UsageError("option " + opt + " needs a value");
    return argv[++i];
  };
  for (; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--") {
      ++i;
      break;
    }
    if (a.size() < 2 || a[0] != '-') break;
    if (a == "-n") out.service = value(a);
    else if (a == "-t") out.type = value(a);
    else if (a == "-c") out.config_dir = value(a);
    else if (a == "-s") {
      auto n = parse_int(value(a));
      if (!n || *n < 0 || *n > 1000) throw UsageError("-s needs a listener count");
      out.listen_count = static_cast<int>(*n);
    }
    else if (a == "-v") ++out.verbose;
    else if (a == "-r") out.chroot = true;
    else if (a == "-u") out.drop_to_owner = true;
    else if (a == "-o") {
      std::string kv = value(a);
      auto eq = kv.find('=');
      if (eq == std::string::npos || eq == 0) throw UsageError("-o " + kv + ": expected name=value");
      out.overrides.emplace_back(kv.substr(0, eq), kv.substr(eq + 1));
    } else {
      break;  // the service's own arguments begin here
    }
  }
  for (; i < argc; ++i) out.args.emplace_back(argv[i]);
  if (out.service.empty()) throw UsageError("missing -n service (a daemon is started by master)");
  if (out.type.empty()) throw UsageError("missing -t type (a daemon is started by master)");
  out.config_dir = Config::choose_dir(out.config_dir);
  return out;
}

Config load_daemon_config(const DaemonArgs& args) {
  Config config = Config::load(args.config_dir);
  for (const auto& [name, value] : args.overrides) config.set(name, value, "master.cf", 0);
  return config;
}

std::vector<UniqueFd> take_listeners(int count) {
  std::vector<UniqueFd> out;
  for (int fd = kFirstListenFd; fd < kFirstListenFd + count; ++fd) {
    if (::fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)  // not for the programs a daemon runs
      throw SystemError(errno, "listener fd " + std::to_string(fd));
    out.emplace_back(fd);
  }
  return out;
}

void drop_privileges(uid_t uid, gid_t gid, const std::vector<gid_t>& extra_groups) {
  std::vector<gid_t> groups{gid};
  groups.insert(groups.end(), extra_groups.begin(), extra_groups.end());
  check_sys(::setgroups(groups.size(), groups.data()), "setgroups");
  check_sys(::setresgid(gid, gid, gid), "setresgid");
  check_sys(::setresuid(uid, uid, uid), "setresuid");
  if (uid != 0 && ::setuid(0) == 0) log_panic("privileges dropped to uid %d but setuid(0) still works", int(uid));
}

void StatusReporter::send(const char* status) {
  auto frame = encode_frame(DaemonStatus{int32_t(::getpid()), status});
  if (!frame) log_panic("status frame: %s", frame.error().c_str());
  // A frame is far below PIPE_BUF, so siblings' records never interleave.
  ssize_t n = retry_eintr([&] { return ::write(fd_, frame->data(), frame->size()); });
  if (n != ssize_t(frame->size())) log_fatal("master went away (status pipe: %m)");
}

namespace {
pid_t g_master_pid = 0;  // the parent at start: master
}  // namespace

void rearm_master_death_signal() {
  if (g_master_pid <= 1) return;
  if (::prctl(PR_SET_PDEATHSIG, SIGTERM) < 0 || ::getppid() != g_master_pid) ::_exit(1);
}

void enter_jail(DaemonStartup& d) {
  if (!d.args.chroot) return;
  enter_chroot(d.config, d.args.drop_to_owner);
}

void enter_chroot(Config& config, bool drop_to_owner) {
  std::string spool = config.str("queue_directory");
  uid_t uid = 0;
  gid_t gid = 0;
  if (drop_to_owner) {
    std::string owner = config.str("mail_owner");
    struct passwd* pw = ::getpwnam(owner.c_str());
    if (!pw || pw->pw_uid == 0) log_fatal("mail_owner %s: unknown or root", owner.c_str());
    uid = pw->pw_uid;
    gid = pw->pw_gid;
  }
  // The time zone, which the C library would read later from /etc.
  ::tzset();
  check_sys(::chroot(spool.c_str()), "chroot " + spool);
  check_sys(::chdir("/"), "chdir / in " + spool);
  config.set("queue_directory", "/", "chroot", 0);
  if (drop_to_owner) drop_privileges(uid, gid);
  rearm_master_death_signal();
  log_debug("chrooted into %s", spool.c_str());
}

DaemonStartup start_daemon(int argc, char** argv) {
  g_master_pid = ::getppid();
  DaemonArgs args;
  try {
    args = parse_daemon_args(argc, argv);
  } catch (const UsageError& e) {
    log_init(basename_of(argc > 0 ? argv[0] : "daemon"), LogSink::kCommandLine);
    log_fatal("%s", e.what());
  }
  log_init(args.service, LogSink::kSyslog);
  return run_daemon_body([&] {
    Config config = load_daemon_config(args);
    std::string maillog = config.str("maillog_file");
    if (!maillog.empty()) log_init(args.service, LogSink::kFile, maillog);
    log_set_verbose(args.verbose);
    auto problems = config.check();
    if (!problems.empty()) log_fatal("%s", problems.front().c_str());
    std::vector<UniqueFd> listeners = take_listeners(args.listen_count);
    if (listeners.empty()) log_fatal("no listening socket on fd %d: not started by master?", kFirstListenFd);
    return DaemonStartup{std::move(args), std::move(config), std::move(listeners)};
  });
}

int run_single_server(int argc, char** argv, const ClientHandler& serve) {
  DaemonStartup d = start_daemon(argc, argv);
  run_daemon_body([&] {
    enter_jail(d);
    return 0;
  });
  const DaemonArgs& args = d.args;
  const Config& config = d.config;
  const std::vector<UniqueFd>& listeners = d.listeners;
  return run_daemon_body([&] {
    const int64_t max_use = config.integer("max_use");
    const auto max_idle = std::chrono::seconds(config.seconds("max_idle"));

    EventLoop loop;
    StatusReporter status;
    DaemonContext context{args, config};
    int64_t used = 0;
    Timer idle_timer(loop, [&] {
      log_debug("idle for %llds, exiting", static_cast<long long>(max_idle.count()));
      loop.stop();
    });
    std::vector<std::unique_ptr<IoWatcher>> watchers;
    for (const auto& listener : listeners) {
      int fd = listener.get();
      watchers.push_back(std::make_unique<IoWatcher>(loop, fd, IoWatcher::kReadable, [&, fd](int) {
        auto client = accept_connection(fd);
        if (!client) return;  // a sibling took it
        idle_timer.cancel();
        status.busy();
        serve(std::move(*client), context);
        status.idle();
        if (++used >= max_use) {
          log_debug("served %lld clients, exiting", static_cast<long long>(used));
          loop.stop();
          return;
        }
        idle_timer.start_once(max_idle);
      }));
    }
    idle_timer.start_once(max_idle);
    loop.run();
    return 0;
  });
}

}  // namespace postern
