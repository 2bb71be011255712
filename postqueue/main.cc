// postqueue: lists the mail queue and asks the queue manager for deliveries, as Postfix's postqueue(1).
//   postqueue [-c dir] -p
//   postqueue [-c dir] -j
//   postqueue [-c dir] -f
//   postqueue [-c dir] -s site
//   postqueue [-c dir] -i queue_id
// -p lists the queue in the form of Postfix's mailq (and is what mailq prints):
// for each message a line with its queue ID, followed by '*' when the message is
// in the active queue and '!' when it is on hold, its size, arrival time and
// sender (MAILER-DAEMON for the null sender), then for each recipient not yet
// delivered an indented line, preceded by the reason in parentheses when the
// defer log gives one. It ends with "-- N Kbytes in M Requests.", or prints
// "Mail queue is empty". Queues are listed in the order maildrop, hold, incoming,
// active, deferred; a file that cannot be read is reported and skipped.
// -j prints one JSON object per message and line, as Postfix 3.1 does: queue_name,
// queue_id, arrival_time (seconds since the epoch), message_size, sender and
// recipients, a list of {address, delay_reason} (delay_reason only when known).
// -f asks the queue manager to attempt delivery of every queued message; -s site
// and -i queue_id ask for the deferred mail of one site or one message, which
// until the flush service exists means the same request as -f. These write the
// one-byte trigger requests of Postfix's queue manager (F: retry dead
// destinations, A: scan every queue) to queue_directory/public/qmgr; when the
// queue manager does not answer there, postqueue says the mail system is down and
// exits 75 (EX_TEMPFAIL), having done nothing.
#include <sys/socket.h>
#include <sysexits.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <string>
#include <vector>

#include "mail/queue_file.h"
#include "mail/queue_tools.h"
#include "mail/spool.h"
#include "util/cli.h"
#include "util/file.h"
#include "util/log.h"
#include "util/socket.h"
#include "util/strings.h"

namespace postern {
namespace {

enum class Mode { kNone, kList, kJson, kFlush, kSite, kMessage };

struct CommandLine {
  std::string config_dir;
  Mode mode = Mode::kNone;
  std::string argument;  // the site or queue ID
};

void usage() {
  std::fprintf(stderr,
               "usage: postqueue [-c dir] -p | -j | -f | -s site | -i queue_id\n");
}

CommandLine parse(int argc, char** argv) {
  CommandLine cl;
  if (basename_of(argv[0]) == "mailq") cl.mode = Mode::kList;
  auto set = [&](Mode m) {
    if (cl.mode != Mode::kNone && cl.mode != m) throw UsageError("-p, -j, -f, -s and -i exclude each other");
    cl.mode = m;
  };
  opterr = 0;
  int c;
  while ((c = getopt(argc, argv, "c:fi:js:pv")) != -1) {
    switch (c) {
      case 'c': cl.config_dir = optarg; break;
      case 'f': set(Mode::kFlush); break;
      case 'i': set(Mode::kMessage), cl.argument = checked_queue_id(optarg); break;
      case 'j': set(Mode::kJson); break;
      case 'p': set(Mode::kList); break;
      case 's': set(Mode::kSite), cl.argument = optarg; break;
      case 'v': log_set_verbose(log_verbose() + 1); break;
      default:
        throw UsageError(optopt == 'c' || optopt == 'i' || optopt == 's'
                             ? format("option -%c needs an argument", optopt)
                             : format("unknown option -%c", optopt));
    }
  }
  if (optind < argc) throw UsageError(format("unexpected argument: %s", argv[optind]));
  if (cl.mode == Mode::kNone) throw UsageError("no action given");
  return cl;
}

struct Listed {
  QueueName queue;
  std::string id;
  QueueEnvelope envelope;
};

// Every readable message of the queues mailq shows, in its order.
std::vector<Listed> read_queue(const std::string& spool) {
  std::vector<Listed> out;
  for (QueueName q : {QueueName::kMaildrop, QueueName::kHold, QueueName::kIncoming, QueueName::kActive,
                      QueueName::kDeferred}) {
    std::vector<std::string> ids;
    try {
      ids = list_queue(spool, q);
    } catch (const SystemError& e) {
      if (e.error() != ENOENT) log_warn("%s", e.what());
      continue;
    }
    for (const std::string& id : ids) {
      QueueFileStatus status;
      Result<QueueFile> qf = QueueFile::open(queue_file_path(spool, q, id), 0, &status);
      if (!qf) {
        if (status != QueueFileStatus::kMissing) log_warn("%s", qf.error().c_str());
        continue;
      }
      out.push_back({q, id, qf->envelope()});
    }
  }
  return out;
}

int list(const std::string& spool) {
  std::vector<Listed> messages = read_queue(spool);
  if (messages.empty()) {
    std::printf("Mail queue is empty\n");
    return 0;
  }
  std::printf("-Queue ID-  --Size-- ----Arrival Time---- -Sender/Recipient-------\n");
  uint64_t total = 0;
  for (const Listed& m : messages) {
    const QueueEnvelope& env = m.envelope;
    char mark = m.queue == QueueName::kActive ? '*' : m.queue == QueueName::kHold ? '!' : ' ';
    std::printf("%-10s%c %8llu %s  %s\n", m.id.c_str(), mark, static_cast<unsigned long long>(env.content_size),
                short_time(env.arrival_seconds).c_str(), env.sender.empty() ? "MAILER-DAEMON" : env.sender.c_str());
    std::map<std::string, std::string> reasons;
    if (m.queue != QueueName::kMaildrop) reasons = defer_reasons(spool, m.id);
    std::string last_reason;
    for (const QueueRecipient& r : env.recipients) {
      if (r.done) continue;
      auto it = reasons.find(r.address);
      if (it != reasons.end() && it->second != last_reason) {
        std::printf("(%s)\n", it->second.c_str());
        last_reason = it->second;
      }
      std::printf("%41s%s\n", "", r.address.c_str());
    }
    std::printf("\n");
    total += env.content_size;
  }
  std::printf("-- %llu Kbytes in %zu Request%s.\n", static_cast<unsigned long long>(total / 1024), messages.size(),
              messages.size() == 1 ? "" : "s");
  return 0;
}

std::string json_string(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    unsigned char u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (u < 0x20 || u == 0x7f) {
      out += format("\\u%04x", u);
    } else {
      out += c;
    }
  }
  return out + "\"";
}

int list_json(const std::string& spool) {
  for (const Listed& m : read_queue(spool)) {
    const QueueEnvelope& env = m.envelope;
    std::map<std::string, std::string> reasons;
    if (m.queue != QueueName::kMaildrop) reasons = defer_reasons(spool, m.id);
    std::string line = "{\"queue_name\": " + json_string(queue_folder(m.queue)) +
                       ", \"queue_id\": " + json_string(m.id) +
                       format(", \"arrival_time\": %lld, \"message_size\": %llu",
                              static_cast<long long>(env.arrival_seconds),
                              static_cast<unsigned long long>(env.content_size)) +
                       ", \"sender\": " + json_string(env.sender) + ", \"recipients\": [";
    bool first = true;
    for (const QueueRecipient& r : env.recipients) {
      if (r.done) continue;
      line += first ? "" : ", ";
      first = false;
      line += "{\"address\": " + json_string(r.address);
      auto it = reasons.find(r.address);
      if (it != reasons.end()) line += ", \"delay_reason\": " + json_string(it->second);
      line += "}";
    }
    line += "]}\n";
    std::fputs(line.c_str(), stdout);
  }
  return 0;
}

// Asks the queue manager to run the queue; nothing is done when it is not there.
int trigger(const std::string& spool) {
  const char* what = "Cannot flush mail queue - mail system is down";
  Result<UniqueFd> fd = connect_unix(qmgr_socket_path(spool), Timeout(5000));
  if (!fd) log_fatal_status(EX_TEMPFAIL, "%s: %s", what, fd.error().c_str());
  static constexpr char kRequest[] = {'F', 'A'};
  // The queue manager takes the connection itself as the trigger and may close it
  // before reading: a peer gone by now is success, and must not be a SIGPIPE.
  ssize_t n = retry_eintr([&] { return ::send(fd->get(), kRequest, sizeof kRequest, MSG_NOSIGNAL); });
  if (n != static_cast<ssize_t>(sizeof kRequest) && !(n < 0 && (errno == EPIPE || errno == ECONNRESET)))
    log_fatal_status(EX_TEMPFAIL, "%s: write to %s failed", what, qmgr_socket_path(spool).c_str());
  return 0;
}

int run(const CommandLine& cl) {
  std::string spool = spool_of(cl.config_dir);
  switch (cl.mode) {
    case Mode::kList: return list(spool);
    case Mode::kJson: return list_json(spool);
    case Mode::kFlush:
    case Mode::kSite:
    case Mode::kMessage: return trigger(spool);
    case Mode::kNone: break;
  }
  return EX_USAGE;
}

}  // namespace
}  // namespace postern

int main(int argc, char** argv) {
  using namespace postern;
  log_init("postqueue", LogSink::kCommandLine);
  return run_command_line([&] { return parse(argc, argv); }, usage, run);
}
