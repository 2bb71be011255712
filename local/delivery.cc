// Outcomes, accounts and delivery processes for local; see delivery.h.
#include "delivery.h"

#include <grp.h>
#include <pwd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include "mail/daemon.h"
#include "util/error.h"
#include "util/log.h"
#include "util/socket.h"

namespace postern {
namespace {

constexpr Timeout kChildTimeout = std::chrono::seconds(300);

AccountLookup account_of(struct passwd* pw, const std::string& what) {
  AccountLookup found;
  if (pw) {
    found.account = Account{pw->pw_uid, pw->pw_gid, pw->pw_name, pw->pw_dir, pw->pw_shell ? pw->pw_shell : ""};
  } else if (errno != 0 && errno != ENOENT && errno != ESRCH && errno != EBADF && errno != EPERM) {
    found.error = "user lookup of " + what + " failed: " + std::strerror(errno);
  }
  return found;
}

}  // namespace

Outcome defer(std::string dsn, std::string text) { return {std::string(kDeliveryDefer), dsn, text}; }
Outcome bounce(std::string dsn, std::string text) { return {std::string(kDeliveryBounce), dsn, text}; }

Outcome outcome_of(const MailboxResult& r) {
  return {std::string(r.ok() ? kDeliveryOk : r.temporary() ? kDeliveryDefer : kDeliveryBounce), r.dsn, r.text};
}

Outcome worse(const Outcome& a, const Outcome& b) {
  auto rank = [](const Outcome& o) { return o.status == kDeliveryDefer ? 2 : o.status == kDeliveryBounce ? 1 : 0; };
  Outcome r = rank(b) > rank(a) ? b : a;
  r.needs_sync = a.needs_sync || b.needs_sync;
  return r;
}

AccountLookup account_by_name(const std::string& name) {
  errno = 0;
  return account_of(::getpwnam(name.c_str()), name);
}

AccountLookup account_by_uid(uid_t uid) {
  errno = 0;
  return account_of(::getpwuid(uid), "uid " + std::to_string(uid));
}

EffectiveIds::EffectiveIds(const Account& account) {
  if (::geteuid() != 0 || account.uid == 0) return;
  int n = ::getgroups(0, nullptr);
  saved_groups_.resize(n > 0 ? size_t(n) : 0);
  if (n > 0 && ::getgroups(n, saved_groups_.data()) < 0) saved_groups_.clear();
  switched_ = true;
  if (::setgroups(1, &account.gid) < 0 || ::setegid(account.gid) < 0 || ::seteuid(account.uid) < 0) {
    int err = errno;
    restore();
    throw SystemError(err, "switch to uid " + std::to_string(account.uid));
  }
}

EffectiveIds::~EffectiveIds() { restore(); }

void EffectiveIds::restore() {
  if (!switched_) return;
  switched_ = false;
  // Failing to become root again would deliver the next recipient with the
  // wrong rights: stop the process instead (master starts a new one).
  if (::seteuid(0) < 0 || ::setegid(0) < 0 || ::setgroups(saved_groups_.size(), saved_groups_.data()) < 0)
    log_panic("cannot switch back to root: %m");
  rearm_master_death_signal();
}

namespace {

// A mailbox writer's result as the delivery protocol says it.
DeliveryResult result_of(const MailboxResult& r) {
  DeliveryResult out;
  out.status = std::string(r.ok() ? kDeliveryOk : r.temporary() ? kDeliveryDefer : kDeliveryBounce);
  out.dsn = r.dsn;
  out.text = r.ok() ? (r.already_delivered ? r.text : "delivered to " + (r.file.empty() ? "mailbox" : r.file))
                    : r.text;
  return out;
}

}  // namespace

Outcome in_process_as(const Account& account, const std::function<MailboxResult()>& write) {
  DeliveryResult r;
  try {
    EffectiveIds ids(account);
    r = result_of(write());
  } catch (const std::exception& e) {
    r = {0, std::string(kDeliveryDefer), "4.3.0", std::string("delivery failed: ") + e.what()};
  }
  return {r.status, r.dsn, r.text};
}

Outcome in_child_as(const Account& account, const std::vector<gid_t>& extra_groups,
                    const std::function<MailboxResult()>& prepare, const std::function<MailboxResult()>& write) {
  auto [rd, wr] = make_socketpair();
  pid_t pid = ::fork();
  if (pid < 0) return defer("4.3.0", std::string("fork: ") + std::strerror(errno));
  if (pid == 0) {
    rd.reset();
    DeliveryResult out;
    try {
      MailboxResult r = prepare ? prepare() : MailboxResult{};
      if (r.ok()) {
        if (::geteuid() == 0 && account.uid != 0) drop_privileges(account.uid, account.gid, extra_groups);
        r = write();
      }
      out = result_of(r);
    } catch (const std::exception& e) {
      out = {0, std::string(kDeliveryDefer), "4.3.0", std::string("delivery failed: ") + e.what()};
    }
    auto sent = write_message(wr.get(), DeliveryReply{{out}}, kChildTimeout);
    ::_exit(sent ? 0 : 1);
  }
  wr.reset();
  auto reply = read_message<DeliveryReply>(rd.get(), kChildTimeout);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!reply || reply->results.size() != 1)
    return defer("4.3.0", "delivery process failed" + (reply ? std::string() : ": " + reply.error()));
  const DeliveryResult& r = reply->results.front();
  return {r.status, r.dsn, r.text};
}

}  // namespace postern
