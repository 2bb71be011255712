// smtpd: the SMTP server, as Postfix's smtpd(8).
//   smtpd -n service -t inet ...   (started by master for the smtp, submission and
//                                   submissions lines of master.cf)
//
// Speaks ESMTP (RFC 5321) with PIPELINING (2920), SIZE (1870), 8BITMIME (6152),
// SMTPUTF8 (6531), ENHANCEDSTATUSCODES (2034/3463), CHUNKING/BDAT (3030), DSN
// (3461: RET, ENVID, NOTIFY, ORCPT kept in the queue file), STARTTLS (3207) and
// AUTH PLAIN/LOGIN (4954).  Replies follow Postfix's codes and words.  Each
// accepted message is written to incoming by the same code cleanup uses
// (lib/mail/cleanup.h: Received, Date, Message-Id, From, size and header limits)
// and answered "250 2.0.0 Ok: queued as ID" only once the file and the incoming
// folder are fsynced; the fsyncs are done by one writer thread per process that
// commits every message waiting at once (group commit: smtpd/committer.h), so the
// event loop never waits for the disk.  qmgr is poked after each commit.
//
// Sessions per process: one smtpd process runs up to smtpd_sessions_per_process
// (default 100) sessions on one libevent loop; master's maxproc still counts
// processes.  An idle session costs about 2 KiB instead of a process
// (bench/smtpd-memory/run), and 100 keeps the harm of one crashed process (its
// sessions drop; no acknowledged message is lost) and the descriptors per process
// small.  A process that is full, or has taken max_use sessions, tells master
// "busy", so master starts another for the next client.
//
// Relay control: the restriction engine (lib/mail/smtpd_policy.h) is asked at
// connect, HELO/EHLO, MAIL, RCPT, DATA (and the first BDAT) and at the end of the
// message; a reject or defer is answered with its "CODE DSN TEXT" and logged as
// "NOQUEUE: reject: ...".  With smtpd_delay_reject = no a client refused at
// connect gets that reply instead of the greeting, and the connection ends.
//
// A certificate or key that cannot be used is logged ("...; TLS is not
// available") and smtpd runs without TLS: STARTTLS gets "454 4.7.0 TLS not
// available due to local problem", a wrapper-mode connection is closed.
// TLS: with smtpd_tls_security_level = may or encrypt, STARTTLS is offered until
// TLS is active; input that arrived with the STARTTLS command is discarded, and
// after the handshake the session starts over (EHLO again).  With encrypt, MAIL and
// AUTH before STARTTLS get "530 5.7.0 Must issue a STARTTLS command first".
// smtpd_tls_wrappermode = yes speaks TLS from the first byte (port 465).
// AUTH: offered when smtpd_sasl_auth_enable = yes and TLS is active or
// smtpd_tls_auth_only = no (else "538 5.7.11"); passwords are checked by the auth
// service, asynchronously.  235 2.7.0 on success, 535 5.7.8 on a wrong password,
// 454 4.7.0 when the service cannot tell, 503 5.5.1 once authenticated.
// The Received header says "(using TLSv1.3 with cipher ...)" and
// "(Authenticated sender: USER)", and the protocol is SMTP, ESMTP, ESMTPS, ESMTPA
// or ESMTPSA (RFC 3848).
//
// DATA ends only at CRLF.CRLF; a bare LF ends a line of content but never the
// data (lib/mail/smtp_data.h), so LF.LF and its variants cannot smuggle commands.
// smtpd_forbid_bare_newline = reject answers a bare LF with "550 5.5.2 Error: bare
// <LF> received" and closes the connection, except for clients in the networks of
// smtpd_forbid_bare_newline_exclusions (default $mynetworks; entries that are not
// networks, such as tables, are ignored with a warning).  normalize (the
// default), yes and no accept a bare LF as a line end.
//
// Limits: message_size_limit (SIZE= over it 552 5.3.4 at MAIL, content over it
// 552 5.3.4 at the end), smtpd_recipient_limit (452 4.5.3), line_length_limit for
// command lines (500 5.5.0; a longer line is dropped as it comes, never buffered),
// header_size_limit, smtpd_timeout (421 4.4.2), smtpd_soft_error_limit with
// smtpd_error_sleep_time (a timer holds that session's replies; other sessions go
// on), smtpd_hard_error_limit (421 4.7.0 and hang up), smtpd_junk_command_limit
// (NOOP, RSET, VRFY beyond it count as errors), and per client address
// smtpd_client_connection_count_limit and smtpd_client_connection_rate_limit (per
// anvil_rate_time_unit), answered 421 4.7.0 instead of the greeting.  The last two
// are counted within one smtpd process, not across processes (Postfix asks
// anvil(8); Postern has none yet).
//
// A client that sends commands ahead before it may (before the greeting was
// answered, right after HELO or EHLO, or anywhere before EHLO showed PIPELINING:
// an early talker or a bulk mailer that ignores replies) gets "554 5.5.0 Error:
// SMTP protocol synchronization" and is disconnected, logged as "improper command
// pipelining after CMD" (smtpd_forbid_unauth_pipelining = yes, as Postfix 3.9;
// BDAT's chunk is not a command).  The greeting is not delayed to catch clients
// that talk first and then wait: that is a postscreen's test.
// Not done: reverse DNS of the client (its name is always "unknown"), VRFY that
// verifies (with disable_vrfy_command = no it answers 252), ETRN, XCLIENT.  The
// restriction engine's table and DNS lookups block the event loop while they run.
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
