// smtpd's process: sessions, listeners, limits and master's busy/idle (server.h).
#include "server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <utility>

#include "mail/tls_config.h"
#include "util/log.h"
#include "util/socket.h"
#include "util/strings.h"

namespace postern {

namespace {

std::string peer_address(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len) < 0) return "unknown";
  char buf[INET6_ADDRSTRLEN] = {};
  if (ss.ss_family == AF_INET) {
    ::inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(&ss)->sin_addr, buf, sizeof buf);
  } else if (ss.ss_family == AF_INET6) {
    auto* a6 = reinterpret_cast<sockaddr_in6*>(&ss);
    if (IN6_IS_ADDR_V4MAPPED(&a6->sin6_addr)) {
      ::inet_ntop(AF_INET, &a6->sin6_addr.s6_addr[12], buf, sizeof buf);
    } else {
      ::inet_ntop(AF_INET6, &a6->sin6_addr, buf, sizeof buf);
    }
  } else {
    return "127.0.0.1";  // a UNIX-domain listener (tests): a local client
  }
  return buf;
}

// The TLS context, or none when the certificate or key cannot be used: smtpd then
// runs without TLS and says why (STARTTLS answers 454 4.7.0, a wrapper-mode
// connection is closed), as Postfix's smtpd does, rather than exiting at every
// start, which would only leave master restarting it.
SslCtxPtr server_tls_or_none(const Config& config, bool mandatory) {
  try {
    return make_server_context(config, "smtpd_tls_", mandatory);
  } catch (const ConfigError& e) {
    log_warn("%s; TLS is not available", e.what());
    return nullptr;
  }
}

}  // namespace

SmtpServer::SmtpServer(EventLoop& loop, const Config& config, const std::vector<UniqueFd>& listeners)
    : loop_(loop),
      config_(config),
      settings_(SmtpdSettings::from(config)),
      policy_(config),
      tls_(settings_.tls_level != TlsLevel::kNone || settings_.wrapper_mode
               ? server_tls_or_none(config, settings_.tls_level == TlsLevel::kEncrypt)
               : nullptr),
      auth_(loop, auth_socket_path(config.str("queue_directory")), std::chrono::seconds(30)),
      committer_(loop, config.str("queue_directory") + "/incoming",
                 [this](const GroupCommitter::Result& r) {
                   auto it = sessions_.find(r.ticket);
                   if (it != sessions_.end()) it->second->committed(r);
                   else if (r.error.empty()) log_info("%s: client went away before the reply", r.queue_id.c_str());
                   if (r.error.empty()) poke_qmgr(config_.str("queue_directory"));
                 }),
      max_sessions_(static_cast<size_t>(config.integer("smtpd_sessions_per_process"))),
      max_use_(config.integer("max_use")),
      max_idle_(config.seconds("max_idle")),
      count_limit_(config.integer("smtpd_client_connection_count_limit")),
      rate_limit_(config.integer("smtpd_client_connection_rate_limit")),
      rate_unit_(config.seconds("anvil_rate_time_unit")),
      reaper_(loop, [this] { reap(); }),
      idle_timer_(loop, [this] {
        log_debug("idle for %llds, exiting", static_cast<long long>(max_idle_.count()));
        loop_.stop();
      }) {
  for (const UniqueFd& listener : listeners) {
    int fd = listener.get();
    watchers_.push_back(
        std::make_unique<IoWatcher>(loop, fd, IoWatcher::kReadable, [this, fd](int) { accept_from(fd); }));
  }
  idle_timer_.start_once(max_idle_);
}

std::string SmtpServer::check_client_limits(const std::string& address) {
  if (count_limit_ > 0 && per_client_[address] >= count_limit_)
    return format("421 4.7.0 %s Error: too many connections from %s\r\n", settings_.myhostname.c_str(),
                  address.c_str());
  if (rate_limit_ > 0) {
    auto now = std::chrono::steady_clock::now();
    auto& times = arrivals_[address];
    while (!times.empty() && now - times.front() >= rate_unit_) times.pop_front();
    if (static_cast<int64_t>(times.size()) >= rate_limit_)
      return format("421 4.7.0 %s Error: too many connections from %s\r\n", settings_.myhostname.c_str(),
                    address.c_str());
    times.push_back(now);
  }
  return "";
}

void SmtpServer::accept_from(int listen_fd) {
  if (retiring_ || sessions_.size() >= max_sessions_) return;
  auto client = accept_connection(listen_fd);
  if (!client) return;  // a sibling took it
  idle_timer_.cancel();
  std::string address = peer_address(client->get());
  uint64_t id = next_id_++;
  std::string refusal = check_client_limits(address);
  ++per_client_[address];  // until reap(), refused sessions included
  auto session = std::make_unique<Session>(*this, id, std::move(*client), address);
  Session& s = *session;
  sessions_.emplace(id, std::move(session));
  if (!refusal.empty()) {
    log_warn("warning: connection limit exceeded for %s", address.c_str());
    s.refuse(refusal);
    return;
  }
  ++used_;
  if (used_ >= max_use_) {
    retiring_ = true;  // master starts a fresh process for new clients
    log_debug("served %lld clients, retiring", static_cast<long long>(used_));
  }
  update_status();
  s.start();
}

void SmtpServer::update_status() {
  bool full = retiring_ || sessions_.size() >= max_sessions_;
  if (full == busy_) return;
  busy_ = full;
  if (full) status_.busy();
  else status_.idle();
}

void SmtpServer::retire(uint64_t id) {
  retired_.push_back(id);
  if (!reaper_.pending()) reaper_.start_once(std::chrono::milliseconds(0));
}

void SmtpServer::reap() {
  std::vector<uint64_t> ids;
  ids.swap(retired_);
  for (uint64_t id : ids) {
    auto it = sessions_.find(id);
    if (it == sessions_.end()) continue;
    std::string address = it->second->client_address();
    auto pc = per_client_.find(address);
    if (pc != per_client_.end() && --pc->second <= 0) per_client_.erase(pc);
    sessions_.erase(it);
  }
  for (auto it = arrivals_.begin(); it != arrivals_.end();) {
    auto now = std::chrono::steady_clock::now();
    while (!it->second.empty() && now - it->second.front() >= rate_unit_) it->second.pop_front();
    it = it->second.empty() ? arrivals_.erase(it) : std::next(it);
  }
  if (sessions_.empty()) {
    if (retiring_) {
      loop_.stop();
      return;
    }
    idle_timer_.start_once(max_idle_);
  }
  update_status();
}

}  // namespace postern
