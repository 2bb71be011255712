// bounce: sends delivery status notifications, as Postfix's bounce(8).
//   bounce -n service -t unix ...   (started by master for the services bounce,
//                                    defer and trace of master.cf)
// The queue manager connects to private/bounce and sends one BounceRequest
// (lib/mail/bounce_protocol.h) that names a message in active:
//   failure  the recipients in bounce/ID failed for good: the sender gets a
//            non-delivery notice ("Undelivered Mail Returned to Sender");
//   delay    the recipients in defer/ID are still being retried: the sender gets
//            a delay warning ("Delayed Mail (still being retried)");
//   success  the recipients in trace/ID, which asked for it with DSN
//            NOTIFY=SUCCESS, were delivered: the sender gets a "Successful Mail
//            Delivery Report" (Action: delivered) with the original's header.
// bounce reads the queue file and the log, composes an RFC 3464
// multipart/report (lib/mail/dsn_notice.h: DSN NOTIFY and RET, bounce_size_limit)
// and submits it through cleanup from the null sender.  A notice about mail from
// the null sender goes to 2bounce_notice_recipient from double_bounce_sender; one
// about mail from the double-bounce sender is discarded and logged, so notices
// never loop.  It answers "ok" only once cleanup answered ok (or no notice was
// due); anything else is "temp", and the queue manager keeps the log and asks
// again later.  bounce changes nothing in the queue itself.
//
// Log: "QUEUEID: sender non-delivery notification: NEWID",
// "QUEUEID: postmaster non-delivery notification: NEWID",
// "QUEUEID: sender delay notification: NEWID",
// "QUEUEID: sender delivery status notification: NEWID", or why no notice was sent.
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <map>
#include <set>
#include <string>

#include "mail/bounce_protocol.h"
#include "mail/config.h"
#include "mail/daemon.h"
#include "mail/dsn_notice.h"
#include "mail/queue_file.h"
#include "mail/queue_id.h"
#include "mail/queue_tools.h"
#include "util/error.h"
#include "util/log.h"
#include "util/socket.h"

namespace postern {
namespace {

constexpr Timeout kFrameTimeout = std::chrono::seconds(100);
constexpr Timeout kCleanupTimeout = std::chrono::seconds(100);

// The newest record for each recipient, in queue file order; a delay warning
// names only recipients that are still undone.
std::vector<StatusRecord> latest_records(const std::vector<StatusRecord>& records, const QueueFile& file,
                                         NoticeKind kind) {
  std::map<int64_t, StatusRecord> latest;
  for (const StatusRecord& r : records) latest[r.offset] = r;
  std::set<int64_t> undone;
  for (const QueueRecipient& r : file.envelope().recipients)
    if (!r.done) undone.insert(int64_t(r.offset));
  std::vector<StatusRecord> out;
  for (const auto& [offset, r] : latest)
    if (kind != NoticeKind::kDelay || undone.count(offset)) out.push_back(r);
  return out;
}

BounceReply temp(const std::string& why) { return BounceReply{"temp", "", why}; }

BounceReply handle(const BounceRequest& request, const Config& config) {
  const std::string& id = request.queue_id;
  if (!is_valid_queue_id(id) || request.queue_path != "active/" + id)
    return temp("bad request: queue_id '" + id + "', queue_path '" + request.queue_path + "'");
  const NoticeKindInfo* info = notice_kind_named(request.kind);
  if (!info) return temp("bad request: kind '" + request.kind + "'");
  NoticeKind kind = info->kind;

  std::string spool = config.str("queue_directory");
  auto file = QueueFile::open(spool + "/" + request.queue_path);
  if (!file) return temp(request.queue_path + ": " + file.error());
  std::vector<StatusRecord> records;
  try {
    records = read_status_log(spool, info->log_folder, id);
  } catch (const SystemError& e) {
    return temp(e.what());
  }
  records = latest_records(records, *file, kind);
  if (records.empty()) return BounceReply{"ok", "", "nothing to report"};
  NoticeSettings settings = NoticeSettings::from_config(config);
  Result<NoticeOutcome> outcome = fail("");
  try {
    outcome = send_notice(spool, settings, kind, *file, records, kCleanupTimeout);
  } catch (const SystemError& e) {  // reading the queue file failed
    return temp(e.what());
  }
  if (!outcome) return temp(outcome.error());
  if (outcome->notice_id.empty()) {
    log_info("%s: %s: no %.*s notice sent", id.c_str(), outcome->why_none.c_str(), int(info->log_name.size()),
             info->log_name.data());
    return BounceReply{"ok", "", outcome->why_none};
  }
  const char* whom = file->envelope().sender.empty() ? "postmaster" : "sender";
  log_info("%s: %s %.*s notification: %s", id.c_str(), whom, int(info->log_name.size()), info->log_name.data(),
           outcome->notice_id.c_str());
  return BounceReply{"ok", outcome->notice_id, ""};
}

void serve(UniqueFd client, const DaemonContext& context) {
  serve_one_request<BounceRequest>(client, context, kFrameTimeout, [&](const BounceRequest& request) {
    BounceReply reply = handle(request, context.config);
    if (reply.status != "ok") log_warn("%s: notice not sent: %s", request.queue_id.c_str(), reply.reason.c_str());
    return reply;
  });
}

}  // namespace
}  // namespace postern

int main(int argc, char** argv) {
  ::umask(077);
  return postern::run_single_server(argc, argv, postern::serve);
}
