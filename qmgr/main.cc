// qmgr: the queue manager, as Postfix's qmgr(8).
//   qmgr -n service -t unix ...   (started by master; public/qmgr, with a wakeup)
// qmgr runs for as long as master does (it ignores max_idle and max_use): master's
// wakeup only restarts it after a crash.  It owns the active queue.
//
// When it starts it moves every file of active back to incoming (requeue_active:
// what was in delivery when the system stopped is scheduled again, recipients
// already marked done are not repeated).  It scans incoming when it starts and
// whenever a client connects to its socket (a trigger: cleanup connects after it
// committed a message; the connection carries nothing), and deferred every
// queue_run_delay: a deferred file whose mtime has passed is due again.
//
// Each message found is moved to active and its undone recipients are sorted by
// transport.  A recipient without a domain or with a domain in mydestination goes
// to local_transport ("local:$myhostname": socket private/local, nexthop
// $myhostname); any other domain is deferred with "no transport for DOMAIN yet"
// until the smtp client exists: kept, never bounced, never dropped.  One
// DeliveryRequest per message goes to the agent (lib/mail/delivery_protocol.h),
// and its per-recipient results are applied:
//   ok      the recipient is marked done (the agent did so already; marking twice
//           is harmless);
//   defer   a block recipient=, status=, reason= is appended to defer/ID;
//   bounce  there is no bounce service yet: the recipient stays undone, the reason
//           goes to bounce/ID and the log ("would bounce"), and the message is
//           moved to hold for the administrator, so no mail is lost.
// A connection that fails or breaks before the reply defers every recipient it
// carried.  Then: no recipient left undone -> the file and its status logs are
// removed; any bounced -> hold; otherwise -> deferred, with its mtime set to
// now + backoff, where backoff is the age of the message bounded by
// minimal_backoff_time and maximal_backoff_time (Postfix's rule: the interval
// roughly doubles with each attempt).
//
// First cut: at most kMaxInFlight deliveries at once, over all transports, and
// messages are handled in arrival order; no per-destination concurrency, no
// maximal_queue_lifetime (a message is never returned to its sender yet).
//
// Log: "QUEUEID: to=<rcpt>, relay=local, status=sent|deferred|bounced (dsn text)",
// "QUEUEID: removed", "QUEUEID: moved to hold: ...".
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <deque>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "mail/daemon.h"
#include "mail/delivery_protocol.h"
#include "mail/queue_file.h"
#include "mail/queue_tools.h"
#include "mail/spool.h"
#include "util/error.h"
#include "util/event.h"
#include "util/file.h"
#include "util/log.h"
#include "util/socket.h"
#include "util/strings.h"

namespace postern {
namespace {

constexpr size_t kMaxInFlight = 4;
constexpr Timeout kConnectTimeout = std::chrono::seconds(2);
// How long an agent may take for one message (Postfix's ipc_timeout is per read;
// a local delivery may wait for a mailbox lock).
constexpr std::chrono::seconds kAgentTimeout{600};

struct StatusBlock {
  std::string recipient;
  std::string dsn;
  std::string text;
};

std::string one_line(std::string text) {
  std::replace(text.begin(), text.end(), '\n', ' ');
  std::replace(text.begin(), text.end(), '\r', ' ');
  return text;
}

void append_status_log(const std::string& spool, std::string_view folder, const std::string& id,
                       const std::vector<StatusBlock>& blocks) {
  if (blocks.empty()) return;
  std::string text;
  for (const auto& b : blocks)
    text += "recipient=" + one_line(b.recipient) + "\nstatus=" + one_line(b.dsn) + "\nreason=" + one_line(b.text) +
            "\n\n";
  try {
    UniqueFd fd = open_file(status_log_path(spool, folder, id), O_WRONLY | O_APPEND | O_CREAT, 0600);
    write_all(fd.get(), text);
  } catch (const SystemError& e) {
    log_warn("%s: %.*s log: %s", id.c_str(), int(folder.size()), folder.data(), e.what());
  }
}

// transport:nexthop as local_transport writes it.
struct Transport {
  std::string name;
  std::string nexthop;
};

Transport parse_transport(const std::string& spec) {
  auto colon = spec.find(':');
  if (colon == std::string::npos) return {spec, ""};
  return {spec.substr(0, colon), spec.substr(colon + 1)};
}

class Qmgr {
 public:
  Qmgr(EventLoop& loop, const Config& config)
      : loop_(loop),
        spool_(config.str("queue_directory")),
        local_(parse_transport(config.str("local_transport"))),
        min_backoff_(config.seconds("minimal_backoff_time")),
        max_backoff_(config.seconds("maximal_backoff_time")),
        scan_timer_(loop, [this] { scan_incoming(); }),
        deferred_timer_(loop, [this] { scan_deferred(); }) {
    for (const auto& d : config.list("mydestination")) mydestination_.insert(lowercase(d));
    deferred_timer_.start_periodic(std::chrono::seconds(std::max<int64_t>(1, config.seconds("queue_run_delay"))));
  }

  void start() {
    size_t n = requeue_active(spool_);
    if (n > 0) log_info("moved %zu message%s from active back to incoming", n, n == 1 ? "" : "s");
    scan_incoming();
    scan_deferred();
  }

  // A trigger: scan soon, once for any number of triggers.
  void trigger() {
    if (!scan_timer_.pending()) scan_timer_.start_once(std::chrono::milliseconds(0));
  }

 private:
  struct Delivery {
    std::string id;
    std::unique_ptr<QueueFile> file;
    std::vector<DeliveryRecipient> sent;
    std::vector<StatusBlock> deferred;
    std::vector<StatusBlock> bounced;
    bool hello_seen = false;
    std::unique_ptr<FramedConnection> conn;
  };

  void scan_incoming() {
    std::vector<std::string> ids;
    try {
      ids = list_queue(spool_, QueueName::kIncoming);
    } catch (const SystemError& e) {
      log_warn("scan of incoming: %s", e.what());
      return;
    }
    for (const auto& id : ids) activate(id, QueueName::kIncoming, 1);
    pump();
  }

  void scan_deferred() {
    std::vector<std::string> ids;
    try {
      ids = list_queue(spool_, QueueName::kDeferred);
    } catch (const SystemError& e) {
      log_warn("scan of deferred: %s", e.what());
      return;
    }
    time_t now = ::time(nullptr);
    for (const auto& id : ids) {
      struct stat st;
      if (::stat(queue_file_path(spool_, QueueName::kDeferred, id).c_str(), &st) < 0) continue;
      if (st.st_mtime > now) continue;  // not due yet
      activate(id, QueueName::kDeferred, 2);
    }
    pump();
  }

  void activate(const std::string& id, QueueName from, int attempt) {
    if (in_active_.count(id)) return;
    auto moved = move_queue_file(spool_, id, from, QueueName::kActive);
    if (!moved) {
      log_warn("%s: cannot move to active: %s", id.c_str(), moved.error().c_str());
      return;
    }
    in_active_.insert(id);
    attempts_[id] = attempt;
    todo_.push_back(id);
  }

  void pump() {
    while (in_flight_.size() < kMaxInFlight && !todo_.empty()) {
      std::string id = todo_.front();
      todo_.pop_front();
      begin(id);
    }
  }

  bool is_local(const std::string& address) const {
    auto at = address.rfind('@');
    if (at == std::string::npos) return true;
    return mydestination_.count(lowercase(address.substr(at + 1))) > 0;
  }

  void begin(const std::string& id) {
    auto d = std::make_unique<Delivery>();
    d->id = id;
    QueueFileStatus status = QueueFileStatus::kOk;
    auto file = QueueFile::open(queue_file_path(spool_, QueueName::kActive, id), O_RDWR, &status);
    if (!file) {
      if (status == QueueFileStatus::kMissing) {
        forget(id);
        return;
      }
      if (status == QueueFileStatus::kIoError) {
        log_warn("%s: %s; deferred", id.c_str(), file.error().c_str());
        d->deferred.push_back({"", "4.3.0", file.error()});
        retire(*d, false);
        return;
      }
      // Corrupt or incomplete in active: acknowledged once, damaged since.  Kept.
      auto moved = move_queue_file(spool_, id, QueueName::kActive, QueueName::kCorrupt);
      log_warn("%s: %s; %s", id.c_str(), file.error().c_str(),
               moved ? "moved to corrupt" : ("cannot move to corrupt: " + moved.error()).c_str());
      forget(id);
      return;
    }
    d->file = std::make_unique<QueueFile>(std::move(*file));
    const QueueEnvelope& env = d->file->envelope();
    DeliveryRequest request;
    request.queue_id = id;
    request.queue_path = "active/" + id;
    request.sender = env.sender;
    request.nexthop = local_.nexthop;
    request.arrival_seconds = env.arrival_seconds;
    request.attempt = attempts_[id];
    for (const QueueRecipient& r : env.recipients) {
      if (r.done) continue;
      if (!is_local(r.address)) {
        std::string domain = r.address.substr(r.address.rfind('@') + 1);
        std::string why = "no transport for " + domain + " yet";
        log_info("%s: to=<%s>, relay=none, status=deferred (%s)", id.c_str(), r.address.c_str(), why.c_str());
        d->deferred.push_back({r.address, "4.3.5", why});
        continue;
      }
      request.recipients.push_back({r.address, r.orcpt, r.notify, int64_t(r.offset)});
    }
    if (request.recipients.empty()) {
      finish(std::move(d));
      return;
    }
    d->sent = request.recipients;
    auto sock = connect_unix(spool_ + "/private/" + local_.name, kConnectTimeout);
    if (!sock) {
      fail_all(*d, "connect to " + local_.name + ": " + sock.error());
      finish(std::move(d));
      return;
    }
    Delivery* raw = d.get();
    FrameOptions options;
    options.read_timeout = kAgentTimeout;
    options.write_timeout = kAgentTimeout;
    raw->conn = std::make_unique<FramedConnection>(
        loop_, std::move(*sock), options,
        [this, raw, request](std::string payload) { on_frame(*raw, request, payload); },
        [this, raw](FramedConnection::Error, const std::string& reason) {
          fail_all(*raw, local_.name + " delivery agent: " + reason);
          complete(raw);
        });
    in_flight_[raw] = std::move(d);
  }

  void on_frame(Delivery& d, const DeliveryRequest& request, const std::string& payload) {
    if (!d.hello_seen) {
      auto hello = decode<Hello>(payload);
      Result<void> ok = hello ? check_hello(*hello, local_.name) : Result<void>(hello.failure());
      if (!ok) {
        fail_all(d, local_.name + " delivery agent: " + ok.error());
        complete(&d);
        return;
      }
      d.hello_seen = true;
      auto sent = d.conn->send_message(request);
      if (!sent) {
        fail_all(d, local_.name + " delivery agent: " + sent.error());
        complete(&d);
      }
      return;
    }
    auto reply = decode<DeliveryReply>(payload);
    if (!reply) {
      fail_all(d, local_.name + " delivery agent: " + reply.error());
      complete(&d);
      return;
    }
    apply(d, *reply);
    complete(&d);
  }

  void apply(Delivery& d, const DeliveryReply& reply) {
    std::map<int64_t, const DeliveryResult*> by_offset;
    for (const auto& r : reply.results) by_offset[r.offset] = &r;
    for (const auto& rcpt : d.sent) {
      auto it = by_offset.find(rcpt.offset);
      if (it == by_offset.end()) {
        defer(d, rcpt, "4.3.0", local_.name + " delivery agent gave no result");
        continue;
      }
      const DeliveryResult& r = *it->second;
      if (r.status == kDeliveryOk) {
        auto marked = mark_recipient_done(d.file->fd(), uint64_t(rcpt.offset));
        if (!marked) {
          // Delivered but not recorded: it would be delivered again. Loud.
          log_error("%s: to=<%s>: cannot mark done: %s", d.id.c_str(), rcpt.address.c_str(), marked.error().c_str());
          d.deferred.push_back({rcpt.address, "4.3.0", "queue file update failed"});
          continue;
        }
        log_info("%s: to=<%s>, relay=%s, status=sent (%s %s)", d.id.c_str(), rcpt.address.c_str(),
                 local_.name.c_str(), r.dsn.c_str(), r.text.c_str());
      } else if (r.status == kDeliveryBounce) {
        log_warn("%s: to=<%s>, relay=%s, status=bounced (%s %s): no bounce service yet, would bounce", d.id.c_str(),
                 rcpt.address.c_str(), local_.name.c_str(), r.dsn.c_str(), r.text.c_str());
        d.bounced.push_back({rcpt.address, r.dsn, r.text});
      } else {
        defer(d, rcpt, r.dsn.empty() ? "4.3.0" : r.dsn, r.text);
      }
    }
  }

  void defer(Delivery& d, const DeliveryRecipient& rcpt, const std::string& dsn, const std::string& text) {
    log_info("%s: to=<%s>, relay=%s, status=deferred (%s %s)", d.id.c_str(), rcpt.address.c_str(),
             local_.name.c_str(), dsn.c_str(), text.c_str());
    d.deferred.push_back({rcpt.address, dsn, text});
  }

  void fail_all(Delivery& d, const std::string& why) {
    for (const auto& rcpt : d.sent) defer(d, rcpt, "4.3.0", why);
  }

  // Called from the connection's own callbacks: the connection is destroyed here.
  void complete(Delivery* raw) {
    auto it = in_flight_.find(raw);
    if (it == in_flight_.end()) return;
    std::unique_ptr<Delivery> d = std::move(it->second);
    in_flight_.erase(it);
    finish(std::move(d));
    // Not pump() from inside a connection callback directly: the next messages
    // start on the next loop turn.
    trigger_pump();
  }

  void trigger_pump() {
    if (!scan_timer_.pending()) scan_timer_.start_once(std::chrono::milliseconds(0));
  }

  void finish(std::unique_ptr<Delivery> d) {
    const std::string& id = d->id;
    size_t undone = 0;
    if (d->file) {
      // Re-read the envelope: the agent marked what it delivered.
      auto fresh = QueueFile::open(d->file->path(), O_RDONLY);
      undone = fresh ? fresh->envelope().undone_count() : d->file->envelope().undone_count();
    }
    append_status_log(spool_, "defer", id, d->deferred);
    append_status_log(spool_, "bounce", id, d->bounced);
    if (d->file && undone == 0) {
      std::string path = queue_file_path(spool_, QueueName::kActive, id);
      if (::unlink(path.c_str()) < 0) {
        log_error("%s: cannot remove %s: %m", id.c_str(), path.c_str());
      } else {
        try {
          remove_status_logs(spool_, id);
        } catch (const SystemError& e) {
          log_warn("%s: %s", id.c_str(), e.what());
        }
        log_info("%s: removed", id.c_str());
      }
      forget(id);
      return;
    }
    d->file.reset();
    retire(*d, !d->bounced.empty());
  }

  // Moves a message that still has undone recipients out of active.
  void retire(const Delivery& d, bool hold) {
    const std::string& id = d.id;
    if (hold) {
      auto moved = move_queue_file(spool_, id, QueueName::kActive, QueueName::kHold);
      if (moved) log_warn("%s: moved to hold: %s %s", id.c_str(), d.bounced.front().dsn.c_str(),
                          d.bounced.front().text.c_str());
      else log_error("%s: cannot move to hold: %s", id.c_str(), moved.error().c_str());
      forget(id);
      return;
    }
    std::string path = queue_file_path(spool_, QueueName::kActive, id);
    time_t now = ::time(nullptr);
    int64_t age = 0;
    struct stat st;
    if (auto f = QueueFile::open(path)) age = now - f->envelope().arrival_seconds;
    int64_t backoff = std::clamp<int64_t>(age, min_backoff_, std::max(min_backoff_, max_backoff_));
    struct timeval times[2];
    times[0].tv_sec = times[1].tv_sec = now + backoff;
    times[0].tv_usec = times[1].tv_usec = 0;
    if (::stat(path.c_str(), &st) == 0 && ::utimes(path.c_str(), times) < 0)
      log_warn("%s: cannot set the retry time: %m", id.c_str());
    auto moved = move_queue_file(spool_, id, QueueName::kActive, QueueName::kDeferred);
    if (moved) log_info("%s: deferred, next attempt in %llds", id.c_str(), static_cast<long long>(backoff));
    else log_error("%s: cannot move to deferred: %s", id.c_str(), moved.error().c_str());
    forget(id);
  }

  void forget(const std::string& id) {
    in_active_.erase(id);
    attempts_.erase(id);
  }

  EventLoop& loop_;
  std::string spool_;
  Transport local_;
  int64_t min_backoff_;
  int64_t max_backoff_;
  std::set<std::string> mydestination_;
  Timer scan_timer_;
  Timer deferred_timer_;
  std::deque<std::string> todo_;
  std::set<std::string> in_active_;
  std::map<std::string, int> attempts_;
  std::map<Delivery*, std::unique_ptr<Delivery>> in_flight_;
};

int run(int argc, char** argv) {
  DaemonStartup d = start_daemon(argc, argv);
  const Config& config = d.config;
  const std::vector<UniqueFd>& listeners = d.listeners;
  return run_daemon_body([&] {
    EventLoop loop;
    Qmgr qmgr(loop, config);
    std::vector<std::unique_ptr<IoWatcher>> watchers;
    for (const auto& listener : listeners) {
      int fd = listener.get();
      watchers.push_back(std::make_unique<IoWatcher>(loop, fd, IoWatcher::kReadable, [&, fd](int) {
        auto client = accept_connection(fd);
        if (!client) return;  // nothing pending
        client->reset();      // a trigger carries nothing
        qmgr.trigger();
      }));
    }
    // Busy for good: master must not count a long-running qmgr as a free process.
    StatusReporter status;
    status.busy();
    qmgr.start();
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
