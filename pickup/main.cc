// pickup: moves local submissions from maildrop to cleanup, as Postfix's pickup(8).
//   pickup -n service -t unix ...   (started by master; public/pickup, with a wakeup)
// pickup scans maildrop when it starts and whenever a client connects to its
// socket (a trigger: sendmail connects after it queued a message; the connection
// carries nothing and is closed at once).  master's wakeup starts pickup when no
// pickup process runs, so a message whose trigger was lost waits at most until
// pickup has been idle for max_idle seconds and is started again.
//
// For each complete file in maildrop (a queue ID name and the owner-execute bit;
// temporary files and files still being written are skipped) pickup reads the
// envelope with the queue file reader and streams it to cleanup over
// public/cleanup (lib/mail/cleanup_protocol.h): the sender, full_name and
// rewrite_context attributes, the other attributes, the recipients, the content,
// the arrival time, and the submitting user (the file's owner), for the Received
// header.  Then, by cleanup's answer:
//   ok    the maildrop file is removed (only now: the message is in incoming);
//   temp  or no answer at all: the file stays for the next scan;
//   perm  the message can never be queued (too big, NUL bytes): as Postfix does,
//         pickup sends the sender a non-delivery notice with cleanup's reason
//         (lib/mail/dsn_notice.h, through cleanup; a message from the null sender
//         goes to postmaster, one from the double-bounce sender is dropped) and
//         removes the file once the notice is queued; if it cannot be queued the
//         file stays for the next scan.
// A file the reader cannot read (corrupt, or complete but cut short) is moved to
// corrupt; a file that is incomplete but old (its writer died) is removed, as
// the startup scan does.
//
// Log: "QUEUEID: uid=N from=<sender>" with cleanup's queue ID for each message;
// for a refused one "maildrop/ID: uid=N from=<sender>: rejected: REASON",
// "maildrop/ID: sender non-delivery notification: NEWID", "maildrop/ID: removed".
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <ctime>
#include <string>

#include "mail/cleanup_client.h"
#include "mail/daemon.h"
#include "mail/dsn_notice.h"
#include "mail/queue_file.h"
#include "mail/queue_id.h"
#include "mail/spool.h"
#include "util/error.h"
#include "util/log.h"
#include "util/socket.h"

namespace postern {
namespace {

constexpr Timeout kCleanupTimeout = std::chrono::seconds(300);
// An incomplete file younger than this may still be written by sendmail.
constexpr int64_t kWriterGrace = 60;

enum class Outcome { kDone, kRetry, kRejected };

// Sends one maildrop file to cleanup.  Sets queue_id (cleanup's) or reason.
Outcome send_to_cleanup(const std::string& spool, const QueueFile& file, uid_t uid, std::string& queue_id,
                        std::string& reason) {
  auto client = CleanupClient::connect(spool, kCleanupTimeout);
  if (!client) {
    reason = client.error();
    return Outcome::kRetry;
  }
  const QueueEnvelope& env = file.envelope();
  CleanupBegin begin;
  begin.origin = "pickup";
  begin.sender = env.sender;
  begin.envid = env.envid;
  if (env.ret != DsnRet::kUnspecified) begin.ret = std::string(1, static_cast<char>(env.ret));
  begin.arrival_seconds = env.arrival_seconds;
  begin.arrival_microseconds = env.arrival_microseconds;
  begin.submit_uid = uid;
  begin.rewrite_context = "local";
  for (const auto& [name, value] : env.attributes) {
    if (name == "full_name") begin.full_name = value;
    else if (name == "rewrite_context") begin.rewrite_context = value;
    else begin.attributes.push_back({name, value});
  }
  Result<void> sent = client->begin(begin);
  // Recipients before the content, then those after it (extracted from the
  // header by sendmail -t), so the queue file keeps their places.
  auto send_recipients = [&](bool after_content) {
    for (const QueueRecipient& r : env.recipients) {
      if (!sent) return;
      if (r.done || (r.offset > env.content_offset) != after_content) continue;
      sent = client->add_recipient({r.address, r.orcpt, r.notify});
    }
  };
  send_recipients(false);
  std::string buffer(kCleanupChunk, '\0');
  for (uint64_t pos = 0; sent;) {
    size_t n = file.read_content(pos, buffer.data(), buffer.size());
    if (n == 0) break;
    pos += n;
    sent = client->write_content({buffer.data(), n});
  }
  send_recipients(true);
  if (!sent) {
    reason = sent.error();
    return Outcome::kRetry;
  }
  auto reply = client->finish();
  if (!reply) {
    reason = reply.error();
    return Outcome::kRetry;
  }
  if (reply->status == "ok" && is_valid_queue_id(reply->queue_id)) {
    queue_id = reply->queue_id;
    return Outcome::kDone;
  }
  reason = reply->reason.empty() ? "cleanup: status " + reply->status : reply->reason;
  return reply->status == "perm" ? Outcome::kRejected : Outcome::kRetry;
}

void quarantine(const std::string& spool, const std::string& id, const std::string& why) {
  auto moved = move_queue_file(spool, id, QueueName::kMaildrop, QueueName::kCorrupt);
  if (moved) log_warn("maildrop/%s: %s; moved to corrupt", id.c_str(), why.c_str());
  else log_error("maildrop/%s: %s; cannot move to corrupt: %s", id.c_str(), why.c_str(), moved.error().c_str());
}

// A message cleanup refused for good goes back to its sender with cleanup's
// reason (lib/mail/dsn_notice.h); the maildrop file is removed once the notice
// is queued.  Without the notice the file stays and the next scan tries again.
void return_to_sender(const std::string& spool, const NoticeSettings& settings, const QueueFile& file,
                      const std::string& path, const std::string& reason, uid_t uid) {
  const std::string& id = file.queue_id();
  const QueueEnvelope& env = file.envelope();
  // cleanup's reason starts with its enhanced status code: "5.3.4 message file too big".
  std::string status = "5.0.0", text = reason;
  if (auto space = reason.find(' '); space != std::string::npos && reason[0] == '5' && reason[1] == '.') {
    status = reason.substr(0, space);
    text = reason.substr(space + 1);
  }
  std::vector<StatusRecord> records;
  for (const QueueRecipient& r : env.recipients)
    if (!r.done) records.push_back({r.address, r.orcpt, r.notify, int64_t(r.offset), status, "failed", text, ""});
  log_info("maildrop/%s: uid=%lu from=<%s>: rejected: %s", id.c_str(), static_cast<unsigned long>(uid),
           env.sender.c_str(), reason.c_str());
  auto notice = send_notice(spool, settings, NoticeKind::kFailure, file, records, kCleanupTimeout);
  if (!notice) {
    log_warn("maildrop/%s: non-delivery notice not sent: %s; will try again", id.c_str(), notice.error().c_str());
    return;
  }
  if (notice->notice_id.empty())
    log_info("maildrop/%s: %s: no non-delivery notice sent", id.c_str(), notice->why_none.c_str());
  else
    log_info("maildrop/%s: %s non-delivery notification: %s", id.c_str(), env.sender.empty() ? "postmaster" : "sender",
             notice->notice_id.c_str());
  if (::unlink(path.c_str()) < 0 && errno != ENOENT)
    log_error("maildrop/%s: returned to sender but not removed: %m", id.c_str());
  else
    log_info("maildrop/%s: removed", id.c_str());
}

void pick_up(const std::string& spool, const NoticeSettings& settings, const std::string& id) {
  std::string path = queue_file_path(spool, QueueName::kMaildrop, id);
  QueueFileStatus status = QueueFileStatus::kOk;
  auto file = QueueFile::open(path, 0, &status);
  if (!file) {
    switch (status) {
      case QueueFileStatus::kMissing: return;
      case QueueFileStatus::kIncomplete: {
        struct stat st;
        bool has_x = ::stat(path.c_str(), &st) == 0 && (st.st_mode & S_IXUSR);
        if (has_x) {
          quarantine(spool, id, file.error());  // acknowledged to the user, then damaged
        } else if (st.st_mtime + kWriterGrace < std::time(nullptr)) {
          // sendmail died before commit; the startup scan would remove it too.
          if (::unlink(path.c_str()) == 0) log_warn("maildrop/%s: removed unfinished file", id.c_str());
        }
        return;
      }
      case QueueFileStatus::kCorrupt: quarantine(spool, id, file.error()); return;
      default: log_warn("maildrop/%s: %s", id.c_str(), file.error().c_str()); return;
    }
  }
  struct stat st;
  if (::fstat(file->fd(), &st) < 0) {
    log_warn("maildrop/%s: fstat: %m", id.c_str());
    return;
  }
  std::string queue_id, reason;
  Outcome outcome = send_to_cleanup(spool, *file, st.st_uid, queue_id, reason);
  const std::string& sender = file->envelope().sender;
  switch (outcome) {
    case Outcome::kDone:
      log_info("%s: uid=%lu from=<%s>", queue_id.c_str(), static_cast<unsigned long>(st.st_uid), sender.c_str());
      if (::unlink(path.c_str()) < 0 && errno != ENOENT)
        log_error("maildrop/%s: queued as %s but not removed: %m", id.c_str(), queue_id.c_str());
      break;
    case Outcome::kRetry:
      log_warn("maildrop/%s: uid=%lu from=<%s>: %s; will try again", id.c_str(),
               static_cast<unsigned long>(st.st_uid), sender.c_str(), reason.c_str());
      break;
    case Outcome::kRejected:
      return_to_sender(spool, settings, *file, path, reason, st.st_uid);
      break;
  }
}

void scan(const DaemonContext& context) {
  std::string spool = context.config.str("queue_directory");
  NoticeSettings settings = NoticeSettings::from_config(context.config);
  std::vector<std::string> ids;
  try {
    ids = list_queue(spool, QueueName::kMaildrop);
  } catch (const SystemError& e) {
    log_warn("scan of maildrop: %s", e.what());
    return;
  }
  for (const std::string& id : ids) {
    try {
      pick_up(spool, settings, id);
    } catch (const SystemError& e) {  // reading the content failed: try again later
      log_warn("maildrop/%s: %s", id.c_str(), e.what());
    }
  }
}

// The scan at start: run_single_server serves connections only, so pickup
// triggers itself through the listener master passed (fd 4), and the first
// connection it serves is its own.
void trigger_self() {
  struct sockaddr_un addr {};
  socklen_t len = sizeof addr;
  if (::getsockname(kFirstListenFd, reinterpret_cast<struct sockaddr*>(&addr), &len) < 0 ||
      addr.sun_family != AF_UNIX || addr.sun_path[0] == '\0')
    return;
  addr.sun_path[sizeof addr.sun_path - 1] = '\0';
  (void)connect_unix(addr.sun_path, std::chrono::seconds(1));  // closed at once; failures change nothing
}

}  // namespace
}  // namespace postern

int main(int argc, char** argv) {
  using namespace postern;
  ::umask(077);
  trigger_self();
  return run_single_server(argc, argv, [](UniqueFd client, const DaemonContext& context) {
    client.reset();  // a trigger carries nothing; do not keep the sender waiting
    scan(context);
  });
}
