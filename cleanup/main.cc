// cleanup: the one way into the queue, as Postfix's cleanup(8).
//   cleanup -n service -t unix ...   (started by master; public/cleanup)
// One client is one message, in the protocol of lib/mail/cleanup_protocol.h: a
// begin frame with the envelope head, recipients, content chunks, an end frame;
// cleanup answers with one CleanupReply.
//
// On the way it qualifies envelope addresses without a domain with @$myorigin
// (rewrite context "local"), and checks and completes the content as
// lib/mail/cleanup.h says (message_size_limit, header_size_limit, NUL bytes;
// Received, Date, Message-Id, From added when missing).  The queue file is written
// in incoming with QueueFileWriter and answered "ok" with its queue ID only after
// commit() (the file and the folder fsynced).  Every refusal (perm: the message
// itself is wrong; temp: the system failed, try again) and every broken
// connection leaves nothing in incoming: the writer removes its temporary file.
// After a commit cleanup pokes the queue manager through public/qmgr, if that
// exists (a connect and close; failures are ignored: qmgr scans incoming anyway).
//
// Log: "QUEUEID: message-id=<...>" for each message queued, and the reason of
// each refusal.
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <optional>
#include <string>

#include "mail/cleanup.h"
#include "mail/cleanup_protocol.h"
#include "mail/daemon.h"
#include "mail/queue_file.h"
#include "util/error.h"
#include "util/log.h"
#include "util/socket.h"
#include "util/strings.h"

namespace postern {
namespace {

// How long one frame may take to arrive (Postfix's ipc_timeout).
constexpr Timeout kFrameTimeout = std::chrono::seconds(300);

// Reads the rest of the message and drops it, so that the client is not left
// blocked in a write before it can read the refusal.
Result<void> drain(int sock) {
  for (;;) {
    auto payload = read_frame(sock, kFrameTimeout);
    if (!payload) return payload.failure();
    auto type = peek_type(*payload);
    if (!type) return type.failure();
    if (*type == CleanupEnd::kType) return {};
  }
}

class Session {
 public:
  Session(int sock, const Config& config) : sock_(sock), config_(config) {}

  // The reply, or nothing when the connection broke (nothing to answer).
  std::optional<CleanupReply> run() {
    auto begin = read_message<CleanupBegin>(sock_, kFrameTimeout);
    if (!begin) {
      log_warn("bad request: %s", begin.error().c_str());
      return std::nullopt;
    }
    try {
      return receive(*begin);
    } catch (const CleanupRefusal& r) {
      log_warn("%s%sreject: %s", queue_id_.c_str(), queue_id_.empty() ? "" : ": ", r.reason.c_str());
      if (!end_seen_) {
        auto d = drain(sock_);
        if (!d) {
          log_warn("%s: lost connection while refusing: %s", queue_id_.c_str(), d.error().c_str());
          return std::nullopt;
        }
      }
      return CleanupReply{r.status, "", r.reason};
    }
  }

 private:
  std::optional<CleanupReply> receive(const CleanupBegin& begin) {
    IncomingMessage message(config_, begin);
    queue_id_ = message.queue_id();
    for (;;) {
      auto payload = read_frame(sock_, kFrameTimeout);
      if (!payload) {
        log_warn("%s: lost connection: %s", queue_id_.c_str(), payload.error().c_str());
        return std::nullopt;  // the writer removes the file
      }
      auto type = peek_type(*payload);
      if (!type) throw CleanupRefusal{"perm", "5.5.4 bad request: " + type.error()};
      if (*type == CleanupRecipients::kType) {
        auto r = decode<CleanupRecipients>(*payload);
        if (!r) throw CleanupRefusal{"perm", "5.5.4 bad request: " + r.error()};
        for (const CleanupRecipient& rcpt : r->recipients) message.add_recipient(rcpt);
      } else if (*type == CleanupContent::kType) {
        auto c = decode<CleanupContent>(*payload);
        if (!c) throw CleanupRefusal{"perm", "5.5.4 bad request: " + c.error()};
        message.add_content(c->data);
      } else if (*type == CleanupEnd::kType) {
        end_seen_ = true;
        break;
      } else {
        throw CleanupRefusal{"perm", "5.5.4 unexpected request " + *type};
      }
    }
    try {
      message.finish().commit();
    } catch (const SystemError& e) {
      throw CleanupRefusal{"temp", std::string("4.3.0 queue file write error: ") + e.what()};
    }
    log_info("%s: message-id=%s", queue_id_.c_str(), message.message_id().c_str());
    poke_qmgr(config_.str("queue_directory"));
    return CleanupReply{"ok", queue_id_, ""};
  }

  int sock_;
  const Config& config_;
  std::string queue_id_;
  bool end_seen_ = false;
};

void serve(UniqueFd client, const DaemonContext& context) {
  auto hello = write_message(client.get(), make_hello(kCleanupService), kFrameTimeout);
  if (!hello) {
    log_warn("hello: %s", hello.error().c_str());
    return;
  }
  Session session(client.get(), context.config);
  std::optional<CleanupReply> reply = session.run();
  if (!reply) return;
  auto sent = write_message(client.get(), *reply, kFrameTimeout);
  if (!sent && reply->status == "ok")
    // Queued but not acknowledged: the client will submit it again.  A duplicate
    // is better than a loss; Postfix has the same window.
    log_warn("%s: reply not delivered: %s", reply->queue_id.c_str(), sent.error().c_str());
}

}  // namespace
}  // namespace postern

int main(int argc, char** argv) {
  ::umask(077);
  return postern::run_single_server(argc, argv, postern::serve);
}
