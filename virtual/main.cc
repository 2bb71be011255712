// virtual: final delivery to virtual mailboxes, as Postfix's virtual(8), with
// Maildir++ quotas.
//   virtual -n service -t unix ...   (started by master; private/virtual, unpriv=n)
// One client is one DeliveryRequest from the queue manager
// (lib/mail/delivery_protocol.h); virtual answers one DeliveryReply with a result
// per recipient.
//
// For each recipient (lib/mail/virtual_delivery.h has the rules):
//   1. virtual_mailbox_maps gives the mailbox under virtual_mailbox_base (a path
//      ending in '/' is a Maildir, else an mbox); unknown: bounce 5.1.1;
//   2. virtual_uid_maps and virtual_gid_maps give its owner, at least
//      virtual_minimum_uid and never root, else the recipient is deferred;
//   3. virtual_mailbox_limit_maps (else virtual_mailbox_quota) gives its Maildir++
//      quota; a message that does not fit is deferred 4.2.2 (bounced 5.2.2 with
//      virtual_overquota_bounce = yes);
//   4. a child process switches to the owner (setgroups, setresgid, setresuid)
//      and writes the message with Delivered-To: and Return-Path: prepended,
//      creating a missing Maildir (mode 0700). Maildir deliveries use the
//      deterministic name (queue ID and recipient), so a retry after a crash
//      between the delivery and the queue update does not deliver twice.
// Any lookup that fails temporarily (a database that is down) defers: mail is
// never bounced or dropped for it. When virtual does not run as root it delivers
// only as the user it runs as; other owners defer 4.3.0.
// A delivered recipient is marked done in the queue file before the reply (mbox
// deliveries with fdatasync), and answered "ok".
//
// Virtual alias expansion (virtual_alias_maps) happens before the queue, in
// cleanup; this agent sees only final recipients.
//
// Log: "QUEUEID: to=<rcpt>, relay=virtual, status=sent (2.0.0 delivered to ...)".
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "mail/daemon.h"
#include "mail/delivery_agent.h"
#include "mail/delivery_protocol.h"
#include "mail/queue_file.h"
#include "mail/queue_id.h"
#include "mail/virtual_delivery.h"
#include "util/error.h"
#include "util/log.h"
#include "util/socket.h"

namespace postern {
namespace {

constexpr Timeout kFrameTimeout = std::chrono::seconds(300);

// The tables, opened once per process (hash: tables follow rebuilds themselves,
// mysql: connections are kept). A table that cannot be opened throws, the request
// is deferred, and the next request tries again.
VirtualMailboxes& process_mailboxes(const Config& config) {
  static std::unique_ptr<VirtualMailboxes> mailboxes;
  if (!mailboxes) mailboxes = std::make_unique<VirtualMailboxes>(config);
  return *mailboxes;
}

DeliveryResult result_of(const DeliveryRecipient& rcpt, std::string_view status, std::string dsn, std::string text) {
  return {rcpt.offset, std::string(status), std::move(dsn), std::move(text)};
}

// Writes the message as the mailbox's owner in a child process; the outcome comes
// back as a one-result DeliveryReply over a socket pair.
DeliveryResult write_as_owner(VirtualMailboxes& boxes, const VirtualMailbox& mailbox, const DeliveryContent& content,
                              const MaildirOptions& options, const DeliveryRecipient& rcpt) {
  if (::geteuid() != 0 && mailbox.uid != ::geteuid())
    return result_of(rcpt, kDeliveryDefer, "4.3.0",
                     "cannot deliver as uid " + std::to_string(mailbox.uid) + ": virtual does not run as root");
  auto [rd, wr] = make_socketpair();
  pid_t pid = ::fork();
  if (pid < 0) return result_of(rcpt, kDeliveryDefer, "4.3.0", std::string("fork: ") + std::strerror(errno));
  if (pid == 0) {
    rd.reset();
    DeliveryResult out;
    try {
      if (::geteuid() == 0) drop_privileges(mailbox.uid, mailbox.gid);
      MailboxResult r = boxes.write(mailbox, content, options);
      out = result_of(rcpt, r.ok() ? kDeliveryOk : r.temporary() ? kDeliveryDefer : kDeliveryBounce, r.dsn,
                      r.ok() && !r.already_delivered ? "delivered to " + (r.file.empty() ? mailbox.path : r.file)
                                                     : r.text);
    } catch (const std::exception& e) {
      out = result_of(rcpt, kDeliveryDefer, "4.3.0", std::string("delivery failed: ") + e.what());
    }
    ::_exit(write_message(wr.get(), DeliveryReply{{out}}, kFrameTimeout) ? 0 : 1);
  }
  wr.reset();
  auto reply = read_message<DeliveryReply>(rd.get(), kFrameTimeout);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!reply || reply->results.size() != 1)
    return result_of(rcpt, kDeliveryDefer, "4.3.0",
                     "delivery process failed" + (reply ? std::string() : ": " + reply.error()));
  return reply->results.front();
}

DeliveryResult deliver(VirtualMailboxes& boxes, const DeliveryRequest& request, const std::string& message,
                       const DeliveryRecipient& rcpt, bool& needs_sync) {
  VirtualLookup found = boxes.find(rcpt.address);
  if (!found.ok()) return result_of(rcpt, found.status, found.dsn, found.text);
  DeliveryContent content{request.sender,
                          "Delivered-To: " + rcpt.address + "\nReturn-Path: <" + request.sender + ">\n", message};
  MaildirOptions options;
  options.queue_id = request.queue_id;
  options.recipient = rcpt.address;
  DeliveryResult r = write_as_owner(boxes, found.mailbox, content, options, rcpt);
  if (r.status == kDeliveryOk && !found.mailbox.maildir) needs_sync = true;
  return r;
}

DeliveryReply handle(const DeliveryRequest& request, const Config& config) {
  auto file = open_request_file(config, request);
  if (!file) return defer_all(request, file.error());
  const std::string& id = request.queue_id;
  DeliveryReply reply;
  VirtualMailboxes* boxes = nullptr;
  std::string message;
  try {
    boxes = &process_mailboxes(config);
    message = file->content();
  } catch (const std::exception& e) {  // a table that cannot be opened, a read error
    log_warn("%s: %s", id.c_str(), e.what());
    return defer_all(request, std::string("virtual configuration error: ") + e.what());
  }
  std::vector<int64_t> done;
  bool needs_sync = false;
  for (const DeliveryRecipient& rcpt : request.recipients) {
    DeliveryResult r;
    try {
      r = deliver(*boxes, request, message, rcpt, needs_sync);
    } catch (const std::exception& e) {
      r = result_of(rcpt, kDeliveryDefer, "4.3.0", std::string("virtual delivery failed: ") + e.what());
    }
    log_info("%s: to=<%s>, relay=virtual, status=%s (%s %s)", id.c_str(), rcpt.address.c_str(),
             r.status == kDeliveryOk ? "sent" : r.status == kDeliveryBounce ? "bounced" : "deferred", r.dsn.c_str(),
             r.text.c_str());
    if (r.status == kDeliveryOk) done.push_back(rcpt.offset);
    reply.results.push_back(std::move(r));
  }
  mark_delivered(*file, done, needs_sync);
  return reply;
}

void serve(UniqueFd client, const DaemonContext& context) {
  serve_one_request<DeliveryRequest>(client, context, kFrameTimeout, [&](const DeliveryRequest& request) {
    return handle(request, context.config);
  });
}

}  // namespace
}  // namespace postern

int main(int argc, char** argv) {
  ::umask(077);
  return postern::run_single_server(argc, argv, postern::serve);
}
