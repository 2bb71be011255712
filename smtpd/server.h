// smtpd's process: accepts connections from master's listeners, runs up to
// smtpd_sessions_per_process sessions on one event loop, tells master "busy"
// when it is full and "idle" when it has room again, keeps the per-client
// connection count and rate limits, and retires after max_use sessions or
// max_idle seconds without one.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "committer.h"
#include "mail/config.h"
#include "mail/auth_client.h"
#include "mail/daemon.h"
#include "mail/smtpd_policy.h"
#include "session.h"
#include "util/event.h"
#include "util/fd.h"
#include "util/tls.h"

namespace postern {

class SmtpServer {
 public:
  SmtpServer(EventLoop& loop, const Config& config, const std::vector<UniqueFd>& listeners);
  SmtpServer(const SmtpServer&) = delete;
  SmtpServer& operator=(const SmtpServer&) = delete;

  EventLoop& loop() { return loop_; }
  const Config& config() const { return config_; }
  const SmtpdSettings& settings() const { return settings_; }
  GroupCommitter& committer() { return committer_; }
  const SmtpdPolicy& policy() const { return policy_; }
  // The TLS context, or null when this service offers no TLS.
  SSL_CTX* tls_context() const { return tls_.get(); }
  AuthClient& auth() { return auth_; }
  // The session is done: it is destroyed on the loop's next turn, never inside its own callback.
  void retire(uint64_t id);

 private:
  void accept_from(int listen_fd);
  void reap();
  void update_status();
  std::string check_client_limits(const std::string& address);

  EventLoop& loop_;
  const Config& config_;
  SmtpdSettings settings_;
  SmtpdPolicy policy_;
  SslCtxPtr tls_;
  AuthClient auth_;
  StatusReporter status_;
  GroupCommitter committer_;
  size_t max_sessions_;
  int64_t max_use_;
  std::chrono::seconds max_idle_;
  int64_t count_limit_;
  int64_t rate_limit_;
  std::chrono::seconds rate_unit_;
  int64_t used_ = 0;
  bool busy_ = false;
  bool retiring_ = false;  // max_use reached: no new sessions, exit when the last ends
  uint64_t next_id_ = 1;
  std::map<uint64_t, std::unique_ptr<Session>> sessions_;
  std::map<std::string, int64_t> per_client_;
  std::map<std::string, std::deque<std::chrono::steady_clock::time_point>> arrivals_;
  std::vector<uint64_t> retired_;
  Timer reaper_;
  Timer idle_timer_;
  std::vector<std::unique_ptr<IoWatcher>> watchers_;
};

}  // namespace postern
