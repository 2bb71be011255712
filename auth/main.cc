// auth: the password service that smtpd, pop3d and imapd ask, like Dovecot's
// auth service behind Postfix's SASL.
//   auth -n service -t unix ...   (started by master; private/auth)
// A client connection carries any number of verify requests
// (lib/mail/auth_protocol.h: service, user, password, client address); each is
// answered ok (with the canonical user name), fail, or temp.  Many connections
// are served at once on one event loop; answers may come out of order.
//
// Passwords are looked up in auth_password_maps (lookup tables, "user" -> hash;
// keys are looked up in lower case, so the canonical name is the lower-case one),
// then, when auth_system_users = yes, in the system's accounts (getpwnam and
// getspnam; the name as passwd spells it).  Only yescrypt, bcrypt and SHA-512
// crypt hashes are compared (lib/util/password_hash.h; postpasswd makes them); a
// plain-text or weak entry is refused with a warning that names the user, so the
// administrator can replace it.  A table that fails temporarily (the database is
// down) answers temp.  A failure is answered after auth_failure_delay, without
// holding up other requests, and an unknown user costs the same time as a wrong
// password.
//
// Privileges: master starts auth as root (master.cf: unpriv n).  auth opens its
// tables and then gives up root: it runs as mail_owner, with the group "shadow"
// when auth_system_users = yes and /etc/shadow is readable by that group (as on
// Debian), and stays root only when system users are wanted and no such group
// exists.  Tables in auth_password_maps must be readable by that user and group.
//
// Log: "authenticated: user=<alice>, service=smtp, client=192.0.2.1",
// "authentication failed: user=<alice>, service=smtp, client=192.0.2.1: wrong
// password", and warnings for refused entries and failed tables; never a password.
#include <grp.h>
#include <pwd.h>
#include <shadow.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "mail/auth_protocol.h"
#include "mail/daemon.h"
#include "mail/table.h"
#include "util/error.h"
#include "util/event.h"
#include "util/log.h"
#include "util/password_hash.h"
#include "util/socket.h"
#include "util/strings.h"

namespace postern {
namespace {

constexpr const char* kShadowFile = "/etc/shadow";

// A name fit for the log and a lookup: not empty, bounded, no control characters.
bool acceptable_name(const std::string& s) {
  if (s.empty() || s.size() > kAuthMaxField) return false;
  for (unsigned char c : s)
    if (c < 0x20 || c == 0x7f) return false;
  return true;
}

// What a check found, before it is told to the client.
struct Verdict {
  std::string status;
  std::string user;    // canonical, when ok
  std::string detail;  // for our log only
};

class Authenticator {
 public:
  explicit Authenticator(const Config& config)
      : maps_(config.str("auth_password_maps")), system_users_(config.boolean("auth_system_users")) {}

  bool system_users() const { return system_users_; }

  Verdict check(const AuthRequest& request) {
    if (!acceptable_name(request.user)) return fail("malformed user name");
    if (request.password.empty() || request.password.size() > kAuthMaxField ||
        request.password.find('\0') != std::string::npos) {
      check_password_decoy(request.password);
      return fail("malformed password");
    }
    if (!maps_.empty()) {
      LookupResult found = maps_.lookup(request.user);
      if (found.is_temp_fail()) return {std::string(kAuthTemp), {}, "password table: " + found.error};
      if (found.is_found()) return compare(request, lowercase(request.user), trim(found.value), "auth_password_maps");
    }
    if (system_users_) {
      errno = 0;
      struct passwd* pw = ::getpwnam(request.user.c_str());
      if (!pw && errno != 0 && errno != ENOENT && errno != ESRCH)
        return {std::string(kAuthTemp), {}, std::string("passwd lookup: ") + std::strerror(errno)};
      if (pw) {
        std::string name = pw->pw_name;
        std::string hash = pw->pw_passwd;
        errno = 0;
        struct spwd* sp = ::getspnam(name.c_str());
        if (sp) {
          hash = sp->sp_pwdp;
          if (sp->sp_expire > 0 && sp->sp_expire <= static_cast<long>(::time(nullptr) / 86400)) {
            check_password_decoy(request.password);
            return fail("account expired");
          }
        } else if (errno == EACCES) {
          return {std::string(kAuthTemp), {}, std::string("cannot read ") + kShadowFile + ": " + std::strerror(errno)};
        }
        return compare(request, name, hash, "system account");
      }
    }
    check_password_decoy(request.password);
    return fail("no such user");
  }

 private:
  static Verdict fail(std::string detail) { return {std::string(kAuthFail), {}, std::move(detail)}; }

  static Verdict compare(const AuthRequest& request, const std::string& canonical, std::string_view stored,
                         const char* source) {
    PasswordCheck check = check_password(request.password, stored);
    switch (check.outcome) {
      case PasswordCheck::kMatch: return {std::string(kAuthOk), canonical, {}};
      case PasswordCheck::kMismatch: return fail("wrong password");
      case PasswordCheck::kLocked: break;
      case PasswordCheck::kRefused:
        log_warn("user=<%s>: %s entry refused, never compared: %s (make a new one with postpasswd)",
                 canonical.c_str(), source, check.reason.c_str());
        break;
    }
    // As long as a real check, so that no answer tells what kind of entry a user has.
    check_password_decoy(request.password);
    if (check.outcome == PasswordCheck::kLocked) return fail(check.reason);
    return fail("password entry refused: " + check.reason);
  }

  TableList maps_;
  bool system_users_;
};

// One client connection: requests in, answers out, failures held back.
class Connection {
 public:
  Connection(EventLoop& loop, UniqueFd fd, Authenticator& auth, std::chrono::milliseconds failure_delay,
             const std::string& service, std::function<void(Connection*)> on_close)
      : loop_(loop), auth_(auth), failure_delay_(failure_delay), on_close_(std::move(on_close)) {
    FrameOptions options;
    options.write_timeout = std::chrono::seconds(60);
    options.limits = kAuthCodecLimits;
    conn_ = std::make_unique<FramedConnection>(
        loop, std::move(fd), options, [this](std::string payload) { on_request(payload); },
        [this](FramedConnection::Error error, const std::string& reason) {
          if (error != FramedConnection::Error::kClosed) log_warn("client connection: %s", reason.c_str());
          on_close_(this);
        });
    if (auto sent = conn_->send_message(make_hello(service)); !sent) log_warn("hello: %s", sent.error().c_str());
  }

 private:
  void on_request(const std::string& payload) {
    auto request = decode<AuthRequest>(payload, kAuthCodecLimits);
    if (!request) {
      log_warn("malformed request, closing the connection: %s", request.error().c_str());
      return on_close_(this);
    }
    Verdict verdict = auth_.check(*request);
    std::string user = acceptable_name(request->user) ? request->user : "?";
    std::string client = acceptable_name(request->client_address) ? request->client_address : "unknown";
    std::string service = acceptable_name(request->service) ? request->service : "?";
    AuthReply reply{request->id, verdict.status, verdict.user, {}};
    if (verdict.status == kAuthOk) {
      log_info("authenticated: user=<%s>, service=%s, client=%s", verdict.user.c_str(), service.c_str(),
               client.c_str());
      return send(reply);
    }
    if (verdict.status == kAuthTemp) {
      log_warn("authentication not possible now: user=<%s>, service=%s, client=%s: %s", user.c_str(),
               service.c_str(), client.c_str(), verdict.detail.c_str());
      reply.reason = "temporary authentication failure";
      return send(reply);
    }
    log_info("authentication failed: user=<%s>, service=%s, client=%s: %s", user.c_str(), service.c_str(),
             client.c_str(), verdict.detail.c_str());
    reply.reason = "authentication failed";
    if (failure_delay_.count() == 0) return send(reply);
    // Held back without blocking: other requests go on meanwhile.
    auto it = delayed_.emplace(delayed_.end());
    *it = std::make_unique<Timer>(loop_, [this, it, reply] {
      send(reply);
      delayed_.erase(it);
    });
    (*it)->start_once(failure_delay_);
  }

  void send(const AuthReply& reply) {
    if (auto sent = conn_->send_message(reply); !sent) log_warn("reply: %s", sent.error().c_str());
  }

  EventLoop& loop_;
  Authenticator& auth_;
  std::chrono::milliseconds failure_delay_;
  std::function<void(Connection*)> on_close_;
  std::list<std::unique_ptr<Timer>> delayed_;
  std::unique_ptr<FramedConnection> conn_;
};

// Gives up root once the tables are open (see the header comment).
void drop_root(const Config& config, bool system_users) {
  if (::geteuid() != 0) return;
  std::string owner = config.str("mail_owner");
  struct passwd* pw = ::getpwnam(owner.c_str());
  if (!pw) throw ConfigError(config.main_cf_path(), 0, "mail_owner " + owner + ": no such user");
  gid_t gid = pw->pw_gid;
  if (system_users) {
    struct group* shadow = ::getgrnam("shadow");
    struct stat st;
    bool group_readable = shadow && ::stat(kShadowFile, &st) == 0 && st.st_gid == shadow->gr_gid &&
                          (st.st_mode & S_IRGRP);
    if (!group_readable) {
      log_info("auth_system_users = yes and %s is not readable by a group \"shadow\": keeping root", kShadowFile);
      return;
    }
    gid = shadow->gr_gid;
  }
  drop_privileges(pw->pw_uid, gid);
}

int run(int argc, char** argv) {
  DaemonStartup d = start_daemon(argc, argv);
  const Config& config = d.config;
  return run_daemon_body([&] {
    Authenticator auth(config);
    drop_root(config, auth.system_users());
    const auto failure_delay = std::chrono::milliseconds(config.seconds("auth_failure_delay") * 1000);
    const int64_t max_use = config.integer("max_use");
    const auto max_idle = std::chrono::seconds(config.seconds("max_idle"));

    EventLoop loop;
    StatusReporter status;
    std::map<Connection*, std::unique_ptr<Connection>> clients;
    std::vector<std::unique_ptr<IoWatcher>> watchers;
    int64_t used = 0;
    Timer idle_timer(loop, [&] {
      log_debug("idle for %llds, exiting", static_cast<long long>(max_idle.count()));
      loop.stop();
    });
    // A closed connection goes away after the callback that saw it close.
    std::vector<std::unique_ptr<Connection>> closed;
    Timer reaper(loop, [&] {
      closed.clear();
      if (!clients.empty()) return;
      if (watchers.empty()) loop.stop();  // served max_use clients, the last one left
      else idle_timer.start_once(max_idle);
    });
    auto on_close = [&](Connection* c) {
      auto it = clients.find(c);
      if (it == clients.end()) return;
      closed.push_back(std::move(it->second));
      clients.erase(it);
      reaper.start_once(std::chrono::milliseconds(0));
    };
    for (const auto& listener : d.listeners) {
      int fd = listener.get();
      watchers.push_back(std::make_unique<IoWatcher>(loop, fd, IoWatcher::kReadable, [&, fd](int) {
        // Like Postfix's multi-server: busy while taking a client, then free for more.
        status.busy();
        auto client = accept_connection(fd);
        status.idle();
        if (!client) return;  // a sibling took it
        idle_timer.cancel();
        auto c = std::make_unique<Connection>(loop, std::move(*client), auth, failure_delay, d.args.service, on_close);
        Connection* key = c.get();
        clients.emplace(key, std::move(c));
        if (++used >= max_use) {
          log_debug("took %lld clients, taking no more", static_cast<long long>(used));
          watchers.clear();  // this one too: a callback may destroy its watcher (event.h)
        }
      }));
    }
    idle_timer.start_once(max_idle);
    loop.run();
    return 0;
  });
}

}  // namespace
}  // namespace postern

int main(int argc, char** argv) {
  ::umask(077);
  return postern::run(argc, argv);
}
