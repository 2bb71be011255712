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
// transport and nexthop by lib/mail/transport.h (transport_maps, then the address
// class: local_transport, virtual_transport, relay_transport, default_transport,
// relayhost).  A routing table that fails temporarily defers the recipient; the
// "error" transport bounces it with its nexthop as the reason.  One
// DeliveryRequest per message and transport/nexthop goes to the agent at
// private/TRANSPORT (lib/mail/delivery_protocol.h), one after another, and its
// per-recipient results are applied:
//   ok      the recipient is marked done (the agent did so already; marking twice
//           is harmless);
//   defer   a block recipient=, status=, reason= is appended to defer/ID;
//   bounce  the block goes to bounce/ID, which is fsynced before the recipient is
//           marked done: the notice is made from that log, so it cannot be lost.
// A connection that fails or breaks before the reply defers every recipient it
// carried.
//
// Expiry: a message older than maximal_queue_lifetime (bounce_queue_lifetime
// when its sender is the null sender; 0 means one attempt) has its undone
// recipients bounced with their last defer status and reason
// ("status=expired, returned to sender"), as Postfix does.
//
// Before a message leaves active, if bounce/ID exists, qmgr asks the bounce
// service (private/bounce, lib/mail/bounce_protocol.h) for the non-delivery
// notice and waits for its answer (at most 10s for bounce's Hello, 120s for the
// notice); on "ok" the bounce log is removed.  Then: no recipient left undone
// and no notice pending -> the file and its status logs are removed; otherwise
// -> deferred, with its mtime set to now + backoff, where backoff is the age of
// the message bounded by minimal_backoff_time and maximal_backoff_time (Postfix's
// rule: the interval roughly doubles with each attempt).  A message whose notice
// could not be sent waits in deferred with every recipient done and its bounce
// log kept; the next queue run asks again.
//
// Delay warnings: when delay_warning_time is not 0 and a message from an
// ordinary sender goes back to deferred after waiting that long, the bounce
// service sends the sender one "delayed" notice from defer/ID; that it was sent
// is recorded in defer/ID (docs/queue.md), so it is sent once.
//
// Concurrency: at most kMaxInFlight messages in delivery (or waiting for a
// destination) at once, over all transports; at most
// smtp_destination_concurrency_limit requests at once to one smtp nexthop and
// default_destination_concurrency_limit to one nexthop of any other transport (a
// request over the limit waits for one to that destination to end).
// First cut: the requests of one message go one after another, messages are
// handled in arrival order, the limits are fixed (no slow start); the
// wait for the bounce service blocks the queue manager meanwhile.
//
// Log: "QUEUEID: to=<rcpt>, relay=local, status=sent|deferred|bounced (dsn text)",
// "QUEUEID: to=<rcpt>, relay=none, status=expired, returned to sender (reason)",
// "QUEUEID: removed", "QUEUEID: deferred, next attempt in Ns", and
// "QUEUEID: failure|delay notice not sent, will try again: why".
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

#include "mail/bounce_protocol.h"
#include "mail/daemon.h"
#include "mail/delivery_protocol.h"
#include "mail/queue_file.h"
#include "mail/queue_tools.h"
#include "mail/spool.h"
#include "mail/transport.h"
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

// A bounce process answers Hello at once; the notice itself waits for cleanup.
constexpr Timeout kBounceHelloTimeout = std::chrono::seconds(10);
constexpr Timeout kBounceTimeout = std::chrono::seconds(120);

// Appends to a status log; a failure is logged and reported.
bool append_log(const std::string& spool, std::string_view folder, const std::string& id,
                const std::vector<StatusRecord>& records, bool durable) {
  try {
    append_status_log(spool, folder, id, records, durable);
    return true;
  } catch (const SystemError& e) {
    log_warn("%s: %.*s log: %s", id.c_str(), int(folder.size()), folder.data(), e.what());
    return false;
  }
}

// A status log record for a recipient (a QueueRecipient or a DeliveryRecipient).
template <typename Recipient>
StatusRecord status_record(const Recipient& r, const std::string& dsn, const char* action, const std::string& why) {
  return StatusRecord{r.address, r.orcpt, int(r.notify), int64_t(r.offset), dsn, action, why, ""};
}

class Qmgr {
 public:
  Qmgr(EventLoop& loop, const Config& config)
      : loop_(loop),
        spool_(config.str("queue_directory")),
        router_(config),
        smtp_concurrency_(int(config.integer("smtp_destination_concurrency_limit"))),
        default_concurrency_(int(config.integer("default_destination_concurrency_limit"))),
        min_backoff_(config.seconds("minimal_backoff_time")),
        max_backoff_(config.seconds("maximal_backoff_time")),
        queue_lifetime_(config.seconds("maximal_queue_lifetime")),
        bounce_lifetime_(config.seconds("bounce_queue_lifetime")),
        delay_warning_(config.seconds("delay_warning_time")),
        scan_timer_(loop, [this] { scan_incoming(); }),
        deferred_timer_(loop, [this] { scan_deferred(); }) {
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
  // The recipients of one message for one transport and nexthop.
  struct RouteGroup {
    Route route;
    std::vector<DeliveryRecipient> recipients;
  };

  struct Delivery {
    std::string id;
    std::unique_ptr<QueueFile> file;
    std::deque<RouteGroup> groups;  // still to send, after the one in flight
    std::string transport;          // of the request in flight
    std::string destination;        // transport and nexthop of the request in flight
    std::vector<DeliveryRecipient> sent;
    std::vector<StatusRecord> deferred;
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
    while (in_flight_.size() + waiting_count_ < kMaxInFlight && !todo_.empty()) {
      std::string id = todo_.front();
      todo_.pop_front();
      begin(id);
    }
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
        retire(*d);
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
    std::vector<StatusRecord> bounced;
    for (const QueueRecipient& r : d->file->envelope().recipients) {
      if (r.done) continue;
      auto route = router_.route(r.address);
      if (!route) {
        log_info("%s: to=<%s>, relay=none, status=deferred (%s)", id.c_str(), r.address.c_str(), route.error().c_str());
        d->deferred.push_back(status_record(r, "4.3.0", "delayed", route.error()));
        continue;
      }
      if (route->transport == "error") {
        // The nexthop is the reason, with its status code first ("5.1.1 User unknown ...").
        std::string dsn = route->nexthop.substr(0, route->nexthop.find(' '));
        bool coded = dsn.size() >= 5 && dsn[0] == '5' && dsn[1] == '.';
        std::string why = coded ? route->nexthop.substr(std::min(route->nexthop.size(), dsn.size() + 1)) : route->nexthop;
        log_info("%s: to=<%s>, relay=none, status=bounced (%s)", id.c_str(), r.address.c_str(), why.c_str());
        bounced.push_back(status_record(r, coded ? dsn : "5.0.0", "failed", why));
        continue;
      }
      auto group = std::find_if(d->groups.begin(), d->groups.end(), [&](const RouteGroup& g) { return g.route == *route; });
      if (group == d->groups.end()) group = d->groups.insert(d->groups.end(), RouteGroup{*route, {}});
      group->recipients.push_back({r.address, r.orcpt, r.notify, int64_t(r.offset)});
    }
    bounce_recipients(id, d->file->fd(), bounced);
    start_next(std::move(d));
  }

  // Sends the message's next group to its transport, or finishes the message when none is left.
  void start_next(std::unique_ptr<Delivery> d) {
    while (!d->groups.empty()) {
      std::string destination = d->groups.front().route.transport + ":" + d->groups.front().route.nexthop;
      int limit = d->groups.front().route.transport == "smtp" ? smtp_concurrency_ : default_concurrency_;
      if (active_by_destination_[destination] >= limit) {
        waiting_by_destination_[destination].push_back(std::move(d));
        ++waiting_count_;
        return;
      }
      RouteGroup group = std::move(d->groups.front());
      d->groups.pop_front();
      const QueueEnvelope& env = d->file->envelope();
      DeliveryRequest request;
      request.queue_id = d->id;
      request.queue_path = "active/" + d->id;
      request.sender = env.sender;
      request.nexthop = group.route.nexthop;
      request.arrival_seconds = env.arrival_seconds;
      request.attempt = attempts_[d->id];
      request.recipients = std::move(group.recipients);
      d->sent = request.recipients;
      d->transport = group.route.transport;
      d->hello_seen = false;
      auto sock = connect_unix(spool_ + "/private/" + d->transport, kConnectTimeout);
      if (!sock) {
        fail_all(*d, "connect to " + d->transport + ": " + sock.error());
        continue;
      }
      d->destination = destination;
      ++active_by_destination_[destination];
      Delivery* raw = d.get();
      FrameOptions options;
      options.read_timeout = kAgentTimeout;
      options.write_timeout = kAgentTimeout;
      raw->conn = std::make_unique<FramedConnection>(
          loop_, std::move(*sock), options,
          [this, raw, request](std::string payload) { on_frame(*raw, request, payload); },
          [this, raw](FramedConnection::Error, const std::string& reason) {
            fail_all(*raw, raw->transport + " delivery agent: " + reason);
            complete(raw);
          });
      in_flight_[raw] = std::move(d);
      return;
    }
    finish(std::move(d));
  }

  void on_frame(Delivery& d, const DeliveryRequest& request, const std::string& payload) {
    if (!d.hello_seen) {
      auto hello = decode<Hello>(payload);
      Result<void> ok = hello ? check_hello(*hello, d.transport) : Result<void>(hello.failure());
      if (!ok) {
        fail_all(d, d.transport + " delivery agent: " + ok.error());
        complete(&d);
        return;
      }
      d.hello_seen = true;
      auto sent = d.conn->send_message(request);
      if (!sent) {
        fail_all(d, d.transport + " delivery agent: " + sent.error());
        complete(&d);
      }
      return;
    }
    auto reply = decode<DeliveryReply>(payload);
    if (!reply) {
      fail_all(d, d.transport + " delivery agent: " + reply.error());
      complete(&d);
      return;
    }
    apply(d, *reply);
    complete(&d);
  }

  void apply(Delivery& d, const DeliveryReply& reply) {
    std::map<int64_t, const DeliveryResult*> by_offset;
    for (const auto& r : reply.results) by_offset[r.offset] = &r;
    std::vector<StatusRecord> bounced;
    for (const auto& rcpt : d.sent) {
      auto it = by_offset.find(rcpt.offset);
      if (it == by_offset.end()) {
        defer(d, rcpt, "4.3.0", d.transport + " delivery agent gave no result");
        continue;
      }
      const DeliveryResult& r = *it->second;
      if (r.status == kDeliveryOk) {
        auto marked = mark_recipient_done(d.file->fd(), uint64_t(rcpt.offset));
        if (!marked) {
          // Delivered but not recorded: it would be delivered again. Loud.
          log_error("%s: to=<%s>: cannot mark done: %s", d.id.c_str(), rcpt.address.c_str(), marked.error().c_str());
          d.deferred.push_back(status_record(rcpt, "4.3.0", "delayed", "queue file update failed"));
          continue;
        }
        log_info("%s: to=<%s>, relay=%s, status=sent (%s %s)", d.id.c_str(), rcpt.address.c_str(),
                 d.transport.c_str(), r.dsn.c_str(), r.text.c_str());
      } else if (r.status == kDeliveryBounce) {
        log_info("%s: to=<%s>, relay=%s, status=bounced (%s %s)", d.id.c_str(), rcpt.address.c_str(),
                 d.transport.c_str(), r.dsn.c_str(), r.text.c_str());
        bounced.push_back(status_record(rcpt, r.dsn.empty() ? "5.0.0" : r.dsn, "failed", r.text));
      } else {
        defer(d, rcpt, r.dsn.empty() ? "4.3.0" : r.dsn, r.text);
      }
    }
    bounce_recipients(d.id, d.file->fd(), bounced);
  }

  // Records failed recipients in bounce/ID, durably, and only then marks them
  // done: the notice is sent from that log, so a crash cannot lose it.  When the
  // log cannot be written they stay undone and are tried again.
  void bounce_recipients(const std::string& id, int fd, const std::vector<StatusRecord>& bounced) {
    if (bounced.empty() || !append_log(spool_, "bounce", id, bounced, true)) return;
    for (const StatusRecord& r : bounced) {
      auto marked = mark_recipient_done(fd, uint64_t(r.offset));
      if (!marked)
        log_error("%s: to=<%s>: cannot mark done: %s", id.c_str(), r.recipient.c_str(), marked.error().c_str());
    }
  }

  void defer(Delivery& d, const DeliveryRecipient& rcpt, const std::string& dsn, const std::string& text) {
    log_info("%s: to=<%s>, relay=%s, status=deferred (%s %s)", d.id.c_str(), rcpt.address.c_str(),
             d.transport.c_str(), dsn.c_str(), text.c_str());
    d.deferred.push_back(status_record(rcpt, dsn, "delayed", text));
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
    release_destination(d->destination);
    d->destination.clear();
    if (!d->groups.empty()) {
      start_next(std::move(d));
      trigger_pump();
      return;
    }
    finish(std::move(d));
    // Not pump() from inside a connection callback directly: the next messages
    // start on the next loop turn.
    trigger_pump();
  }

  // One request to destination ended: the next one waiting for it may start.
  void release_destination(const std::string& destination) {
    auto active = active_by_destination_.find(destination);
    if (active != active_by_destination_.end() && --active->second <= 0) active_by_destination_.erase(active);
    auto waiting = waiting_by_destination_.find(destination);
    if (waiting == waiting_by_destination_.end()) return;
    std::unique_ptr<Delivery> next = std::move(waiting->second.front());
    waiting->second.pop_front();
    if (waiting->second.empty()) waiting_by_destination_.erase(waiting);
    --waiting_count_;
    start_next(std::move(next));
  }

  void trigger_pump() {
    if (!scan_timer_.pending()) scan_timer_.start_once(std::chrono::milliseconds(0));
  }

  // A message past maximal_queue_lifetime (bounce_queue_lifetime for mail from
  // the null sender; 0: one attempt) has its undone recipients bounced with their
  // last defer status and reason.
  void expire(const std::string& id, const QueueFile& file) {
    const QueueEnvelope& env = file.envelope();
    int64_t lifetime = env.sender.empty() ? bounce_lifetime_ : queue_lifetime_;
    if (::time(nullptr) - env.arrival_seconds < lifetime || env.undone_count() == 0) return;
    std::map<int64_t, StatusRecord> last;
    try {
      for (StatusRecord& r : read_status_log(spool_, "defer", id)) last[r.offset] = std::move(r);
    } catch (const SystemError& e) {
      log_warn("%s: defer log: %s", id.c_str(), e.what());
    }
    std::vector<StatusRecord> expired;
    for (const QueueRecipient& r : env.recipients) {
      if (r.done) continue;
      auto it = last.find(int64_t(r.offset));
      std::string dsn = it != last.end() && !it->second.status.empty() ? it->second.status : "4.4.7";
      std::string why = it != last.end() && !it->second.reason.empty() ? it->second.reason
                                                                        : "message expired in the queue";
      log_info("%s: to=<%s>, relay=none, status=expired, returned to sender (%s)", id.c_str(), r.address.c_str(),
               why.c_str());
      expired.push_back(status_record(r, dsn, "failed", why));
    }
    bounce_recipients(id, file.fd(), expired);
  }

  void finish(std::unique_ptr<Delivery> d) {
    const std::string& id = d->id;
    append_log(spool_, "defer", id, d->deferred, false);
    size_t undone = 0;
    if (d->file) {
      // Re-read the envelope: the agent marked what it delivered.
      auto fresh = QueueFile::open(d->file->path(), O_RDWR);
      if (fresh) expire(id, *fresh);
      if (fresh) fresh = QueueFile::open(d->file->path(), O_RDONLY);
      undone = fresh ? fresh->envelope().undone_count() : d->file->envelope().undone_count();
    }
    d->file.reset();
    // Failed recipients are reported before the message leaves active; until the
    // notice is queued the message stays in the queue, even with nothing undone.
    bool notice_pending = file_exists(status_log_path(spool_, "bounce", id)) && !ask_bounce(id, kNoticeFailure);
    if (undone == 0 && !notice_pending) {
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
    if (undone > 0) warn_of_delay(id);
    retire(*d);
  }

  // Asks the bounce service for a notice of this kind about active/ID; true once
  // it is queued (or none was due).  A failure notice that was sent takes its
  // log with it.  Waits for the answer: notices are rare, and the message may
  // not leave active before it.
  bool ask_bounce(const std::string& id, std::string_view kind) {
    auto reply = [&]() -> Result<BounceReply> {
      auto sock = connect_unix(spool_ + "/private/" + std::string(kBounceService), kConnectTimeout);
      if (!sock) return sock.failure();
      auto hello = read_hello(sock->get(), kBounceService, kBounceHelloTimeout);
      if (!hello) return hello.failure();
      auto sent = write_message(sock->get(), BounceRequest{std::string(kind), id, "active/" + id}, kBounceTimeout);
      if (!sent) return sent.failure();
      return read_message<BounceReply>(sock->get(), kBounceTimeout);
    }();
    if (!reply || reply->status != "ok") {
      log_warn("%s: %.*s notice not sent, will try again: %s", id.c_str(), int(kind.size()), kind.data(),
               reply ? reply->reason.c_str() : ("bounce service: " + reply.error()).c_str());
      return false;
    }
    if (kind == kNoticeFailure) {
      try {
        remove_status_logs(spool_, id, {"bounce"});
      } catch (const SystemError& e) {
        log_warn("%s: %s", id.c_str(), e.what());
      }
    }
    return true;
  }

  // Once per message: when it has waited delay_warning_time, the sender is told
  // which recipients are still being retried.  That the warning was sent is
  // recorded in defer/ID (docs/queue.md), fsynced, so it is never sent twice.
  void warn_of_delay(const std::string& id) {
    if (delay_warning_ <= 0) return;
    auto file = QueueFile::open(queue_file_path(spool_, QueueName::kActive, id));
    if (!file || file->envelope().sender.empty() ||
        ::time(nullptr) - file->envelope().arrival_seconds < delay_warning_)
      return;
    try {
      if (delay_warning_sent(spool_, id)) return;
      if (ask_bounce(id, kNoticeDelay)) record_delay_warning(spool_, id);
    } catch (const SystemError& e) {
      log_warn("%s: delay warning: %s", id.c_str(), e.what());
    }
  }

  // Moves a message that still has undone recipients (or an unsent notice) out
  // of active to deferred, due again after the back-off.
  void retire(const Delivery& d) {
    const std::string& id = d.id;
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
  Router router_;
  int smtp_concurrency_;     // smtp_destination_concurrency_limit
  int default_concurrency_;  // default_destination_concurrency_limit
  int64_t min_backoff_;
  int64_t max_backoff_;
  int64_t queue_lifetime_;
  int64_t bounce_lifetime_;
  int64_t delay_warning_;
  Timer scan_timer_;
  Timer deferred_timer_;
  std::deque<std::string> todo_;
  std::set<std::string> in_active_;
  std::map<std::string, int> attempts_;
  std::map<Delivery*, std::unique_ptr<Delivery>> in_flight_;
  // Per-destination concurrency: requests in flight and messages waiting, by "transport:nexthop".
  std::map<std::string, int> active_by_destination_;
  std::map<std::string, std::deque<std::unique_ptr<Delivery>>> waiting_by_destination_;
  size_t waiting_count_ = 0;
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
