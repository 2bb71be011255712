// master's supervisor: the services of master.cf, their listeners, status pipes
// and processes.  The contract with the children is in lib/mail/daemon.h.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "mail/config.h"
#include "mail/master_cf.h"
#include "util/event.h"
#include "util/fd.h"
#include "util/result.h"

namespace postern {

// Who children run as.  Started by root: mail_owner, except unpriv=n services.
// Started by anyone else: that user, unchanged.
struct ChildCredentials {
  bool change = false;
  uid_t uid = 0;
  gid_t gid = 0;
};
// Throws ConfigError when mail_owner is unknown or is root.
ChildCredentials child_credentials(const Config& config);

// The listeners a service's entry names, opened (master binds; children never do).
// A failure names the service and the address.
Result<std::vector<UniqueFd>> open_listeners(const Config& config, const MasterService& service,
                                             const ChildCredentials& credentials);

class Master {
 public:
  // A crash storm: this many abnormal exits within kDeathWindow of processes that
  // never served a client (a daemon that cannot start: bad configuration, missing
  // file) stops a service's process creation for kThrottleTime, as Postfix's
  // "bad command startup -- throttling".  A process killed while it served
  // (kill -9 of a busy local) is restarted at once: the queue goes on.
  static constexpr int kMaxDeaths = 5;
  static constexpr std::chrono::seconds kDeathWindow{10};
  static constexpr std::chrono::seconds kThrottleTime{60};

  // Opens every service's listeners; throws SystemError / ConfigError when one
  // cannot be opened (nothing has started yet).
  Master(EventLoop& loop, Config config, std::vector<MasterService> services);
  ~Master();
  Master(const Master&) = delete;
  Master& operator=(const Master&) = delete;

  // SIGHUP: re-reads main.cf and master.cf; a bad configuration is logged and
  // the running one kept.
  void reload();
  // SIGCHLD: collects every exited child.
  void reap();
  // SIGTERM: stops listening, terminates the children and waits for them.
  void shutdown();

 private:
  struct Service;
  struct Child {
    pid_t pid = 0;
    bool idle = true;
    bool served = false;  // reported busy at least once
    std::shared_ptr<Service> service;
  };

  std::shared_ptr<Service> make_service(const MasterService& spec, std::vector<UniqueFd> listeners);
  void retire(const std::shared_ptr<Service>& service);
  void update_listening(Service& service);
  void start_child(const std::shared_ptr<Service>& service);
  void read_status(Service& service);
  void child_exited(pid_t pid, int status);
  int max_processes(const MasterService& spec) const;

  EventLoop& loop_;
  Config config_;
  ChildCredentials credentials_;
  std::map<std::string, std::shared_ptr<Service>> services_;  // by "name/type"
  std::map<pid_t, Child> children_;
};

}  // namespace postern
