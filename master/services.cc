// master's services: listeners, processes on demand, status records, crash
// throttling and reload.
#include <fcntl.h>
#include <pwd.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <optional>
#include <sstream>
#include <thread>

#include "mail/daemon.h"
#include "master.h"
#include "util/error.h"
#include "util/file.h"
#include "util/log.h"
#include "util/socket.h"

namespace postern {

using Clock = std::chrono::steady_clock;

struct Master::Service {
  MasterService spec;
  std::string key;       // everything that makes two entries the same service
  std::string listen_key;  // what its listeners depend on
  int max = 0;             // 0: no limit
  std::vector<UniqueFd> listeners;
  std::vector<std::unique_ptr<IoWatcher>> listen_watchers;
  bool listening = false;
  UniqueFd status_read;
  UniqueFd status_write;
  std::string status_buffer;
  std::unique_ptr<IoWatcher> status_watcher;
  std::unique_ptr<Timer> wakeup_timer;
  std::unique_ptr<Timer> throttle_timer;
  std::deque<Clock::time_point> deaths;
  bool throttled = false;
  bool retired = false;
  int total = 0;
  int avail = 0;
};

namespace {

// The daemons that need nothing outside queue_directory once started, and so
// may run chrooted into it (master.cf chroot=y).  The others open tables,
// certificates and user databases while they run.
// cleanup opens virtual_alias_maps when its first message comes: only without them.
bool can_chroot(const std::string& command, const Config& config) {
  if (command == "cleanup") return config.str("virtual_alias_maps").empty();
  return command == "pickup" || command == "bounce";
}

// Connects to the UNIX socket fd listens on and hangs up at once (a trigger).
// Non-blocking: a full backlog means the service has work queued already.
void poke_unix_listener(int listen_fd) {
  struct sockaddr_un addr {};
  socklen_t len = sizeof addr;
  if (::getsockname(listen_fd, reinterpret_cast<struct sockaddr*>(&addr), &len) < 0 || addr.sun_family != AF_UNIX)
    return;
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (fd.valid()) (void)::connect(fd.get(), reinterpret_cast<struct sockaddr*>(&addr), len);
}

std::string service_key(const MasterService& s) {
  std::ostringstream out;
  out << s.name << '\0' << service_type_name(s.type) << '\0' << s.private_service << s.unprivileged << s.chroot
      << '\0' << s.wakeup_seconds << s.wakeup_only_if_used << '\0'
      << (s.max_processes ? std::to_string(*s.max_processes) : "-") << '\0' << s.command;
  for (const auto& a : s.args) out << '\0' << a;
  out << '\1';
  for (const auto& o : s.overrides) out << '\0' << o.name << '=' << o.value;
  return out.str();
}

std::string listen_key(const Config& config, const MasterService& s) {
  std::string key = s.name + "/" + std::string(service_type_name(s.type));
  if (s.type == ServiceType::kInet && s.name.find(':') == std::string::npos) key += "@" + config.str("inet_interfaces");
  if (s.type == ServiceType::kUnix) key += "@" + config.str("queue_directory") + (s.private_service ? "/private" : "/public");
  return key;
}

std::string describe_exit(int status) {
  if (WIFEXITED(status)) return "exit status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return std::string("killed by signal ") + std::to_string(WTERMSIG(status));
  return "status " + std::to_string(status);
}

}  // namespace

ChildCredentials child_credentials(const Config& config) {
  ChildCredentials out;
  if (::geteuid() != 0) return out;
  std::string owner = config.str("mail_owner");
  const Config::Entry* where = config.entry("mail_owner");
  auto error = [&](const std::string& what) {
    return where ? ConfigError(where->file, where->line, what) : ConfigError(config.main_cf_path(), 0, what);
  };
  struct passwd* pw = ::getpwnam(owner.c_str());
  if (!pw) throw error("mail_owner " + owner + ": no such user");
  if (pw->pw_uid == 0) throw error("mail_owner " + owner + ": must not be root");
  out.change = true;
  out.uid = pw->pw_uid;
  out.gid = pw->pw_gid;
  return out;
}

Result<std::vector<UniqueFd>> open_listeners(const Config& config, const MasterService& service,
                                             const ChildCredentials& credentials) {
  std::vector<UniqueFd> out;
  switch (service.type) {
    case ServiceType::kInet: {
      std::vector<std::string> specs;
      if (service.name.find(':') != std::string::npos) {
        specs.push_back(service.name);
      } else {
        for (std::string host : config.list("inet_interfaces")) {
          if (host == "all") {
            specs = {service.name};
            break;
          }
          if (host == "loopback-only") host = "127.0.0.1";
          specs.push_back((host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" + service.name);
        }
      }
      for (const auto& spec : specs) {
        auto fds = listen_inet(spec);
        if (!fds) return fail(service.id() + ": " + spec + ": " + fds.error());
        for (auto& fd : *fds) out.push_back(std::move(fd));
      }
      break;
    }
    case ServiceType::kUnix: {
      std::string path = config.str("queue_directory") + (service.private_service ? "/private/" : "/public/") +
                         service.name;
      auto fd = listen_unix(path, service.private_service ? 0600 : 0666);
      if (!fd) return fail(service.id() + ": " + path + ": " + fd.error());
      if (credentials.change && ::chown(path.c_str(), credentials.uid, credentials.gid) < 0)
        return fail(service.id() + ": chown " + path + ": " + std::strerror(errno));
      out.push_back(std::move(*fd));
      break;
    }
    default:
      return fail(service.id() + ": type " + std::string(service_type_name(service.type)) + " is not supported yet");
  }
  return out;
}

Master::Master(EventLoop& loop, Config config, std::vector<MasterService> services)
    : loop_(loop), config_(std::move(config)), credentials_(child_credentials(config_)) {
  for (const auto& spec : services) {
    auto listeners = open_listeners(config_, spec, credentials_);
    if (!listeners) throw SystemError(EADDRNOTAVAIL, listeners.error());
    services_[spec.id()] = make_service(spec, std::move(*listeners));
  }
  log_info("daemon started -- %zu services", services_.size());
}

Master::~Master() = default;

int Master::max_processes(const MasterService& spec) const {
  return spec.max_processes ? *spec.max_processes : int(config_.integer("default_process_limit"));
}

std::shared_ptr<Master::Service> Master::make_service(const MasterService& spec, std::vector<UniqueFd> listeners) {
  auto service = std::make_shared<Service>();
  Service* s = service.get();
  s->spec = spec;
  if (spec.chroot && ::geteuid() != 0)
    log_warn("%s:%d: service %s: chroot needs master to run as root; it runs without it", spec.file.c_str(),
             spec.line, spec.id().c_str());
  else if (spec.chroot && !can_chroot(spec.command, config_))
    log_warn("%s:%d: service %s: %s cannot run chrooted yet (it opens files outside queue_directory); it runs "
             "without it",
             spec.file.c_str(), spec.line, spec.id().c_str(), spec.command.c_str());
  s->key = service_key(spec);
  s->listen_key = listen_key(config_, spec);
  s->max = max_processes(spec);
  s->listeners = std::move(listeners);
  int pipe_fds[2];
  check_sys(::pipe2(pipe_fds, O_CLOEXEC), "pipe");
  s->status_read.reset(pipe_fds[0]);
  s->status_write.reset(pipe_fds[1]);
  set_nonblocking(s->status_read.get());
  s->status_watcher = std::make_unique<IoWatcher>(loop_, s->status_read.get(), IoWatcher::kReadable,
                                                  [this, s](int) { read_status(*s); });
  std::weak_ptr<Service> weak = service;
  for (const auto& fd : s->listeners) {
    s->listen_watchers.push_back(std::make_unique<IoWatcher>(loop_, fd.get(), IoWatcher::kReadable, [this, weak](int) {
      auto service = weak.lock();
      if (!service) return;
      if (!service->retired && !service->throttled && service->avail == 0 &&
          (service->max == 0 || service->total < service->max))
        start_child(service);
      update_listening(*service);
    }));
    s->listen_watchers.back()->stop();
  }
  if (spec.wakeup_seconds > 0) {
    // A wakeup is a connection to the service's own socket, which is what a
    // trigger is (pickup and qmgr scan their queues when a client connects): it
    // starts a process when none runs, or wakes the one that does.  "N?" wakes
    // only a service that has a process already.
    s->wakeup_timer = std::make_unique<Timer>(loop_, [weak] {
      auto service = weak.lock();
      if (!service || service->retired || service->throttled) return;
      if (service->spec.wakeup_only_if_used && service->total == 0) return;
      for (const auto& fd : service->listeners) poke_unix_listener(fd.get());
    });
    s->wakeup_timer->start_periodic(std::chrono::seconds(spec.wakeup_seconds));
  }
  s->throttle_timer = std::make_unique<Timer>(loop_, [this, s] {
    log_info("service %s: throttle ends", s->spec.id().c_str());
    s->throttled = false;
    s->deaths.clear();
    update_listening(*s);
  });
  update_listening(*s);
  return service;
}

void Master::update_listening(Service& s) {
  bool want = !s.retired && !s.throttled && s.avail == 0 && (s.max == 0 || s.total < s.max);
  if (want == s.listening) return;
  s.listening = want;
  for (auto& w : s.listen_watchers) want ? w->start() : w->stop();
}

void Master::start_child(const std::shared_ptr<Service>& service) {
  Service& s = *service;
  const MasterService& spec = s.spec;
  std::string path = config_.str("daemon_directory") + "/" + spec.command;
  std::vector<std::string> args = {spec.command, "-n", spec.name, "-t", std::string(service_type_name(spec.type)),
                                   "-s", std::to_string(s.listeners.size()), "-c", config_.dir()};
  for (const auto& o : spec.overrides) {
    args.push_back("-o");
    args.push_back(o.name + "=" + o.value);
  }
  if (log_verbose() > 0) args.push_back("-v");
  // chroot=y: the daemon itself enters queue_directory, after its libraries and
  // configuration are loaded, and only then gives up root (-r, and -u when it
  // runs as mail_owner).  It needs root for that: an instance not run by root
  // runs the service unchrooted (master warned when it read master.cf).
  const bool chroot_child = spec.chroot && ::geteuid() == 0 && can_chroot(spec.command, config_);
  if (chroot_child) {
    args.push_back("-r");
    if (credentials_.change && spec.unprivileged) args.push_back("-u");
  }
  args.insert(args.end(), spec.args.begin(), spec.args.end());
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::string env_dir = config_.dir();
  bool change = credentials_.change && spec.unprivileged && !chroot_child;

  const pid_t master_pid = ::getpid();
  pid_t pid = ::fork();
  if (pid < 0) {
    log_warn("service %s: fork: %m", spec.id().c_str());
    return;
  }
  if (pid == 0) {
    // The child: fd 3 = status pipe, fd 4.. = listeners, then the program.
    sigset_t all;
    sigemptyset(&all);
    ::sigprocmask(SIG_SETMASK, &all, nullptr);
    ::signal(SIGPIPE, SIG_DFL);
    std::vector<int> sources = {s.status_write.get()};
    for (const auto& fd : s.listeners) sources.push_back(fd.get());
    std::vector<int> high;
    int floor = kStatusFd + int(sources.size());
    for (int fd : sources) high.push_back(::fcntl(fd, F_DUPFD_CLOEXEC, floor));
    for (size_t i = 0; i < high.size(); ++i) {
      if (high[i] < 0 || ::dup2(high[i], kStatusFd + int(i)) < 0) {
        log_error("service %s: dup2: %m", spec.id().c_str());
        ::_exit(1);
      }
    }
    if (change) {
      try {
        drop_privileges(credentials_.uid, credentials_.gid);
      } catch (const SystemError& e) {
        log_error("service %s: %s", spec.id().c_str(), e.what());
        ::_exit(1);
      }
    }
    // A child outlives a master killed with SIGKILL only to hold its listeners
    // and its queue files against the next master: it gets SIGTERM when master
    // dies (set after the credentials change, which clears it; the check covers a
    // master that died before the call).
    if (::prctl(PR_SET_PDEATHSIG, SIGTERM) < 0 || ::getppid() != master_pid) ::_exit(1);
    ::setenv("POSTERN_CONFIG_DIR", env_dir.c_str(), 1);
    ::execv(path.c_str(), argv.data());
    log_error("service %s: exec %s: %m", spec.id().c_str(), path.c_str());
    ::_exit(127);
  }
  log_debug("service %s: started process %d", spec.id().c_str(), int(pid));
  children_[pid] = Child{pid, true, false, service};
  ++s.total;
  ++s.avail;
  update_listening(s);
}

void Master::read_status(Service& s) {
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(s.status_read.get(), buf, sizeof buf);
    if (n <= 0) break;
    s.status_buffer.append(buf, size_t(n));
  }
  while (s.status_buffer.size() >= kFrameHeaderSize) {
    auto length = frame_length(std::string_view(s.status_buffer).substr(0, kFrameHeaderSize));
    if (!length) {
      log_warn("service %s: bad status record: %s", s.spec.id().c_str(), length.error().c_str());
      s.status_buffer.clear();
      break;
    }
    if (s.status_buffer.size() < kFrameHeaderSize + *length) break;
    auto record = decode<DaemonStatus>(std::string_view(s.status_buffer).substr(kFrameHeaderSize, *length));
    s.status_buffer.erase(0, kFrameHeaderSize + *length);
    if (!record) {
      log_warn("service %s: bad status record: %s", s.spec.id().c_str(), record.error().c_str());
      continue;
    }
    auto it = children_.find(record->pid);
    if (it == children_.end() || it->second.service.get() != &s) continue;  // already reaped
    bool idle = record->status == "idle";
    if (!idle) it->second.served = true;
    if (idle != it->second.idle) {
      it->second.idle = idle;
      s.avail += idle ? 1 : -1;
    }
  }
  update_listening(s);
}

void Master::reap() {
  int status;
  pid_t pid;
  while ((pid = ::waitpid(-1, &status, WNOHANG)) > 0) child_exited(pid, status);
}

void Master::child_exited(pid_t pid, int status) {
  auto it = children_.find(pid);
  if (it == children_.end()) return;
  Child child = std::move(it->second);
  children_.erase(it);
  Service& s = *child.service;
  --s.total;
  if (child.idle) --s.avail;
  bool normal = WIFEXITED(status) && WEXITSTATUS(status) == 0;
  if (!normal && !s.retired) {
    log_warn("process %s/%s pid %d %s", config_.str("daemon_directory").c_str(), s.spec.command.c_str(), int(pid),
             describe_exit(status).c_str());
  }
  if (!normal && !s.retired && !child.served) {
    auto now = Clock::now();
    s.deaths.push_back(now);
    while (!s.deaths.empty() && now - s.deaths.front() > kDeathWindow) s.deaths.pop_front();
    if (int(s.deaths.size()) >= kMaxDeaths && !s.throttled) {
      log_warn("service %s: %zu processes died within %llds; throttling for %llds", s.spec.id().c_str(),
               s.deaths.size(), static_cast<long long>(kDeathWindow.count()),
               static_cast<long long>(kThrottleTime.count()));
      s.throttled = true;
      s.throttle_timer->start_once(kThrottleTime);
    }
  }
  update_listening(s);
}

void Master::retire(const std::shared_ptr<Service>& service) {
  Service& s = *service;
  s.retired = true;
  update_listening(s);
  s.listen_watchers.clear();
  s.listeners.clear();
  s.wakeup_timer.reset();
  s.throttle_timer->cancel();
  for (auto& [pid, child] : children_)
    if (child.service == service) ::kill(pid, SIGTERM);
}

void Master::reload() {
  std::vector<MasterService> specs;
  std::optional<Config> fresh;
  try {
    fresh.emplace(Config::load(config_.dir()));
    auto problems = fresh->check();
    if (!problems.empty()) throw ConfigError(fresh->main_cf_path(), 0, problems.front());
    specs = load_master_cf(*fresh);
    if (fresh->str("queue_directory") != config_.str("queue_directory"))
      log_warn("reload: a new queue_directory takes effect only when postern restarts");
    child_credentials(*fresh);
  } catch (const ConfigError& e) {
    log_error("reload: %s; the running configuration stays", e.what());
    return;
  }
  std::string spool = config_.str("queue_directory");
  config_ = std::move(*fresh);
  config_.set("queue_directory", spool, "master", 0);
  credentials_ = child_credentials(config_);

  std::map<std::string, std::shared_ptr<Service>> next;
  for (const auto& spec : specs) {
    auto old = services_.find(spec.id());
    if (old != services_.end() && old->second->key == service_key(spec) &&
        old->second->listen_key == listen_key(config_, spec)) {
      old->second->max = max_processes(spec);
      next[spec.id()] = old->second;
      services_.erase(old);
      continue;
    }
    std::shared_ptr<Service> previous;
    if (old != services_.end()) {
      previous = old->second;
      services_.erase(old);
    }
    std::vector<UniqueFd> listeners;
    if (previous && previous->listen_key == listen_key(config_, spec)) {
      // The same address: hand the open sockets over, so no connection is refused.
      previous->listen_watchers.clear();
      listeners = std::move(previous->listeners);
    } else {
      if (previous) retire(previous);
      auto opened = open_listeners(config_, spec, credentials_);
      if (!opened) {
        log_error("reload: %s; service not started", opened.error().c_str());
        continue;
      }
      listeners = std::move(*opened);
    }
    if (previous) {
      log_info("reload: service %s changed", spec.id().c_str());
      retire(previous);
    } else {
      log_info("reload: service %s added", spec.id().c_str());
    }
    next[spec.id()] = make_service(spec, std::move(listeners));
  }
  for (auto& [id, service] : services_) {
    log_info("reload: service %s removed", id.c_str());
    retire(service);
  }
  services_ = std::move(next);
  for (auto& [id, service] : services_) update_listening(*service);
  log_info("reload -- %zu services", services_.size());
}

void Master::shutdown() {
  for (auto& [id, service] : services_) retire(service);
  services_.clear();
  auto deadline = Clock::now() + std::chrono::seconds(10);
  while (!children_.empty()) {
    int status;
    pid_t pid = ::waitpid(-1, &status, WNOHANG);
    if (pid > 0) {
      children_.erase(pid);
      continue;
    }
    if (pid < 0 && errno == ECHILD) break;
    if (Clock::now() > deadline) {
      for (auto& [child_pid, child] : children_) ::kill(child_pid, SIGKILL);
      deadline = Clock::now() + std::chrono::seconds(10);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  children_.clear();
}

}  // namespace postern
