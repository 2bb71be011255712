// local: final delivery to local users' mailboxes, as Postfix's local(8).
//   local -n service -t unix ...   (started by master; private/local, unpriv=n)
// One client is one DeliveryRequest from the queue manager
// (lib/mail/delivery_protocol.h); local answers one DeliveryReply with a result
// per recipient.
//
// For each recipient:
//   1. the domain must be empty or in mydestination (else defer 4.3.5: the queue
//      manager routed it wrongly);
//   2. the local part is looked up in alias_maps (Postfix's order: with the
//      recipient_delimiter extension, then without).  A found alias expands to a
//      list of local addresses, which are looked up again (up to kMaxAliasDepth
//      levels; an alias naming itself is the user of that name).  "|command",
//      "/file", ":include:" and remote targets answer defer "not supported yet".
//      A lookup that fails temporarily defers.
//   3. the user (the local part without extension) is found with getpwnam;
//      unknown is a bounce 5.1.1 "user unknown";
//   4. a child process switches to the user (setgroups, setresgid, setresuid;
//      root's own mailbox is written as root) and delivers: to the Maildir
//      HOME/$home_mailbox when home_mailbox ends with '/', to the mbox
//      HOME/$home_mailbox when it is set otherwise, else to the mbox
//      $mail_spool_directory/USER, with Delivered-To: and Return-Path: prepended,
//      under mailbox_size_limit.  Maildir deliveries use the deterministic name
//      (queue ID and recipient), so a retry after a crash between the delivery
//      and the queue update does not deliver twice.
// When local does not run as root (master started by an ordinary user) it
// delivers only to the mailbox of the user it runs as; others defer 4.3.0.
// A recipient whose every target was delivered is marked done in the queue file
// before the reply (mbox deliveries with fdatasync), and answered "ok".
//
// First cut: a recipient whose alias targets partly fail is deferred as a whole;
// the retry repeats the targets that got it into an mbox (Maildir recognises them).
//
// Log: "QUEUEID: to=<rcpt>, orig_to=<alias>, status=sent (dsn text)" and so on.
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "mail/address_keys.h"
#include "mail/daemon.h"
#include "mail/delivery_protocol.h"
#include "mail/mailbox.h"
#include "mail/queue_file.h"
#include "mail/queue_id.h"
#include "mail/table.h"
#include "util/error.h"
#include "util/log.h"
#include "util/socket.h"
#include "util/strings.h"

namespace postern {
namespace {

constexpr Timeout kFrameTimeout = std::chrono::seconds(300);
constexpr int kMaxAliasDepth = 10;

struct Outcome {
  std::string status = std::string(kDeliveryOk);
  std::string dsn = "2.0.0";
  std::string text = "delivered";
  bool needs_sync = false;  // an mbox delivery: mark done with fdatasync
};

Outcome defer(std::string dsn, std::string text) { return {std::string(kDeliveryDefer), dsn, text}; }
Outcome bounce(std::string dsn, std::string text) { return {std::string(kDeliveryBounce), dsn, text}; }

// The worst of two outcomes: defer over bounce over ok (a defer is retried; a
// bounce holds the message; both keep it).
Outcome worse(const Outcome& a, const Outcome& b) {
  auto rank = [](const Outcome& o) { return o.status == kDeliveryDefer ? 2 : o.status == kDeliveryBounce ? 1 : 0; };
  Outcome r = rank(b) > rank(a) ? b : a;
  r.needs_sync = a.needs_sync || b.needs_sync;
  return r;
}

// alias_maps, opened once per process: hash: tables follow a rebuild by themselves,
// so one delivery request after another needs no reopening. A table that cannot
// be opened throws (the request is deferred) and is tried again next time.
TableList* process_aliases(const Config& config) {
  static std::optional<TableList> aliases;
  static bool opened = false;
  if (!opened) {
    std::string maps = config.str("alias_maps");
    if (!maps.empty()) aliases.emplace(maps);
    opened = true;
  }
  return aliases ? &*aliases : nullptr;
}

class Agent {
 public:
  Agent(const Config& config, const DeliveryRequest& request, const QueueFile& file)
      : request_(request), aliases_(process_aliases(config)) {
    for (const auto& d : config.list("mydestination")) mydestination_.insert(lowercase(d));
    delimiters_ = config.str("recipient_delimiter");
    myorigin_ = config.str("myorigin");
    home_mailbox_ = config.str("home_mailbox");
    spool_dir_ = config.str("mail_spool_directory");
    int64_t limit = config.bytes("mailbox_size_limit");
    size_limit_ = limit > 0 ? uint64_t(limit) : 0;
    message_ = file.content();
  }

  Outcome deliver(const DeliveryRecipient& rcpt) {
    std::set<std::string> seen;
    return resolve(rcpt.address, rcpt.address, 0, seen);
  }

 private:
  // Splits "local@domain"; false when the domain is not ours.
  bool split_local(const std::string& address, std::string& local, std::string& domain) const {
    auto at = address.rfind('@');
    local = at == std::string::npos ? address : address.substr(0, at);
    domain = at == std::string::npos ? "" : lowercase(address.substr(at + 1));
    return domain.empty() || mydestination_.count(domain) > 0;
  }

  Outcome resolve(const std::string& address, const std::string& original, int depth, std::set<std::string>& seen) {
    std::string local, domain;
    if (!split_local(address, local, domain))
      return defer("4.3.5", "forwarding to " + domain + " is not supported yet");
    std::string key = lowercase(local);
    if (depth > kMaxAliasDepth) return bounce("5.4.6", "alias expansion too deep for " + address);
    if (aliases_ && !seen.count(key)) {
      seen.insert(key);
      auto found = lookup_address(*aliases_, key, {delimiters_, true, false});
      if (found.is_temp_fail()) return defer("4.3.0", "alias lookup of " + key + " failed: " + found.error);
      if (found.is_found()) {
        std::vector<std::string> targets = split_list(found.value);
        if (targets.empty()) return bounce("5.1.1", "alias " + key + " has no targets");
        Outcome all;
        for (std::string target : targets) {
          if (target.size() >= 2 && target.front() == '"' && target.back() == '"')
            target = target.substr(1, target.size() - 2);
          Outcome o;
          if (target.empty()) o = bounce("5.1.1", "empty alias target for " + key);
          else if (target[0] == '|') o = defer("4.3.0", "delivery to a command is not supported yet");
          else if (target[0] == '/') o = defer("4.3.0", "delivery to a file is not supported yet");
          else if (starts_with_include(target)) o = defer("4.3.0", ":include: is not supported yet");
          else o = resolve(target, original, depth + 1, seen);
          all = worse(all, o);
        }
        return all;
      }
    }
    return to_user(key, domain, original);
  }

  static bool starts_with_include(const std::string& s) { return lowercase(s.substr(0, 9)) == ":include:"; }

  Outcome to_user(const std::string& local, const std::string& domain, const std::string& original) {
    std::string user = local;
    if (!delimiters_.empty()) {
      auto pos = user.find_first_of(delimiters_);
      if (pos != std::string::npos && pos > 0) user = user.substr(0, pos);
    }
    errno = 0;
    struct passwd* pw = ::getpwnam(user.c_str());
    if (!pw) {
      if (errno != 0 && errno != ENOENT && errno != ESRCH && errno != EBADF && errno != EPERM)
        return defer("4.3.0", "user lookup of " + user + " failed: " + std::strerror(errno));
      return bounce("5.1.1", "user unknown");
    }
    uid_t uid = pw->pw_uid;
    gid_t gid = pw->pw_gid;
    std::string home = pw->pw_dir;
    std::string name = pw->pw_name;
    if (::geteuid() != 0 && uid != ::geteuid())
      return defer("4.3.0", "cannot deliver as another user (" + name + "): local does not run as root");
    // An alias target without a domain is qualified as Postfix does, with $myorigin.
    std::string rcpt = local + "@" + (domain.empty() ? myorigin_ : domain);
    std::string return_path = request_.sender;
    DeliveryContent content{request_.sender,
                            "Delivered-To: " + rcpt + "\nReturn-Path: <" + return_path + ">\n", message_};
    bool maildir = !home_mailbox_.empty() && home_mailbox_.back() == '/';
    std::string target = home_mailbox_.empty() ? spool_dir_ + "/" + name : home + "/" + home_mailbox_;
    Outcome o = as_user(uid, gid, [&]() -> MailboxResult {
      if (maildir) {
        MaildirOptions options;
        options.size_limit = size_limit_;
        options.queue_id = request_.queue_id;
        options.recipient = original + "\n" + rcpt;
        return deliver_to_maildir(target, content, options);
      }
      MboxOptions options;
      options.size_limit = size_limit_;
      return deliver_to_mbox(target, content, options);
    });
    if (o.status == kDeliveryOk) o.needs_sync = !maildir;
    log_info("%s: to=<%s>, orig_to=<%s>, relay=local, status=%s (%s %s)", request_.queue_id.c_str(), rcpt.c_str(),
             original.c_str(), o.status == kDeliveryOk ? "sent" : o.status == kDeliveryBounce ? "bounced" : "deferred",
             o.dsn.c_str(), o.text.c_str());
    return o;
  }

  // Runs write in a child process with the user's credentials; its result comes
  // back as a DeliveryReply frame over a socket pair.
  template <typename F>
  Outcome as_user(uid_t uid, gid_t gid, F write) {
    auto [rd, wr] = make_socketpair();
    pid_t pid = ::fork();
    if (pid < 0) return defer("4.3.0", std::string("fork: ") + std::strerror(errno));
    if (pid == 0) {
      rd.reset();
      DeliveryResult out;
      try {
        if (::geteuid() == 0 && uid != 0) drop_privileges(uid, gid);
        MailboxResult r = write();
        out.status = std::string(r.ok() ? kDeliveryOk : r.temporary() ? kDeliveryDefer : kDeliveryBounce);
        out.dsn = r.dsn;
        out.text = r.ok() ? (r.already_delivered ? r.text : "delivered to " + (r.file.empty() ? "mailbox" : r.file))
                          : r.text;
      } catch (const std::exception& e) {
        out = {0, std::string(kDeliveryDefer), "4.3.0", std::string("delivery failed: ") + e.what()};
      }
      auto sent = write_message(wr.get(), DeliveryReply{{out}}, kFrameTimeout);
      ::_exit(sent ? 0 : 1);
    }
    wr.reset();
    auto reply = read_message<DeliveryReply>(rd.get(), kFrameTimeout);
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (!reply || reply->results.size() != 1)
      return defer("4.3.0", "delivery process failed" + (reply ? std::string() : ": " + reply.error()));
    const DeliveryResult& r = reply->results.front();
    return {r.status, r.dsn, r.text};
  }

  const DeliveryRequest& request_;
  std::set<std::string> mydestination_;
  std::string delimiters_;
  TableList* aliases_;
  std::string myorigin_;
  std::string home_mailbox_;
  std::string spool_dir_;
  uint64_t size_limit_ = 0;
  std::string message_;
};

DeliveryReply handle(const DeliveryRequest& request, const Config& config) {
  DeliveryReply reply;
  auto all = [&](std::string_view status, const std::string& dsn, const std::string& text) {
    for (const auto& r : request.recipients) reply.results.push_back({r.offset, std::string(status), dsn, text});
    return reply;
  };
  std::string prefix = "active/";
  std::string id = request.queue_path.substr(0, prefix.size()) == prefix ? request.queue_path.substr(prefix.size())
                                                                            : "";
  if (!is_valid_queue_id(id) || id != request.queue_id) {
    log_warn("bad queue path \"%s\"", request.queue_path.c_str());
    return all(kDeliveryDefer, "4.3.0", "bad queue file name in delivery request");
  }
  std::string spool = config.str("queue_directory");
  auto file = QueueFile::open(queue_file_path(spool, QueueName::kActive, id), O_RDWR);
  if (!file) {
    log_warn("%s: %s", id.c_str(), file.error().c_str());
    return all(kDeliveryDefer, "4.3.0", "cannot read queue file: " + file.error());
  }
  std::optional<Agent> agent;
  try {
    agent.emplace(config, request, *file);
  } catch (const std::exception& e) {  // an alias table that cannot be opened, a read error
    log_warn("%s: %s", id.c_str(), e.what());
    return all(kDeliveryDefer, "4.3.0", std::string("local configuration error: ") + e.what());
  }
  std::vector<std::pair<int64_t, bool>> to_mark;  // offset, needs sync
  for (const auto& rcpt : request.recipients) {
    Outcome o;
    try {
      o = agent->deliver(rcpt);
    } catch (const std::exception& e) {  // a table that failed in a way it did not report
      log_warn("%s: to=<%s>: %s", id.c_str(), rcpt.address.c_str(), e.what());
      o = defer("4.3.0", std::string("local delivery failed: ") + e.what());
    }
    if (o.status == kDeliveryOk) to_mark.push_back({rcpt.offset, o.needs_sync});
    reply.results.push_back({rcpt.offset, o.status, o.dsn, o.text});
  }
  bool sync = false;
  for (const auto& m : to_mark) sync = sync || m.second;
  for (size_t i = 0; i < to_mark.size(); ++i) {
    auto marked = mark_recipient_done(file->fd(), uint64_t(to_mark[i].first), sync && i + 1 == to_mark.size());
    if (!marked) log_error("%s: cannot mark recipient done: %s", id.c_str(), marked.error().c_str());
  }
  return reply;
}

void serve(UniqueFd client, const DaemonContext& context) {
  auto hello = write_message(client.get(), make_hello(context.args.service), kFrameTimeout);
  if (!hello) {
    log_warn("hello: %s", hello.error().c_str());
    return;
  }
  auto request = read_message<DeliveryRequest>(client.get(), kFrameTimeout);
  if (!request) {
    log_warn("bad request: %s", request.error().c_str());
    return;
  }
  DeliveryReply reply = handle(*request, context.config);
  auto sent = write_message(client.get(), reply, kFrameTimeout);
  if (!sent) log_warn("%s: reply not delivered: %s", request->queue_id.c_str(), sent.error().c_str());
}

}  // namespace
}  // namespace postern

int main(int argc, char** argv) {
  ::umask(077);
  return postern::run_single_server(argc, argv, postern::serve);
}
