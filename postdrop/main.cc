// postdrop: puts a message into the maildrop queue for an ordinary user, as
// Postfix's postdrop(1).
//   postdrop [-c dir] [-v]  < queue-file
// maildrop is mode 1730, owner mail_owner, group setgid_group: users can neither
// list nor read it.  postdrop is installed set-gid setgid_group and is the one
// program that writes there for them; sendmail runs it when it cannot write
// maildrop itself, with the message it built, as a complete queue file, on
// standard input (a regular file, never a pipe).
//
// postdrop trusts nothing of that file: it reads it with the same checks the
// queue manager uses (records, lengths, END, owner-execute bit), refuses it when it
// is larger than message_size_limit, and writes a new queue file in maildrop from
// its envelope (sender, DSN ENVID and RET, attributes, recipients) and content,
// owned by the real user (pickup takes the file's owner as the submitting user
// for the Received header) and fsynced before it exits 0; then it wakes pickup.
// maildrop itself cannot be fsynced (postdrop has no read permission on it, as
// in Postfix); should a power failure undo the rename, the startup scan finds
// the complete file under its temporary name and gives it its queue ID.
//
// Configuration: an ordinary user may choose it with -c or POSTERN_CONFIG_DIR only
// when that folder and its main.cf belong to root and are writable by nobody else:
// otherwise postdrop gives up the set-gid group first, and writing to maildrop
// fails as it would for the user.  (Postfix asks for alternate_config_directories
// instead; the ownership rule protects the same thing: a user must not point the
// privileged program at a queue_directory of their choosing.)  The environment is
// not passed on: postdrop runs no other program.
//
// Exit status (sysexits.h): 0 queued; 65 (EX_DATAERR) the input is not a valid
// queue file or is too large; 75 (EX_TEMPFAIL) maildrop cannot be written (disk
// full, missing folder): try again later; 64 (EX_USAGE) a bad command line.
#include <fcntl.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <string>

#include "mail/config.h"
#include "mail/queue_file.h"
#include "util/cli.h"
#include "util/error.h"
#include "util/log.h"
#include "util/socket.h"

namespace postern {
namespace {

struct CommandLine {
  std::string config_dir;
  int verbose = 0;
};

CommandLine parse(int argc, char** argv) {
  CommandLine cl;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "-c" && i + 1 < argc) cl.config_dir = argv[++i];
    else if (a == "-v") ++cl.verbose;
    else throw UsageError("unknown argument \"" + a + "\"");
  }
  return cl;
}

void usage() { std::fprintf(stderr, "usage: postdrop [-c dir] [-v] < queue-file\n"); }

// True when an ordinary user cannot have written path: it is owned by root and
// neither group- nor world-writable.
bool root_controlled(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && st.st_uid == 0 && (st.st_mode & (S_IWGRP | S_IWOTH)) == 0;
}

void drop_setgid() {
  gid_t gid = ::getgid();
  if (::getegid() != gid && ::setresgid(gid, gid, gid) < 0)
    log_fatal_status(EX_OSERR, "setresgid: %s", std::strerror(errno));
}

// Copies the envelope and content of a checked queue file into a new one.
void copy(const QueueFile& in, QueueFileWriter& out) {
  const QueueEnvelope& env = in.envelope();
  out.set_sender(env.sender);
  if (!env.envid.empty()) out.set_envid(env.envid);
  out.set_ret(env.ret);
  for (const auto& [name, value] : env.attributes) out.add_attribute(name, value);
  // Recipients keep their side of the content: those after it were extracted
  // from the header (sendmail -t), and cleanup treats them so.
  for (const QueueRecipient& r : env.recipients)
    if (r.offset < env.content_offset && !r.done) out.add_recipient(r.address, r.orcpt, r.notify);
  std::string buffer(64 * 1024, '\0');
  for (uint64_t pos = 0;;) {
    size_t n = in.read_content(pos, buffer.data(), buffer.size());
    if (n == 0) break;
    pos += n;
    out.write_content(std::string_view(buffer.data(), n));
  }
  for (const QueueRecipient& r : env.recipients)
    if (r.offset > env.content_offset && !r.done) out.add_recipient(r.address, r.orcpt, r.notify);
}

int run(const CommandLine& cl) {
  std::string dir = Config::choose_dir(cl.config_dir);
  if (::getuid() != 0 && dir != Config::kDefaultDir &&
      !(root_controlled(dir) && root_controlled(dir + "/main.cf"))) {
    log_warn("configuration %s is not root's own: giving up the set-gid privilege", dir.c_str());
    drop_setgid();
  }
  Config config = Config::load(dir);
  std::string spool = config.str("queue_directory");
  int64_t limit = config.bytes("message_size_limit");

  struct stat st;
  check_sys(::fstat(STDIN_FILENO, &st), "standard input");
  if (!S_ISREG(st.st_mode)) log_fatal_status(EX_DATAERR, "standard input must be a queue file, not a pipe or terminal");
  UniqueFd input(check_sys(::dup(STDIN_FILENO), "dup"));
  auto file = QueueFile::from_fd(std::move(input), "standard input");
  if (!file) log_fatal_status(EX_DATAERR, "%s", file.error().c_str());
  if (limit > 0 && file->envelope().content_size > static_cast<uint64_t>(limit))
    log_fatal_status(EX_DATAERR, "message file too big (message_size_limit = %lld bytes)",
                     static_cast<long long>(limit));
  if (file->envelope().undone_count() == 0) log_fatal_status(EX_DATAERR, "no recipients");

  std::string id;
  try {
    QueueFileWriter writer(spool + "/maildrop", 0644);
    copy(*file, writer);
    // The file is fsynced; the folder cannot be (postdrop may not read it), so
    // the startup scan recovers a complete file whose rename a power failure undid.
    writer.commit(spool + "/maildrop", QueueFileWriter::FolderSync::kLater);
    id = writer.queue_id();
  } catch (const SystemError& e) {
    log_fatal_status(EX_TEMPFAIL, "cannot write to maildrop: %s", e.what());
  }
  // Wake pickup; if it is not running, master's wakeup starts it.
  (void)connect_unix(spool + "/public/pickup", std::chrono::milliseconds(100));
  log_debug("%s: queued in maildrop, uid=%lu", id.c_str(), static_cast<unsigned long>(::getuid()));
  return 0;
}

}  // namespace
}  // namespace postern

int main(int argc, char** argv) {
  using namespace postern;
  ::umask(022);
  ::clearenv();
  log_init("postdrop", LogSink::kCommandLine);
  if (::geteuid() == 0 && ::getuid() != 0) {
    uid_t uid = ::getuid();
    if (::setresuid(uid, uid, uid) < 0) log_fatal_status(EX_OSERR, "setresuid: %s", std::strerror(errno));
  }
  return run_command_line([&] { return parse(argc, argv); }, usage, [](const CommandLine& cl) { return run(cl); });
}
