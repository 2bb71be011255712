// The master <-> child contract, child side: the one skeleton every daemon's main
// hands its work to (Postfix's single_server).  master (master/) is the other side.
//
// What a child gets from master:
//   fd 3 (kStatusFd)         the write end of its service's status pipe; the child
//                            writes DaemonStatus frames (codec.h): "busy" when it took
//                            a client, "idle" when it is ready for the next one.
//                            master starts another process only when none is idle.
//   fd 4.. (kFirstListenFd)  the service's listening sockets, non-blocking and shared
//                            with its sibling processes; children never bind.
//   argv                     -n service -t type -s count [-c dir] [-o name=value ...] [-v]
//                            [args]; -s says how many listeners follow fd 3.
//   environment              POSTERN_CONFIG_DIR
//   credentials              mail_owner (master dropped them before exec) unless
//                            master.cf says unpriv=n.
// A child serves at most max_use clients and waits at most max_idle seconds for the
// next one, then exits with status 0; master starts a new one when work arrives.
// Any other exit is a crash that master restarts with a back-off.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "mail/config.h"
#include "util/codec.h"
#include "util/error.h"
#include "util/fd.h"
#include "util/log.h"
#include "util/socket.h"

namespace postern {

inline constexpr int kStatusFd = 3;
inline constexpr int kFirstListenFd = 4;

struct DaemonStatus {
  int32_t pid = 0;
  std::string status;  // "busy" or "idle"

  static constexpr std::string_view kType = "daemon-status";
  static constexpr auto kFields =
      std::make_tuple(field("pid", &DaemonStatus::pid), field("status", &DaemonStatus::status));
};

struct DaemonArgs {
  std::string service;     // -n
  std::string type;        // -t (inet, unix, ...)
  int listen_count = 0;    // -s
  std::string config_dir;  // -c, else $POSTERN_CONFIG_DIR
  std::vector<std::pair<std::string, std::string>> overrides;  // -o name=value
  int verbose = 0;                                              // -v
  bool chroot = false;        // -r: enter queue_directory (master.cf chroot=y; root only)
  bool drop_to_owner = false;  // -u: then become mail_owner (the daemon drops root itself)
  std::vector<std::string> args;                                // the rest
};

// Parses a child's command line; throws UsageError.
DaemonArgs parse_daemon_args(int argc, char** argv);

// The configuration a child runs with: main.cf plus its -o overrides.
Config load_daemon_config(const DaemonArgs& args);

// The listening sockets master passed: count fds from fd 4 on (each must be open).
std::vector<UniqueFd> take_listeners(int count);

// The one privilege-drop sequence: setgroups, setresgid, setresuid, then proof
// that root cannot be regained (a panic if it can).  The process keeps gid and
// the extra groups (local's group of a mail spool).  Throws SystemError.
void drop_privileges(uid_t uid, gid_t gid, const std::vector<gid_t>& extra_groups = {});

// master gives every child SIGTERM when it dies (PR_SET_PDEATHSIG), but the
// kernel forgets that setting when the process changes its effective IDs.  A
// daemon that switches identities and back (local) calls this after switching
// back: it arms the signal again, and exits at once if master is gone already.
void rearm_master_death_signal();

// master.cf chroot=y (-r): chroot(queue_directory), chdir("/"), queue_directory
// becomes "/" in config, then (-u) the switch to mail_owner.  Files outside the
// spool are out of reach from here on.
void enter_chroot(Config& config, bool drop_to_owner);
struct DaemonStartup;
// Enters the chroot when master asked for it (-r), else does nothing.
// run_single_server calls it before serving.  master asks only daemons that need
// nothing outside queue_directory once started (pickup, cleanup, bounce).
void enter_jail(DaemonStartup& d);

// Writes busy/idle records to master; a child whose master went away exits.
class StatusReporter {
 public:
  explicit StatusReporter(int fd = kStatusFd) : fd_(fd) {}
  void busy() { send("busy"); }
  void idle() { send("idle"); }

 private:
  void send(const char* status);
  int fd_;
};

// What every daemon does first: parse master's arguments, set up logging, load
// its configuration and refuse to start on any problem in it, and take the
// listeners. Any failure ends the process through log_fatal ("file:line: what").
struct DaemonStartup {
  DaemonArgs args;
  Config config;
  std::vector<UniqueFd> listeners;
};
DaemonStartup start_daemon(int argc, char** argv);

// Runs a daemon's body; a configuration or system error that escapes it ends the
// process through log_fatal, and master restarts the service.
template <typename Body>
auto run_daemon_body(Body&& body) -> decltype(body()) {
  try {
    return body();
  } catch (const ConfigError& e) {
    log_fatal("%s", e.what());
  } catch (const SystemError& e) {
    log_fatal("%s", e.what());
  }
}

struct DaemonContext {
  const DaemonArgs& args;
  const Config& config;
};

// Serves one client at a time: accepts a connection from any listener, reports
// busy, calls serve (which may block on that one client), reports idle, and exits
// after max_use clients or max_idle seconds without one.  Returns the exit status.
using ClientHandler = std::function<void(UniqueFd client, const DaemonContext& context)>;
int run_single_server(int argc, char** argv, const ClientHandler& serve);

// The body of a one-request service (bounce, local, smtp, virtual): our Hello,
// one Request, handle(request) -> its Reply.  A client that breaks off, or a
// request that does not decode, is logged and left; nothing is answered.
template <typename Request, typename Handle>
void serve_one_request(const UniqueFd& client, const DaemonContext& context, Timeout timeout, Handle&& handle) {
  if (auto hello = write_message(client.get(), make_hello(context.args.service), timeout); !hello) {
    log_warn("hello: %s", hello.error().c_str());
    return;
  }
  auto request = read_message<Request>(client.get(), timeout);
  if (!request) {
    log_warn("bad request: %s", request.error().c_str());
    return;
  }
  auto reply = handle(*request);
  if (auto sent = write_message(client.get(), reply, timeout); !sent)
    log_warn("%s: reply not delivered: %s", request->queue_id.c_str(), sent.error().c_str());
}

}  // namespace postern
