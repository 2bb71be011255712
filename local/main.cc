// local: final delivery to local users, as Postfix's local(8).
//   local -n service -t unix ...   (started by master; private/local, unpriv=n)
// One client is one DeliveryRequest from the queue manager
// (lib/mail/delivery_protocol.h); local answers one DeliveryReply with a result
// per recipient.
//
// For each recipient:
//   1. the domain must be empty or in mydestination (else defer 4.3.5: the queue
//      manager routed it wrongly);
//   2. a message whose header already holds "Delivered-To: RCPT" for the address
//      being delivered (at any level of the expansion, without regard to case)
//      bounces 5.4.6 "mail forwarding loop for RCPT";
//   3. the local part is looked up in alias_maps (with the recipient_delimiter
//      extension, then without).  An alias value is a list of targets
//      (aliases(5)): addresses (looked up again, up to 10 levels; an alias inside
//      its own expansion is the user of that name), "\user" (the mailbox, no
//      alias, no .forward), "|command" ("|cmd with spaces" quoted, or unquoted up
//      to the next comma), "/file" (mbox; "/dir/" is a Maildir),
//      ":include:/path" (a file of more targets, '#' comment lines), and remote
//      addresses (forwarded: the message goes back to cleanup for that address
//      with Delivered-To: and its original arrival time, and the log says
//      "forwarded as QUEUEID").  With owner_request_special (yes) and an alias
//      "owner-X", the envelope sender of X's deliveries becomes owner-X@$myorigin.
//      A lookup that fails temporarily defers;
//   4. the user (the local part without extension) is found with getpwnam;
//      unknown is a bounce 5.1.1 "user unknown";
//   5. forward_path ("$home/.forward${recipient_delimiter}${extension},
//      $home/.forward") names the user's .forward files; an element that refers
//      to an empty value ($extension without an extension) is skipped.  The files
//      are read as the user, in order, and the first usable one counts: a regular
//      file, owned by the user or root, not writable by group or others, not empty
//      (any other is ignored, with a warning in the log).  Its targets are
//      delivered like alias targets, with the user's rights; one naming the user
//      himself ("user", "\user") is the mailbox;
//   6. the mailbox: with mailbox_command set, that command (run as for
//      "|command" below, with the user's rights; root's as default_privs);
//      otherwise local writes, with the user's rights (root's own mailbox as
//      root), the Maildir HOME/$home_mailbox when home_mailbox ends with '/'
//      (in the agent itself, with the user's effective uid, gid and group list,
//      as Postfix's local: no user code runs there), or, from a child process
//      that switches to the user for good (setgroups, setresgid, setresuid), the mbox
//      HOME/$home_mailbox when it is set otherwise, else the mbox
//      $mail_spool_directory/USER, with Delivered-To: and Return-Path: prepended,
//      under mailbox_size_limit.  A mailbox in mail_spool_directory is created
//      as root (never through a link, mode 0600, owned by the user) and written
//      by the user, with the spool's group for the dot-lock when only that group
//      may write there (Debian's /var/mail, root:mail 2775); a symbolic link or
//      another owner's file there is refused (deferred 4.2.0), never followed.  Maildir deliveries use
//      the deterministic name (queue ID and recipient), so a retry after a crash
//      between the delivery and the queue update does not deliver twice.
//
// Rights of files and commands: named in an alias table, those of the owner of
// the table's file (default_privs, "nobody", when that is root or the table is not
// a file); in a .forward, the user's (default_privs for root's); in an :include: file, its owner's
// (default_privs for root).  allow_mail_to_commands and allow_mail_to_files
// ("alias, forward"; "include" allows them in :include: files) say where they may
// appear; elsewhere they bounce 5.7.1 "mail to command/file is restricted".
//
// Commands run as /bin/sh -c COMMAND in their own process group, with the
// rights above, in the home directory of that account ("/" when it cannot be
// entered), with standard input "From sender date", Delivered-To:, Return-Path:
// and the message, and only this environment: the export_environment names
// ("TZ MAIL_CONFIG LANG"), HOME, LOGNAME, USER, SHELL (of that account), SENDER,
// RECIPIENT, LOCAL, DOMAIN, EXTENSION (when there is one), ORIGINAL_RECIPIENT
// (no CLIENT_*: the delivery request does not carry the client; no PATH: /bin/sh
// uses its own default).
// Addresses reach commands only through the environment, never a command line.
// Exit 0 is delivered; 75 (EX_TEMPFAIL), 71, a signal or command_time_limit
// (after which the process group is killed) defer 4.3.0; other sysexits(3)
// codes bounce with Postfix's code (67 EX_NOUSER 5.1.1, 77 EX_NOPERM 5.7.0, ...),
// any other status 5.3.0, with the reason
//   Command died with status N: "cmd". Command output: <first 2 KB, one line>
//
// When local does not run as root (master started by an ordinary user) it
// delivers only to the mailbox of the user it runs as (others defer 4.3.0), and
// its files and commands run as that user.
//
// Within one delivery request a mailbox, file, command (for one uid) or
// forwarding address gets the message once, however many recipients and
// aliases lead to it (Postfix's duplicate filter).
//
// A recipient is answered with the worst outcome of its targets (defer over
// bounce over delivered).  A recipient whose every target was delivered is
// marked done in the queue file before the reply (with fdatasync when an mbox,
// file or command delivery is among them).  A recipient whose targets partly
// fail is deferred as a whole: the retry repeats the mbox, file and command
// deliveries that got through (Maildir deliveries recognise themselves).  This
// is the rule Postfix would avoid with its per-attempt duplicate filter; here a
// repeated copy is preferred to a lost one.
//
// Log: "QUEUEID: to=<rcpt>, orig_to=<original>, relay=local, status=sent (text)"
// for every delivery and failure of the expansion.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <optional>
#include <string>
#include <vector>

#include "agent.h"
#include "mail/daemon.h"
#include "mail/delivery_agent.h"
#include "mail/delivery_protocol.h"
#include "mail/queue_file.h"
#include "mail/queue_id.h"
#include "util/error.h"
#include "util/log.h"
#include "util/socket.h"

namespace postern {
namespace {

constexpr Timeout kFrameTimeout = std::chrono::seconds(300);

DeliveryReply handle(const DeliveryRequest& request, const Config& config) {
  auto file = open_request_file(config, request);
  if (!file) return defer_all(request, file.error());
  const std::string& id = request.queue_id;
  DeliveryReply reply;
  std::optional<Agent> agent;
  try {
    agent.emplace(config, request, *file);
  } catch (const std::exception& e) {  // an alias table that cannot be opened, a read error
    log_warn("%s: %s", id.c_str(), e.what());
    return defer_all(request, std::string("local configuration error: ") + e.what());
  }
  std::vector<int64_t> delivered;
  bool sync = false;  // an mbox, file or command delivery: the mark must be durable
  for (const auto& rcpt : request.recipients) {
    Outcome o;
    try {
      o = agent->deliver(rcpt);
    } catch (const std::exception& e) {  // a table that failed in a way it did not report
      log_warn("%s: to=<%s>: %s", id.c_str(), rcpt.address.c_str(), e.what());
      o = defer("4.3.0", std::string("local delivery failed: ") + e.what());
    }
    if (o.status == kDeliveryOk) {
      delivered.push_back(rcpt.offset);
      sync = sync || o.needs_sync;
    }
    reply.results.push_back({rcpt.offset, o.status, o.dsn, o.text});
  }
  mark_delivered(*file, delivered, sync);
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
