// smtpd: the SMTP server, as Postfix's smtpd(8).
//   smtpd -n service -t inet ...   (started by master for the smtp, submission and
//                                   submissions lines of master.cf)
//
// Speaks ESMTP (RFC 5321) with PIPELINING (2920), SIZE (1870), 8BITMIME (6152),
// SMTPUTF8 (6531), ENHANCEDSTATUSCODES (2034/3463), CHUNKING/BDAT (3030) and DSN
// (3461: RET, ENVID, NOTIFY, ORCPT kept in the queue file).  Replies follow
// Postfix's codes and words.  Each accepted message is written to incoming by
// the same code cleanup uses (lib/mail/cleanup.h: Received, Date, Message-Id,
// From, size and header limits) and answered "250 2.0.0 Ok: queued as ID" only
// once the file and the incoming folder are fsynced; the fsyncs are done by one
// writer thread per process that commits every message waiting at once (group
// commit: smtpd/committer.h), so the event loop never waits for the disk.
//
// Sessions per process: one smtpd process runs up to smtpd_sessions_per_process
// (default 100) sessions on one libevent loop; master's maxproc still counts
// processes.  An idle session costs a few kilobytes instead of a process, and 100
// keeps the harm of one crashed process (its sessions drop; no acknowledged
// message is lost) and the per-process descriptor use small.  A full process tells
// master "busy", so master starts another for the next client.
//
// DATA ends only at CRLF.CRLF; a bare LF ends a line of content but never the
// data (smtp_data.h), so LF.LF and its variants cannot smuggle commands.  With
// smtpd_forbid_bare_newline = reject a bare LF gets "550 5.5.2 Error: bare <LF>
// received" and the connection is closed.  Other values (normalize, yes, no)
// accept it as a line end.
//
// Limits: message_size_limit (552 5.3.4), smtpd_recipient_limit (452 4.5.3),
// line_length_limit for commands (500 5.5.0; longer command lines are dropped,
// never buffered), header_size_limit, smtpd_timeout (421 4.4.2),
// smtpd_soft_error_limit with smtpd_error_sleep_time (a timer delays that
// session's replies, other sessions go on), smtpd_hard_error_limit (421 4.7.0
// and hang up), smtpd_junk_command_limit, and per client address
// smtpd_client_connection_count_limit and smtpd_client_connection_rate_limit
// (per anvil_rate_time_unit).  The last two are counted within one smtpd
// process, not across processes (Postfix asks anvil(8); Postern has none yet).
//
// A client that speaks before the greeting is not tested for: the greeting is
// sent at once (a pregreet test belongs in a postscreen in front of smtpd).
//
// Not yet: relay control (smtpd_*_restrictions; until the policy engine is
// wired in every recipient is accepted, so do not expose smtpd to the Internet),
// STARTTLS and smtpd_tls_wrappermode, AUTH, reverse DNS (the client name is
// always "unknown"), smtpd_forbid_bare_newline_exclusions.
//
// Log: "connect from", "QUEUEID: client=..., from=<...>, nrcpt=N", each
// rejection, "lost connection after CMD", "disconnect from ... commands=N errors=N".
#include <sys/resource.h>
#include <sys/stat.h>

#include "mail/daemon.h"
#include "server.h"
#include "util/event.h"

namespace postern {
namespace {

// Each session holds a socket: allow as many descriptors as the hard limit does.
void raise_fd_limit() {
  struct rlimit rl;
  if (::getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &rl);
  }
}

}  // namespace
}  // namespace postern

int main(int argc, char** argv) {
  ::umask(077);
  postern::DaemonStartup d = postern::start_daemon(argc, argv);
  return postern::run_daemon_body([&] {
    postern::raise_fd_limit();
    postern::EventLoop loop;
    postern::SmtpServer server(loop, d.config, d.listeners);
    loop.run();
    return 0;
  });
}
