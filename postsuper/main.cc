// postsuper: deletes, holds, releases and requeues queued mail, as Postfix's postsuper(1).
//   postsuper [-c dir] [-v] [-d queue_id|ALL|-] [-h queue_id|ALL|-] [-H queue_id|ALL|-] [-r queue_id|ALL|-] [queue]
//   postsuper [-c dir] [-v] -s
// -d removes the message with that queue ID, and its status logs (bounce, defer,
// trace), from the named queue, or from hold, incoming, active and deferred when
// no queue is named. -h puts the message on hold (from incoming, active and
// deferred by default): the queue manager leaves it alone until -H releases it
// into deferred, due at the queue manager's next scan of deferred (its time is
// reset). -r requeues the message (from hold, incoming, active and deferred by
// default): it moves to incoming and postsuper pokes the queue manager, which
// picks it up again at once, keeping its queue ID and the recipients already
// delivered; its defer log is removed. ALL means every message of those queues; "-" reads queue
// IDs from standard input, one a line. The options may be combined and repeated;
// deletions run first, then holds, releases and requeues.
// Every queue ID is checked before anything changes: a malformed one ("../x",
// "a/b") ends postsuper with an error and nothing is done. An ID that names no
// message is reported and skipped. At the end postsuper reports what it did:
// "Deleted: N messages", "Placed on hold: N messages", "Released from hold:
// N messages", "Requeued: N messages".
// -s runs the startup check of the spool: removes files that writers left
// unfinished and moves damaged queue files to corrupt.
// Only the superuser, mail_owner, or the user who owns the queues (an instance
// started by an ordinary user) may run postsuper.
#include <fcntl.h>
#include <pwd.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "mail/config.h"
#include "mail/queue_file.h"
#include "mail/queue_tools.h"
#include "mail/spool.h"
#include "util/cli.h"
#include "util/log.h"
#include "util/socket.h"
#include "util/strings.h"

namespace postern {
namespace {

enum Op { kDelete, kHold, kRelease, kRequeue, kOpCount };

struct CommandLine {
  std::string config_dir;
  std::vector<std::string> args[kOpCount];  // IDs, "ALL" or "-" per operation
  std::optional<QueueName> queue;
  bool scan = false;
};

void usage() {
  std::fprintf(stderr,
               "usage: postsuper [-c dir] [-v] [-d id|ALL|-] [-h id|ALL|-] [-H id|ALL|-] [-r id|ALL|-] [queue]\n"
               "       postsuper [-c dir] [-v] -s\n");
}

// The queues an operation looks in: the one named, or its defaults.
std::vector<QueueName> queues_for(Op op, const std::optional<QueueName>& named) {
  using Q = QueueName;
  std::vector<Q> defaults;
  switch (op) {
    case kDelete: defaults = {Q::kHold, Q::kIncoming, Q::kActive, Q::kDeferred}; break;
    case kHold: defaults = {Q::kIncoming, Q::kActive, Q::kDeferred}; break;
    case kRelease: defaults = {Q::kHold}; break;
    case kRequeue: defaults = {Q::kHold, Q::kIncoming, Q::kActive, Q::kDeferred}; break;
    case kOpCount: break;
  }
  if (!named) return defaults;
  bool allowed = op == kDelete || std::find(defaults.begin(), defaults.end(), *named) != defaults.end();
  if (!allowed) {
    static const char* const kOption[] = {"-d", "-h", "-H", "-r"};
    throw UsageError(format("%s does not apply to the %s queue", kOption[op],
                            std::string(queue_folder(*named)).c_str()));
  }
  return {*named};
}

CommandLine parse(int argc, char** argv) {
  CommandLine cl;
  opterr = 0;
  int c;
  while ((c = getopt(argc, argv, "c:d:h:H:r:sv")) != -1) {
    switch (c) {
      case 'c': cl.config_dir = optarg; break;
      case 'd': cl.args[kDelete].push_back(optarg); break;
      case 'h': cl.args[kHold].push_back(optarg); break;
      case 'H': cl.args[kRelease].push_back(optarg); break;
      case 'r': cl.args[kRequeue].push_back(optarg); break;
      case 's': cl.scan = true; break;
      case 'v': log_set_verbose(log_verbose() + 1); break;
      default:
        throw UsageError(std::strchr("cdhHr", optopt) && optopt ? format("option -%c needs an argument", optopt)
                                                                 : format("unknown option -%c", optopt));
    }
  }
  if (optind < argc) {
    cl.queue = queue_named(argv[optind]);
    if (!cl.queue) throw UsageError(format("unknown queue: %s", argv[optind]));
    ++optind;
  }
  if (optind < argc) throw UsageError(format("unexpected argument: %s", argv[optind]));
  bool any = cl.scan;
  size_t from_stdin = 0;
  for (int op = 0; op < kOpCount; ++op) {
    any |= !cl.args[op].empty();
    for (const std::string& a : cl.args[op]) {
      if (a == "-") ++from_stdin;
      else if (a != "ALL") checked_queue_id(a);  // refuses a bad ID before anything changes
    }
    if (!cl.args[op].empty()) queues_for(static_cast<Op>(op), cl.queue);
  }
  if (!any) throw UsageError("no action given");
  if (from_stdin > 1) throw UsageError("standard input can be read for one option only");
  return cl;
}

// The real user must be root, mail_owner, or the owner of the queues.
void check_user(const Config& config, const std::string& spool) {
  uid_t uid = ::getuid();
  if (uid == 0) return;
  if (struct passwd* pw = ::getpwnam(config.str("mail_owner").c_str()); pw && pw->pw_uid == uid) return;
  struct stat st;
  if (::stat((spool + "/incoming").c_str(), &st) == 0 && st.st_uid == uid) return;
  log_fatal_status(EX_NOPERM, "use of this command is reserved for the superuser or mail_owner");
}

class Super {
 public:
  explicit Super(std::string spool) : spool_(std::move(spool)) {}

  // The IDs one option names: itself, every message of its queues, or standard input.
  std::vector<std::string> targets(const std::string& arg, const std::vector<QueueName>& queues,
                                   const std::vector<std::string>& from_stdin) const {
    if (arg == "-") return from_stdin;
    if (arg != "ALL") return {arg};
    std::vector<std::string> ids;
    for (QueueName q : queues)
      for (std::string& id : list_queue(spool_, q)) ids.push_back(std::move(id));
    return ids;
  }

  // Applies op to one message; false when no queue of the list holds it.
  bool apply(Op op, const std::string& id, const std::vector<QueueName>& queues, size_t& count) {
    std::optional<MessageLocation> where = find_message(spool_, id, queues);
    if (!where) return false;
    switch (op) {
      case kDelete:
        if (::unlink(where->path.c_str()) < 0) {
          if (errno == ENOENT) return apply(op, id, queues, count);  // moved meanwhile: look again
          log_warn("%s: remove %s: %s", id.c_str(), where->path.c_str(), std::strerror(errno));
          return true;
        }
        remove_status_logs(spool_, id);
        log_info("%s: removed", id.c_str());
        break;
      case kHold:
      case kRelease:
      case kRequeue: {
        QueueName to = op == kHold ? QueueName::kHold : op == kRelease ? QueueName::kDeferred : QueueName::kIncoming;
        if (where->queue != to) {
          Result<void> moved = move_queue_file(spool_, id, where->queue, to, op != kRequeue);
          if (!moved) {
            log_warn("%s", moved.error().c_str());
            return true;
          }
        }
        // A released message is due at the next scan of deferred, not when the
        // back-off computed before the hold ends (as Postfix resets the time).
        if (op == kRelease && ::utimensat(AT_FDCWD, queue_file_path(spool_, to, id).c_str(), nullptr, 0) < 0)
          log_warn("%s: cannot reset its time: %s", id.c_str(), std::strerror(errno));
        if (op == kRequeue) remove_status_logs(spool_, id, {"defer"});
        log_info("%s: %s", id.c_str(), op == kHold ? "placed on hold" : op == kRelease ? "released from hold"
                                                                                        : "requeued");
        break;
      }
      case kOpCount: break;
    }
    ++count;
    return true;
  }

 private:
  std::string spool_;
};

int run(const CommandLine& cl) {
  Config config = Config::load(Config::choose_dir(cl.config_dir));
  std::string spool = config.str("queue_directory");
  check_user(config, spool);

  std::vector<std::string> from_stdin;
  for (const auto& args : cl.args)
    for (const std::string& a : args)
      if (a == "-") from_stdin = queue_ids_from_stdin();  // all checked before anything changes

  if (cl.scan) {
    SpoolScan scan = scan_spool(spool);
    for (const std::string& r : scan.removed) log_info("removed unfinished file %s", r.c_str());
    for (const std::string& q : scan.quarantined) log_warn("damaged queue file moved to corrupt: %s", q.c_str());
    for (const std::string& s : scan.skipped) log_warn("skipped %s", s.c_str());
  }

  static const char* const kDone[] = {"Deleted", "Placed on hold", "Released from hold", "Requeued"};
  Super super(spool);
  int status = 0;
  for (int i = 0; i < kOpCount; ++i) {
    Op op = static_cast<Op>(i);
    if (cl.args[op].empty()) continue;
    std::vector<QueueName> queues = queues_for(op, cl.queue);
    size_t count = 0;
    for (const std::string& arg : cl.args[op])
      for (const std::string& id : super.targets(arg, queues, from_stdin))
        if (!super.apply(op, id, queues, count) && arg != "ALL") log_warn("%s: no such message", id.c_str());
    log_info("%s: %zu message%s", kDone[op], count, count == 1 ? "" : "s");
    // The queue manager scans incoming when poked (a connect is the trigger); when
    // it is not running it scans at its start.
    if (op == kRequeue && count > 0) (void)connect_unix(qmgr_socket_path(spool), std::chrono::milliseconds(100));
  }
  return status;
}

}  // namespace
}  // namespace postern

int main(int argc, char** argv) {
  using namespace postern;
  log_init("postsuper", LogSink::kCommandLine);
  return run_command_line([&] { return parse(argc, argv); }, usage, run);
}
